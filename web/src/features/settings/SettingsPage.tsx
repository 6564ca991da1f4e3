import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { api } from "../../api/client";
import type { ProviderKeysPatch, RenderedPrompt, Settings, SettingsPatch } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { formatEnv, parseEnv } from "../../lib/env";
import { GatewaySection } from "./GatewaySection";
import { GithubSection, normalizeHandle } from "./GithubSection";
import { SecretField } from "./SecretField";
import { SlackSection } from "./SlackSection";
import { TelegramSection } from "./TelegramSection";

const KINDS = ["spec", "revise", "implement", "changes"] as const;
type Kind = (typeof KINDS)[number];

/** The admins' settings: orchestration, boxes, cap and timeouts, GitHub, the model gateway,
 *  notifications, Telegram and Slack, prompts. */
export function SettingsPage() {
  const client = useQueryClient();
  const settings = useQuery({ queryKey: ["settings"], queryFn: () => api.get<Settings>("/api/v1/settings") });
  const [draft, setDraft] = useState<Settings | null>(null);
  const [secrets, setSecrets] = useState<Record<string, string | null | undefined>>({});
  const [hooks, setHooks] = useState<{ id?: string; url: string; enabled: boolean; secretSet: boolean; secret?: string | null }[] | null>(null);
  const [previewTask, setPreviewTask] = useState("");
  const [saved, setSaved] = useState(false);
  const [roots, setRoots] = useState<string | null>(null);
  const [envText, setEnvText] = useState<string | null>(null);
  const [keys, setKeys] = useState<ProviderKeysPatch>({});
  const [keysVersion, setKeysVersion] = useState(0);
  const [clientError, setClientError] = useState<Error | null>(null);
  useEffect(() => {
    if (settings.data && !draft) {
      setDraft(settings.data);
      setHooks(settings.data.webhooks.map((w) => ({ id: w.id, url: w.url, enabled: w.enabled, secretSet: w.secret.set })));
    }
  }, [settings.data, draft]);
  const save = useMutation({
    mutationFn: (patch: SettingsPatch) => api.patch<Settings>("/api/v1/settings", patch),
    onSuccess: (s) => {
      client.setQueryData(["settings"], s);
      setDraft(s);
      setHooks(s.webhooks.map((w) => ({ id: w.id, url: w.url, enabled: w.enabled, secretSet: w.secret.set })));
      setSecrets({});
      setRoots(null);
      setEnvText(null);
      setKeys({});
      setKeysVersion((v) => v + 1);
      setSaved(true);
    },
  });
  const preview = useQuery({
    queryKey: ["prompts", previewTask],
    queryFn: () => api.get<RenderedPrompt[]>(`/api/v1/tasks/${previewTask}/agent/prompts`),
    enabled: previewTask.length > 0,
  });
  if (settings.isPending || !draft) return settings.error ? <ErrorBox error={settings.error} /> : <Loading what="settings" />;
  const d = draft;
  const upd = (p: Partial<Settings>) => { setDraft({ ...d, ...p }); setSaved(false); };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setClientError(null);
    const env = parseEnv(envText ?? formatEnv(d.gateway.agent_env));
    if (env.error !== null) {
      setClientError(new Error(`gateway.agent_env: ${env.error}`));
      return;
    }
    const g = d.gateway;
    const t = d.telegram;
    const patch: SettingsPatch = {
      agent_orchestration_enabled: d.agent_orchestration_enabled,
      box_provider: d.box_provider,
      box_host_url: d.box_host_url,
      callback_base_url: d.callback_base_url,
      public_url: d.public_url,
      // Blank keeps the API base in effect (it cannot be empty).
      github_api_base: d.github_api_base.trim() || undefined,
      github_handle: normalizeHandle(d.github_handle),
      ci_fix_rounds: d.ci_fix_rounds,
      github_app_id: d.github_app_id.trim(),
      default_template: d.default_template,
      local_repo_roots: (roots ?? d.local_repo_roots.join("\n")).split("\n").map((l) => l.trim()).filter(Boolean),
      max_concurrent_boxes: d.max_concurrent_boxes,
      box_limits: d.box_limits,
      timeouts: d.timeouts,
      watchdog_interval_s: d.watchdog_interval_s,
      notifications_enabled: d.notifications_enabled,
      chatty_events: d.chatty_events,
      telegram: {
        enabled: t.enabled, chat_id: t.chat_id, api_base: t.api_base, updates: t.updates,
        bot_username: normalizeHandle(t.bot_username), bot_token: secrets.telegram,
      },
      slack: {
        enabled: d.slack.enabled, channel: d.slack.channel.trim(),
        // Blank keeps the API base in effect (it cannot be empty).
        api_base: d.slack.api_base.trim() || undefined,
        bot_token: secrets.slack_bot_token, signing_secret: secrets.slack_signing_secret,
      },
      email: {
        enabled: d.email.enabled, host: d.email.host, port: d.email.port, tls: d.email.tls, username: d.email.username,
        from: d.email.from, to: d.email.to, to_reviewers: d.email.to_reviewers, password: secrets.email,
      },
      webhooks: (hooks ?? []).map((h) => ({ id: h.id, url: h.url, enabled: h.enabled, secret: h.secret })),
      prompts: d.prompts,
      gateway: {
        // A blank base URL is the provider's public API: leave it out.
        base_urls: Object.fromEntries(Object.entries(g.base_urls).map(([k, v]) => [k, v.trim()]).filter(([, v]) => v)),
        models: Object.fromEntries(Object.entries(g.models).map(([k, v]) => [k, v.trim()])),
        agent_env: env.env,
        prices: g.prices.map((p) => ({ ...p, model: p.model.trim() })),
        task_budget_usd: g.task_budget_usd,
        project_month_budget_usd: g.project_month_budget_usd,
        stall_repeats: g.stall_repeats,
        keys,
      },
    };
    if (secrets.box_host_key !== undefined) patch.box_host_key = secrets.box_host_key;
    if (secrets.github_webhook !== undefined) patch.github_webhook_secret = secrets.github_webhook;
    if (secrets.github_app_key !== undefined) patch.github_app_private_key = secrets.github_app_key;
    save.mutate(patch);
  };
  const timeouts = d.timeouts as Record<string, number>;
  const prompts = d.prompts as Record<Kind, string>;
  return (
    <form className="settings" onSubmit={submit} aria-labelledby="settings-h">
      <h1 id="settings-h">Settings</h1>
      <fieldset className="card">
        <legend>Orchestration</legend>
        <label className="check"><input type="checkbox" checked={d.agent_orchestration_enabled} onChange={(e) => upd({ agent_orchestration_enabled: e.target.checked })} /> Agent orchestration on</label>
        <label>Box provider
          <select value={d.box_provider} onChange={(e) => upd({ box_provider: e.target.value })}>
            <option value="local">local</option>
            <option value="remote">remote (box host)</option>
          </select>
        </label>
        <label>Box host URL<input value={d.box_host_url} onChange={(e) => upd({ box_host_url: e.target.value })} /></label>
        <SecretField label="Box host key" set={d.box_host_key.set} onChange={(v) => setSecrets({ ...secrets, box_host_key: v })} />
        <label>Callback base URL<input value={d.callback_base_url} onChange={(e) => upd({ callback_base_url: e.target.value })} placeholder="where boxes reach Apiary" /></label>
        <label>Public URL<input value={d.public_url} onChange={(e) => upd({ public_url: e.target.value })} placeholder="where people reach Apiary (links in notifications); blank: the callback base" /></label>
        <label>Local repository folders (one absolute path a line; the data folder's repos/ is always allowed)
          <textarea className="mono" rows={3} value={roots ?? d.local_repo_roots.join("\n")} onChange={(e) => { setRoots(e.target.value); setSaved(false); }} />
        </label>
        <label>Default template<input value={d.default_template} onChange={(e) => upd({ default_template: e.target.value })} /></label>
        <label>Max concurrent boxes<input type="number" min={1} value={d.max_concurrent_boxes} onChange={(e) => upd({ max_concurrent_boxes: Number(e.target.value) })} /></label>
        <label>Box memory (MiB, container boxes)<input type="number" min={64} value={d.box_limits.memory_mb} onChange={(e) => upd({ box_limits: { ...d.box_limits, memory_mb: Number(e.target.value) } })} /></label>
        <label>Box CPU (thousandths of a core)<input type="number" min={100} value={d.box_limits.cpu_millis} onChange={(e) => upd({ box_limits: { ...d.box_limits, cpu_millis: Number(e.target.value) } })} /></label>
        <label>Box processes<input type="number" min={64} value={d.box_limits.pids} onChange={(e) => upd({ box_limits: { ...d.box_limits, pids: Number(e.target.value) } })} /></label>
        <label>Watchdog interval (s)<input type="number" min={1} value={d.watchdog_interval_s} onChange={(e) => upd({ watchdog_interval_s: Number(e.target.value) })} /></label>
        {Object.keys(timeouts).filter((k) => k !== "stall_s").map((k) => (
          <label key={k}>Timeout {k.replace(/_s$/, "").replace("_", " ")} (s)
            <input type="number" min={1} value={timeouts[k]} onChange={(e) => upd({ timeouts: { ...d.timeouts, [k]: Number(e.target.value) } })} />
          </label>
        ))}
      </fieldset>
      <GithubSection
        settings={d}
        version={keysVersion}
        onChange={upd}
        onSecret={(v) => { setSecrets({ ...secrets, github_webhook: v }); setSaved(false); }}
        onAppKey={(v) => { setSecrets({ ...secrets, github_app_key: v }); setSaved(false); }}
      />
      <GatewaySection
        gateway={d.gateway}
        stallS={d.timeouts.stall_s}
        envText={envText ?? formatEnv(d.gateway.agent_env)}
        version={keysVersion}
        onChange={(p) => upd({ gateway: { ...d.gateway, ...p } })}
        onStallS={(s) => upd({ timeouts: { ...d.timeouts, stall_s: s } })}
        onEnvText={(t) => { setEnvText(t); setSaved(false); }}
        onKey={(p, v) => { setKeys({ ...keys, [p]: v }); setSaved(false); }}
      />
      <fieldset className="card">
        <legend>Notifications</legend>
        <label className="check"><input type="checkbox" checked={d.notifications_enabled} onChange={(e) => upd({ notifications_enabled: e.target.checked })} /> Notifications on</label>
        <label className="check"><input type="checkbox" checked={d.chatty_events} onChange={(e) => upd({ chatty_events: e.target.checked })} /> Also queued / provisioning</label>
        <label className="check"><input type="checkbox" checked={d.email.enabled} onChange={(e) => upd({ email: { ...d.email, enabled: e.target.checked } })} /> Email</label>
        <label>SMTP host<input value={d.email.host} onChange={(e) => upd({ email: { ...d.email, host: e.target.value } })} /></label>
        <label>SMTP port<input type="number" min={1} value={d.email.port} onChange={(e) => upd({ email: { ...d.email, port: Number(e.target.value) } })} /></label>
        <label>TLS
          <select value={d.email.tls} onChange={(e) => upd({ email: { ...d.email, tls: e.target.value } })}>
            <option value="starttls">STARTTLS</option>
            <option value="tls">TLS</option>
            <option value="none">none</option>
          </select>
        </label>
        <label>SMTP user<input value={d.email.username} onChange={(e) => upd({ email: { ...d.email, username: e.target.value } })} /></label>
        <SecretField label="SMTP password" set={d.email.password.set} onChange={(v) => setSecrets({ ...secrets, email: v })} />
        <label>Sender<input value={d.email.from} onChange={(e) => upd({ email: { ...d.email, from: e.target.value } })} placeholder="apiary@example.com" /></label>
        <label>Recipients (comma separated)<input value={d.email.to.join(", ")} onChange={(e) => upd({ email: { ...d.email, to: e.target.value.split(",").map((x) => x.trim()).filter(Boolean) } })} /></label>
        <label className="check"><input type="checkbox" checked={d.email.to_reviewers} onChange={(e) => upd({ email: { ...d.email, to_reviewers: e.target.checked } })} /> Also the project's reviewers</label>
        <h3>Webhooks</h3>
        {(hooks ?? []).map((h, i) => (
          <div key={h.id ?? `new-${i}`} className="webhook">
            <label>Webhook URL<input value={h.url} onChange={(e) => setHooks(hooks!.map((x, k) => (k === i ? { ...x, url: e.target.value } : x)))} /></label>
            <label className="check"><input type="checkbox" checked={h.enabled} onChange={(e) => setHooks(hooks!.map((x, k) => (k === i ? { ...x, enabled: e.target.checked } : x)))} /> enabled</label>
            <SecretField label="Signing secret" set={h.secretSet} onChange={(v) => setHooks(hooks!.map((x, k) => (k === i ? { ...x, secret: v } : x)))} />
            <button type="button" onClick={() => setHooks(hooks!.filter((_, k) => k !== i))}>Remove webhook</button>
          </div>
        ))}
        <button type="button" onClick={() => setHooks([...(hooks ?? []), { url: "", enabled: true, secretSet: false }])}>Add webhook</button>
      </fieldset>
      <TelegramSection
        settings={d}
        version={keysVersion}
        onChange={upd}
        onToken={(v) => { setSecrets({ ...secrets, telegram: v }); setSaved(false); }}
      />
      <SlackSection
        settings={d}
        version={keysVersion}
        onChange={upd}
        onSecret={(name, v) => { setSecrets({ ...secrets, [`slack_${name}`]: v }); setSaved(false); }}
      />
      <fieldset className="card">
        <legend>Global prompts</legend>
        {KINDS.map((k) => (
          <label key={k}>{k} prompt (blank = the box's built-in default)
            <textarea className="mono" rows={5} value={prompts[k]} onChange={(e) => upd({ prompts: { ...d.prompts, [k]: e.target.value } })} />
          </label>
        ))}
        <label>Preview for task id<input value={previewTask} onChange={(e) => setPreviewTask(e.target.value.trim())} placeholder="a task id" /></label>
        <ErrorBox error={preview.error} />
        {preview.data?.map((p) => (
          <details key={p.kind}><summary>{p.kind} — from {p.source}</summary><pre className="mono">{p.rendered ?? p.error}</pre></details>
        ))}
      </fieldset>
      <ErrorBox error={clientError ?? save.error} />
      {saved && <p role="status">Saved.</p>}
      <button type="submit" disabled={save.isPending}>Save settings</button>
    </form>
  );
}
