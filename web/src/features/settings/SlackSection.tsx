import type { Settings, SlackSettings } from "../../api/types";
import { publicEndpoint } from "../../lib/publicUrl";
import { SecretField } from "./SecretField";

/** The request URLs the Slack app sends button presses and the `/apiary` command to. */
export function slackRequestUrls(publicUrl: string, callbackBase: string): { interactions: string; commands: string } {
  return {
    interactions: publicEndpoint(publicUrl, callbackBase, "/api/v1/slack/interactions"),
    commands: publicEndpoint(publicUrl, callbackBase, "/api/v1/slack/commands"),
  };
}

/** The Slack part of the settings form: the channel notifications go to, the app's secrets and
 *  the URLs to give the app. The page owns the values. */
export function SlackSection({ settings, version, onChange, onSecret }: {
  settings: Settings;
  /** Bumped after a save, so the secret fields start over at "keep". */
  version: number;
  onChange: (p: Partial<Settings>) => void;
  onSecret: (name: "bot_token" | "signing_secret", v: string | null | undefined) => void;
}) {
  const s = settings.slack;
  const set = (p: Partial<SlackSettings>) => onChange({ slack: { ...s, ...p } });
  const urls = slackRequestUrls(settings.public_url, settings.callback_base_url);
  return (
    <fieldset className="card">
      <legend>Slack</legend>
      <label className="check"><input type="checkbox" checked={s.enabled} onChange={(e) => set({ enabled: e.target.checked })} /> Slack on</label>
      <SecretField key={`slack-bot-token-${version}`} label="Slack bot token" set={s.bot_token.set} onChange={(v) => onSecret("bot_token", v)} />
      <SecretField key={`slack-signing-secret-${version}`} label="Slack signing secret" set={s.signing_secret.set} onChange={(v) => onSecret("signing_secret", v)} />
      <label>Slack channel ID
        <input className="mono" value={s.channel} placeholder="C0123456789" onChange={(e) => set({ channel: e.target.value })} aria-describedby="slack-channel-hint" />
      </label>
      <p id="slack-channel-hint" className="hint">The channel notifications go to, by its ID (e.g. C0123456789), not its name.</p>
      <label>Slack API base
        <input value={s.api_base} placeholder="https://slack.com/api" onChange={(e) => set({ api_base: e.target.value })} />
      </label>
      <div className="hint" data-testid="slack-urls-help">
        In the Slack app, set these request URLs:
        <ul>
          <li>Interactivity: <code>{urls.interactions}</code></li>
          <li>Slash command <code>/apiary</code>: <code>{urls.commands}</code></li>
        </ul>
      </div>
    </fieldset>
  );
}
