import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { api } from "../../api/client";
import type { Project, ProjectPatch, PromptDefaults } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { Link } from "../../lib/router";
import { SecretField } from "../settings/SecretField";
import { ProjectGatewayForm, ProjectUsage } from "./ProjectGateway";

const PRESETS = ["claude-code", "codex", "aider", "opencode", "gemini", "script"];
const KINDS = ["spec", "revise", "implement", "changes"] as const;
type Kind = (typeof KINDS)[number];

/** Whether a repository URL names a remote git repository (what members may choose). */
export function isRemoteRepo(url: string): boolean {
  if (url.includes("::") || /\s/.test(url)) return false;
  const scheme = /^([a-z]+):\/\/(.+)$/i.exec(url);
  if (scheme) return ["https", "http", "ssh", "git"].includes(scheme[1].toLowerCase()) && !scheme[2].startsWith("/");
  return /^[A-Za-z0-9@._[\]-]+:.+$/.test(url) && !url.startsWith("-");
}

/** Checks a GitHub trigger label as typed; returns it trimmed, or throws naming the field. */
export function parseTriggerLabel(text: string): string {
  const label = text.trim();
  if (label.length === 0 || [...label].length > 50) throw new Error("agent.trigger_label: a GitHub label of 1 to 50 characters");
  return label;
}

/** A project's agent: on/off, repository, branch, template, preset, check command, forge (and
 * the GitHub issue label that makes a task), prompt overrides; below it the project's model
 * gateway settings and this month's spending. The custom command, the check command, the box
 * template, a repository on the host and the budgets are admins' to set: a member sees them
 * read-only. Also whether the board follows the agent (the card moves with its progress). */
