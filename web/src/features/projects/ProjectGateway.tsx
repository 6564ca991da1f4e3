import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { api } from "../../api/client";
import type { ProjectGateway, ProjectGatewayPatch, ProviderKeysPatch, UsageReport } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { UsageSummary } from "../../components/UsageSummary";
import { formatEnv, parseEnv } from "../../lib/env";
import { useLiveRefresh } from "../../lib/live";
import { PROVIDERS } from "../settings/GatewaySection";
import { SecretField } from "../settings/SecretField";

/** A budget as typed: blank is `null` (the global budget), else dollars. */
export function parseBudget(label: string, text: string): number | null {
  if (!text.trim()) return null;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${label}: a number of dollars (0 = no limit), or blank for the global budget`);
  return n;
}

const budgetText = (v: number | null | undefined) => (v === null || v === undefined ? "" : String(v));

/** A project's own model, agent environment, provider keys and budgets; blank falls through to
 *  the global settings. Budgets are admins' to set: a member sees them read-only. */
export function ProjectGatewayForm({ projectId, admin }: { projectId: string; admin: boolean }) {
  const client = useQueryClient();
  const gateway = useQuery({ queryKey: ["project-gateway", projectId], queryFn: () => api.get<ProjectGateway>(`/api/v1/projects/${projectId}/gateway`) });
  const [form, setForm] = useState<{ model: string; env: string; task: string; month: string } | null>(null);
  const [keys, setKeys] = useState<ProviderKeysPatch>({});
  const [version, setVersion] = useState(0);
  const [clientError, setClientError] = useState<Error | null>(null);
  const [saved, setSaved] = useState(false);
  const load = (g: ProjectGateway) =>
    setForm({ model: g.model, env: formatEnv(g.agent_env), task: budgetText(g.task_budget_usd), month: budgetText(g.month_budget_usd) });
  useEffect(() => { if (gateway.data && !form) load(gateway.data); }, [gateway.data, form]);
  const save = useMutation({
    mutationFn: (patch: ProjectGatewayPatch) => api.patch<ProjectGateway>(`/api/v1/projects/${projectId}/gateway`, patch),
    onSuccess: (g) => {
      client.setQueryData(["project-gateway", projectId], g);
      void client.invalidateQueries({ queryKey: ["usage"] });
      load(g);
      setKeys({});
      setVersion((v) => v + 1);
      setSaved(true);
    },
  });
  if (gateway.isPending || !form) return gateway.error ? <ErrorBox error={gateway.error} /> : <Loading what="model gateway settings" />;
  const g = gateway.data!;
  const upd = (p: Partial<typeof form>) => { setForm({ ...form, ...p }); setSaved(false); };
  const env = parseEnv(form.env);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setClientError(null);
    if (env.error !== null) {
      setClientError(new Error(`agent.gateway.agent_env: ${env.error}`));
      return;
    }
    const patch: ProjectGatewayPatch = { model: form.model.trim(), agent_env: env.env, keys };
    // Members leave the budgets out (the server would refuse a change to them).
    if (admin) {
      try {
        patch.task_budget_usd = parseBudget("agent.gateway.task_budget_usd", form.task);
        patch.month_budget_usd = parseBudget("agent.gateway.month_budget_usd", form.month);
      } catch (err) {
        setClientError(err as Error);
        return;
      }
    }
    save.mutate(patch);
  };
  return (
    <form className="settings" onSubmit={submit} aria-labelledby="project-gateway-h">
      <fieldset className="card">
        <legend id="project-gateway-h">Model gateway</legend>
        <label>Model (blank: the global model for the preset)
          <input className="mono" value={form.model} placeholder={g.effective_model} onChange={(e) => upd({ model: e.target.value })} aria-describedby="project-model-hint" />
        </label>
        <p id="project-model-hint" className="hint">This project's boxes use {g.effective_model ? <code>{g.effective_model}</code> : "the preset's own model"}.</p>
        <label>Agent environment (one NAME=value a line; added to the global ones)
          <textarea className="mono" rows={3} value={form.env} onChange={(e) => upd({ env: e.target.value })}
            aria-invalid={env.error !== null} aria-describedby={env.error ? "project-env-error" : undefined} />
        </label>
        {env.error && <p id="project-env-error" className="warn">{env.error}</p>}
        <h3>Provider keys</h3>
        <p className="hint">The project's own keys; a key not set here falls through to the global one.</p>
        {PROVIDERS.map(([p, name]) => (
          <SecretField key={`${p}-${version}`} label={`${name} API key`} set={g.keys[p].set} onChange={(v) => { setKeys((k) => ({ ...k, [p]: v })); setSaved(false); }} />
        ))}
        <h3>Budgets</h3>
        <p id="project-budget-hint" className="hint">
          {admin ? "Dollars; 0 = no limit, blank = the global budget." : "Only an admin sets budgets. Blank: the global budget; 0: no limit."}
        </p>
        <label>Per-task budget ($)
          <input type="number" min={0} step="any" value={form.task} readOnly={!admin} aria-describedby="project-budget-hint"
            placeholder="the global budget" onChange={(e) => upd({ task: e.target.value })} />
        </label>
        <label>Monthly budget ($)
          <input type="number" min={0} step="any" value={form.month} readOnly={!admin} aria-describedby="project-budget-hint"
            placeholder="the global budget" onChange={(e) => upd({ month: e.target.value })} />
        </label>
      </fieldset>
      <ErrorBox error={clientError ?? save.error} />
      {saved && <p role="status">Saved.</p>}
      <button type="submit" disabled={save.isPending}>Save model gateway settings</button>
    </form>
  );
}

/** What the project's agents spent this calendar month (UTC), against its monthly budget. */
export function ProjectUsage({ projectId }: { projectId: string }) {
  const key = ["usage", "project", projectId];
  const usage = useQuery({ queryKey: key, queryFn: () => api.get<UsageReport>(`/api/v1/projects/${projectId}/usage`) });
  useLiveRefresh(key, (ev) => ev.project === projectId);
  return (
    <section className="card" aria-labelledby="project-usage-h">
      <h2 id="project-usage-h">Spending this month</h2>
      {usage.data?.since && <p className="hint">Since {usage.data.since.slice(0, 10)} (UTC).</p>}
      {usage.isPending && !usage.error && <Loading what="usage" />}
      <ErrorBox error={usage.error} />
      {usage.data && <UsageSummary report={usage.data} by="model" label="This month" />}
    </section>
  );
}
