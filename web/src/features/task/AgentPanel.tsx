import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import type { Task, TransitionOut } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorBox } from "../../components/Feedback";
import { StatusBadge } from "../../components/StatusBadge";
import { actionsFor, caption, type Action, type AgentStatus } from "../../lib/agent";
import { Link } from "../../lib/router";
import { ChecksSummary } from "../review/ChecksPanel";
import { FollowUpForm } from "./FollowUpForm";
import { SiteState } from "./SiteState";
import { TaskUsage } from "./TaskUsage";

const LABEL: Record<Action, string> = {
  handoff: "Hand to agent",
  "approve-spec": "Approve spec",
  "revise-spec": "Revise spec",
  review: "Review PR",
  "mark-merged": "Mark merged",
  retry: "Retry",
  cancel: "Cancel",
  teardown: "Tear down now",
};

const QUESTION: Partial<Record<Action, string>> = {
  cancel: "Stop the agent and destroy its box?",
  teardown: "Destroy the box now?",
  "mark-merged": "Merge the branch into the base branch?",
};

/** The agent's status, what comes next, the checks of its PR, its links, the actions the viewer
 *  may take and what its model requests cost. */
export function AgentPanel({ task, canWrite }: { task: Task; canWrite: boolean }) {
  const client = useQueryClient();
  const a = task.agent;
  const status = a.status as AgentStatus;
  const [feedback, setFeedback] = useState("");
  const [revising, setRevising] = useState(false);
  const act = useMutation({
    mutationFn: ({ action, body }: { action: Action; body?: unknown }) =>
      api.post<TransitionOut>(`/api/v1/tasks/${task.id}/agent/${action}`, body ?? {}),
    onSuccess: (out) => {
      client.setQueryData(["task", task.id], out.task);
      void client.invalidateQueries({ queryKey: ["tasks", task.project_id] });
      setRevising(false);
      setFeedback("");
    },
  });
  const links = [
    ["Code", a.code_url],
    ["Site", a.site_url],
    ["Pull request", a.pr_url],
  ].filter(([, url]) => !!url) as [string, string][];
  return (
    <section className="card agent-panel" aria-labelledby="agent-h">
      <h2 id="agent-h">Agent</h2>
      <p>
        <StatusBadge status={a.status} /> {a.round > 0 && <span className="muted">round {a.round}</span>}{" "}
        {a.parked && <span className="pill">parked</span>}
      </p>
      <p className="caption" data-testid="agent-caption">{caption(status, a.queue_position)}</p>
      {a.status === "failed" && a.last_error && (
        <div className="error" role="alert" data-testid="agent-error">Error: {a.last_error}</div>
      )}
      {a.status !== "failed" && a.last_error && <p className="warn">Last problem: {a.last_error}</p>}
      <ChecksSummary taskId={task.id} checks={a.checks} fixRounds={a.fix_rounds} />
      {links.length > 0 && (
        <ul className="links">
          {links.map(([label, url]) => (
            <li key={label}>
              {a.parked && label !== "Pull request"
                // A parked box is stopped: its views come back with it.
                ? <span className="muted" data-testid={`link-parked-${label.toLowerCase()}`}>{label}: parked — resumes on your next action</span>
                // The site is the agent's app, served from an origin of its own: a tab of its own.
                : <><a href={url} target={label === "Site" || !url.startsWith(window.location.origin) ? "_blank" : undefined} rel="noreferrer">{label}</a>
                  {label === "Site" && !a.box_torn_down && <SiteState taskId={task.id} />}</>}
            </li>
          ))}
        </ul>
      )}
      {canWrite && (
        <div className="actions" role="group" aria-label="Agent actions">
          {actionsFor(status, a.box_torn_down).map((action) => {
            if (action === "review") return <Link key={action} to={`/tasks/${task.id}/review`} className="button">{LABEL[action]}</Link>;
            if (action === "revise-spec") return (
              <button key={action} type="button" onClick={() => setRevising(!revising)} aria-expanded={revising}>{LABEL[action]}</button>
            );
            const q = QUESTION[action];
            if (q) return <ConfirmButton key={action} label={LABEL[action]} question={q} disabled={act.isPending} onConfirm={() => act.mutate({ action })} />;
            return (
              <button key={action} type="button" disabled={act.isPending} onClick={() => act.mutate({ action })}>
                {LABEL[action]}
              </button>
            );
          })}
        </div>
      )}
      {revising && (
        <form className="revise" onSubmit={(e) => { e.preventDefault(); act.mutate({ action: "revise-spec", body: { feedback } }); }}>
          <label>
            What should change in the spec?
            <textarea value={feedback} onChange={(e) => setFeedback(e.target.value)} rows={3} required />
          </label>
          <button type="submit" disabled={act.isPending || !feedback.trim()}>Send feedback</button>
        </form>
      )}
      <ErrorBox error={act.error} />
      {canWrite && (status === "speccing" || status === "implementing") && <FollowUpForm taskId={task.id} />}
      <TaskUsage taskId={task.id} />
    </section>
  );
}
