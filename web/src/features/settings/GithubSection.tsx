import type { Settings } from "../../api/types";
import { publicEndpoint } from "../../lib/publicUrl";
import { SecretField } from "./SecretField";

/** Where GitHub delivers its webhooks: Apiary's public URL (or, blank, the callback base). */
export function githubWebhookUrl(publicUrl: string, callbackBase: string): string {
  return publicEndpoint(publicUrl, callbackBase, "/api/v1/github/webhook");
}

/** A GitHub handle as typed: trimmed, without a leading `@`. */
export function normalizeHandle(text: string): string {
  return text.trim().replace(/^@/, "");
}

/** The GitHub part of the settings form: the API base, the handle people mention, the
 *  automatic fix rounds for failing checks and the webhook secret. The page owns the values. */
export function GithubSection({ settings, version, onChange, onSecret, onAppKey }: {
  settings: Settings;
  /** Bumped after a save, so the secret field starts over at "keep". */
  version: number;
  onChange: (p: Partial<Settings>) => void;
  onSecret: (v: string | null | undefined) => void;
  onAppKey: (v: string | null | undefined) => void;
}) {
  const d = settings;
  return (
    <fieldset className="card">
      <legend>GitHub</legend>
      <label>GitHub API base
        <input value={d.github_api_base} placeholder="https://api.github.com" onChange={(e) => onChange({ github_api_base: e.target.value })} aria-describedby="github-api-hint" />
      </label>
      <p id="github-api-hint" className="hint">For GitHub Enterprise: https://HOST/api/v3.</p>
      <label>GitHub handle
        <input value={d.github_handle} maxLength={40} onChange={(e) => onChange({ github_handle: e.target.value })} aria-describedby="github-handle-hint" />
      </label>
      <p id="github-handle-hint" className="hint">People mention @{normalizeHandle(d.github_handle) || "apiary"} in a pull request comment to start a round.</p>
      <label>Automatic fix rounds for failing checks
        <input type="number" min={0} max={20} value={d.ci_fix_rounds} onChange={(e) => onChange({ ci_fix_rounds: Number(e.target.value) })} aria-describedby="ci-fix-rounds-hint" />
      </label>
      <p id="ci-fix-rounds-hint" className="hint">0 to 20; 0 turns them off. When they are spent, people are told the checks are failing.</p>
      <SecretField key={`github-webhook-${version}`} label="GitHub webhook secret" set={d.github_webhook_secret.set} onChange={onSecret} />
      <label>GitHub App id
        <input value={d.github_app_id} inputMode="numeric" placeholder="none" onChange={(e) => onChange({ github_app_id: e.target.value.trim() })} aria-describedby="github-app-hint" />
      </label>
      <SecretField key={`github-app-key-${version}`} label="GitHub App private key (PEM)" set={d.github_app_private_key.set} onChange={onAppKey} multiline />
      <p id="github-app-hint" className="hint">
        Projects without a GitHub token of their own act as this App: each box and each call gets an installation token
        for that one repository, living an hour (a box's may only push and open its pull request).
      </p>
      <p className="hint" data-testid="github-webhook-help">
        Point a GitHub webhook (content type application/json, events: pull requests, pull request reviews, issue comments,
        check runs, check suites, issues) at <code>{githubWebhookUrl(d.public_url, d.callback_base_url)}</code> with this secret.
      </p>
    </fieldset>
  );
}