export function ProjectAgentTab({ projectId, admin }: { projectId: string; admin: boolean }) {
  const client = useQueryClient();
  const project = useQuery({ queryKey: ["project", projectId], queryFn: () => api.get<Project>(`/api/v1/projects/${projectId}`) });
  const defaults = useQuery({ queryKey: ["prompt-defaults"], queryFn: () => api.get<PromptDefaults>("/api/v1/prompts/defaults") });
  const [a, setA] = useState<Project["agent"] | null>(null);
  const [follows, setFollows] = useState<boolean | null>(null);
  const [token, setToken] = useState<string | null | undefined>(undefined);
  const [hookSecret, setHookSecret] = useState<string | null | undefined>(undefined);
  const [showDefault, setShowDefault] = useState<Kind | null>(null);
  const [saved, setSaved] = useState(false);
  const [clientError, setClientError] = useState<Error | null>(null);
  useEffect(() => { if (project.data && !a) setA(project.data.agent); }, [project.data, a]);
  useEffect(() => { if (project.data && follows === null) setFollows(project.data.board_follows_agent ?? false); }, [project.data, follows]);
  const save = useMutation({
    mutationFn: (patch: ProjectPatch) => api.patch<Project>(`/api/v1/projects/${projectId}`, patch),
    onSuccess: (p) => {
      client.setQueryData(["project", projectId], p);
      setA(p.agent);
      setFollows(p.board_follows_agent);
      // The preset decides the model the project's boxes get.
      void client.invalidateQueries({ queryKey: ["project-gateway", projectId] });
      setSaved(true);
    },
  });
  if (project.isPending || !a) return project.error ? <ErrorBox error={project.error} /> : <Loading what="project" />;
  const upd = (p: Partial<Project["agent"]>) => { setA({ ...a, ...p }); setSaved(false); };
  const prompts = a.prompts as Record<Kind, string>;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setClientError(null);
    const { enabled, repo_url, base_branch, template, preset, command, forge, check_command, preview_command, preview_ready_path } = a;
    // The label only matters (and is only shown) for the github forge.
    let github = {};
    if (forge === "github") {
      try {
        github = { trigger_label: parseTriggerLabel(a.trigger_label) };
      } catch (err) {
        setClientError(err as Error);
        return;
      }
    }
    // Members leave the admin-only fields out (the server would refuse a change to them).
    const hostLevel = admin ? { template, command, check_command, preview_command } : {};
    save.mutate({ board_follows_agent: follows ?? undefined, agent: { enabled, repo_url, base_branch, preset, forge, ...github, ...hostLevel, preview_ready_path, prompts: a.prompts, github_token: token, github_webhook_secret: hookSecret } });
  };
  const fallback = (k: Kind) => {
    const g = (defaults.data?.global as Record<Kind, string> | undefined)?.[k];
    return g && g.trim() ? { from: "global default", text: g } : { from: "built-in default", text: (defaults.data?.built_in as Record<Kind, string> | undefined)?.[k] ?? "" };
  };
  return (
    <>
      <form className="settings" onSubmit={submit} aria-labelledby="agent-tab-h">
        <p><Link to={`/projects/${projectId}`}>← {project.data!.name}</Link></p>
        <h1 id="agent-tab-h">Agent for {project.data!.name}</h1>
        <fieldset className="card">
          <legend>Agent</legend>
          <label className="check"><input type="checkbox" checked={a.enabled} onChange={(e) => upd({ enabled: e.target.checked })} /> Agent enabled for this project</label>
          <label>Repository URL<input value={a.repo_url} onChange={(e) => upd({ repo_url: e.target.value })} placeholder={admin ? "/srv/git/app.git or https://…" : "https://… or git@host:owner/repo.git"} aria-describedby="repo-url-hint" /></label>
          <p id="repo-url-hint" className="hint">{admin ? "A repository on this host must sit under a folder allowed in the settings." : "A remote git URL; only admins may point a project at a repository on this host."}</p>
          {!admin && a.repo_url && !isRemoteRepo(a.repo_url) && <p className="hint" role="note">This project uses a repository on the host, set by an admin.</p>}
          <label>Base branch<input value={a.base_branch} onChange={(e) => upd({ base_branch: e.target.value })} /></label>
          {admin && <label>Box template<input value={a.template} onChange={(e) => upd({ template: e.target.value })} placeholder="the global default" /></label>}
          <label>Agent preset
            <select value={a.preset} onChange={(e) => upd({ preset: e.target.value })}>
              {PRESETS.map((p) => <option key={p} value={p}>{p}</option>)}
            </select>
          </label>
          {admin && <label>Custom command (wins over the preset)<input value={a.command} onChange={(e) => upd({ command: e.target.value })} /></label>}
          {!admin && a.command && <p className="hint" role="note">An admin set a custom command for this project; it wins over the preset.</p>}
          <label>Check command
            <input className="mono" value={a.check_command} readOnly={!admin} placeholder={admin ? "e.g. make test" : "none"}
              onChange={(e) => upd({ check_command: e.target.value })} aria-describedby="check-command-hint" />
          </label>
          <p id="check-command-hint" className="hint">
            Runs in the box after every implement or changes round, before the pull request; a failure starts an automatic fix round. Blank: no check.
            {!admin && " Only admins may change it."}
          </p>
          <label>Site preview command
            <input className="mono" value={a.preview_command} readOnly={!admin} placeholder={admin ? "e.g. npm run dev -- --port $PORT --base $APIARY_SITE_BASE" : "none"}
              onChange={(e) => upd({ preview_command: e.target.value })} aria-describedby="preview-command-hint" />
          </label>
          <label>Preview readiness path
            <input className="mono" value={a.preview_ready_path} onChange={(e) => upd({ preview_ready_path: e.target.value })} aria-describedby="preview-command-hint" />
          </label>
          <p id="preview-command-hint" className="hint">
            Serves the site on <code>$PORT</code> in the box after every round, under the sandbox&apos;s rules; the task&apos;s Site link shows it once the readiness path answers. Requests keep their path under <code>$APIARY_SITE_BASE</code>. Blank: no preview.
            {!admin && " Only admins may change the command."}
          </p>
          <label>Forge
            <select value={a.forge} onChange={(e) => upd({ forge: e.target.value })}>
              <option value="local">local (Apiary's review page)</option>
              <option value="github">github</option>
            </select>
          </label>
          {a.forge === "github" && (
            <>
              <SecretField label="GitHub token" set={a.github_token.set} onChange={setToken} />
              <SecretField label="Webhook secret of this project" set={a.github_webhook_secret.set} onChange={setHookSecret} />
              <p className="hint">Optional: deliveries for this repository must then be signed with it; the global webhook secret no longer reaches this project.</p>
              <label>Trigger label
                <input value={a.trigger_label} maxLength={50} onChange={(e) => upd({ trigger_label: e.target.value })} aria-describedby="trigger-label-hint" />
              </label>
              <p id="trigger-label-hint" className="hint">A GitHub issue with this label becomes a task of this project.</p>
            </>
          )}
        </fieldset>
        <fieldset className="card">
          <legend>Board</legend>
          <label className="check">
            <input type="checkbox" checked={follows ?? false} onChange={(e) => { setFollows(e.target.checked); setSaved(false); }} aria-describedby="board-follows-hint" /> Board follows the agent
          </label>
          <p id="board-follows-hint" className="hint">Hand-off moves the card to In progress, merged to Done, cancelled back to To do.</p>
        </fieldset>
        <fieldset className="card">
          <legend>Prompt overrides (blank = fall back)</legend>
          {KINDS.map((k) => (
            <div key={k}>
              <label>{k} prompt
                <textarea className="mono" rows={4} value={prompts[k]} onChange={(e) => upd({ prompts: { ...a.prompts, [k]: e.target.value } })} />
              </label>
              <button type="button" aria-expanded={showDefault === k} onClick={() => setShowDefault(showDefault === k ? null : k)}>View {fallback(k).from}</button>
              {showDefault === k && <pre className="popover mono" role="note">{fallback(k).text}</pre>}
            </div>
          ))}
        </fieldset>
        <ErrorBox error={clientError ?? save.error ?? defaults.error} />
        {saved && <p role="status">Saved.</p>}
        <button type="submit" disabled={save.isPending}>Save agent settings</button>
      </form>
      <ProjectGatewayForm projectId={projectId} admin={admin} />
      <ProjectUsage projectId={projectId} />
    </>
  );
}
