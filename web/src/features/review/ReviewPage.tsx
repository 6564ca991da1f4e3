import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useMemo, useState } from "react";
import { api, ApiError } from "../../api/client";
import type { Diff, Project, Task, TransitionOut, User } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorBox, Loading } from "../../components/Feedback";
import { StatusBadge } from "../../components/StatusBadge";
import { Link, setSearch, useSearch } from "../../lib/router";
import { renderMarkdown } from "../task/markdown";
import { ChecksPanel } from "./ChecksPanel";
import type { Commenting, DiffView, Draft } from "./DiffTable";
import { diffCutNote, parseDiff } from "./parseDiff";
import { ReviewDiff } from "./ReviewDiff";

/** The review of a task's pull request. On the `local` forge it is Apiary's own PR page: the
 *  diff file by file (highlighted, unified or side by side as `?view=split` says) and line
 *  comments in Markdown. On either forge a general comment (not tied to a line)
 *  can be part of the review, so changes can be requested of a `github` PR too; mark merged.
 *  Above the diff: the last check result of the PR head and the automatic fix rounds spent. */
export function ReviewPage({ taskId, me }: { taskId: string; me: User }) {
  const client = useQueryClient();
  const task = useQuery({ queryKey: ["task", taskId], queryFn: () => api.get<Task>(`/api/v1/tasks/${taskId}`) });
  const project = useQuery({
    queryKey: ["project", task.data?.project_id],
    queryFn: () => api.get<Project>(`/api/v1/projects/${task.data!.project_id}`),
    enabled: !!task.data,
  });
  const diff = useQuery({
    queryKey: ["diff", taskId, task.data?.agent.round, task.data?.agent.status],
    queryFn: () => api.get<Diff>(`/api/v1/tasks/${taskId}/agent/diff`),
    enabled: !!task.data?.agent.branch && project.data?.agent.forge === "local",
  });
  const [drafts, setDrafts] = useState<Draft[]>([]);
  const [open, setOpen] = useState<{ path: string; line: number } | null>(null);
  const [general, setGeneral] = useState("");
  const view: DiffView = useSearch().get("view") === "split" ? "split" : "unified";
  const onView = useCallback((v: DiffView) => setSearch({ view: v === "split" ? "split" : null }, { replace: true }), []);
  const files = useMemo(() => (diff.data ? parseDiff(diff.data.diff) : []), [diff.data]);
  const canWrite = project.data?.access === "write" && me.role !== "agent";
  const ready = task.data?.agent.status === "pr_ready";
  const commenting: Commenting = useMemo(() => ({
    enabled: canWrite && ready,
    drafts,
    open,
    start: (path, line) => setOpen({ path, line }),
    add: (body) => {
      if (open && body) setDrafts((ds) => [...ds, { ...open, body }]);
      setOpen(null);
    },
    discard: () => setOpen(null),
  }), [canWrite, ready, drafts, open]);
  const done = (out: TransitionOut) => {
    client.setQueryData(["task", taskId], out.task);
    setDrafts([]);
    setGeneral("");
  };
  // The review: the general comment (no path) first, then the line comments.
  const review = [...(general.trim() ? [{ body: general.trim() }] : []), ...drafts];
  const requestChanges = useMutation({
    mutationFn: () => api.post<TransitionOut>(`/api/v1/tasks/${taskId}/agent/request-changes`, { comments: review }),
    onSuccess: done,
  });
  const merge = useMutation({
    mutationFn: () => api.post<TransitionOut>(`/api/v1/tasks/${taskId}/agent/mark-merged`),
    onSuccess: done,
  });
  if (task.isPending) return <Loading what="pull request" />;
  if (task.error) return <ErrorBox error={task.error} />;
  const t = task.data!;
  const local = project.data?.agent.forge === "local";
  const cut = diff.data ? diffCutNote(diff.data.diff) : null;
  return (
    <section className="review" aria-labelledby="review-h">
      <p><Link to={`/tasks/${taskId}`}>← {t.title}</Link></p>
      <h1 id="review-h">Review: {t.title}</h1>
      <p>
        <StatusBadge status={t.agent.status} /> {diff.data && <code>{diff.data.base}...{diff.data.branch}</code>}{" "}
        <span className="muted">round {t.agent.round}</span>
      </p>
      {project.data && !local && (
        <p>
          The change is reviewed on the project's forge{t.agent.pr_url ? <>: <a href={t.agent.pr_url} target="_blank" rel="noreferrer">open the pull request</a></> : ""}.
          Requesting changes here sends your comment to the agent for another round.
        </p>
      )}
      <ChecksPanel checks={t.agent.checks} fixRounds={t.agent.fix_rounds} />
      {local && diff.isPending && t.agent.branch && <Loading what="diff" />}
      <ErrorBox error={diff.error} />
      <ReviewDiff files={files} view={view} onView={onView} commenting={commenting} />
      {cut && <p className="warn">{cut}</p>}
      {diff.data && files.length === 0 && <p className="muted">No changes between the base and the branch.</p>}
      {canWrite && ready && (
        <div className="card review-actions" role="group" aria-label="Review">
          <label>
            Review comment (for the whole change)
            <textarea value={general} onChange={(e) => setGeneral(e.target.value)} rows={3} aria-describedby="general-hint" />
          </label>
          <p className="hint" id="general-hint">Markdown is rendered.</p>
          {general.trim() && (
            <details>
              <summary>Preview</summary>
              <div className="markdown" data-testid="general-preview" dangerouslySetInnerHTML={{ __html: renderMarkdown(general) }} />
            </details>
          )}
          {local && <p>{drafts.length} line comment(s) in this review.</p>}
          <button type="button" disabled={review.length === 0 || requestChanges.isPending} onClick={() => requestChanges.mutate()}>
            Request changes
          </button>
          <ConfirmButton label="Mark merged" question="Merge the branch into the base branch?" disabled={merge.isPending} onConfirm={() => merge.mutate()} />
          <ErrorBox error={requestChanges.error} />
          {merge.error instanceof ApiError && merge.error.code === "merge_conflict" ? (
            <div className="error" role="alert" data-testid="merge-conflict">{merge.error.message}</div>
          ) : (
            <ErrorBox error={merge.error} />
          )}
        </div>
      )}
    </section>
  );
}
