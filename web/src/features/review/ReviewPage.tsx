import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, ApiError } from "../../api/client";
import type { Diff, Project, Task, TransitionOut, User } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorBox, Loading } from "../../components/Feedback";
import { StatusBadge } from "../../components/StatusBadge";
import { Link } from "../../lib/router";
import { ChecksPanel } from "./ChecksPanel";
import { parseDiff } from "./parseDiff";

type Draft = { path: string; line: number; body: string };

/** The review of a task's pull request. On the `local` forge it is Apiary's own PR page: the
 *  diff file by file and line comments. On either forge a general comment (not tied to a line)
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
  const [text, setText] = useState("");
  const [general, setGeneral] = useState("");
  const canWrite = project.data?.access === "write" && me.role !== "agent";
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
  const files = diff.data ? parseDiff(diff.data.diff) : [];
  const ready = t.agent.status === "pr_ready";
  const local = project.data?.agent.forge === "local";
  const addDraft = () => {
    if (open && text.trim()) setDrafts([...drafts, { ...open, body: text.trim() }]);
    setOpen(null);
    setText("");
  };
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
      {files.map((f) => (
        <div key={f.path} className="card diff-file">
          <h2 className="mono">{f.path}</h2>
          <table className="diff" aria-label={`Changes in ${f.path}`}>
            <tbody>
              {f.rows.map((r, i) => (
                <tr key={i} className={`d-${r.kind}`}>
                  <td className="ln">{r.oldLine ?? ""}</td>
                  <td className="ln">
                    {r.newLine !== null && canWrite && ready ? (
                      <button type="button" className="ln-btn" aria-label={`Comment on ${f.path} line ${r.newLine}`} onClick={() => { setOpen({ path: f.path, line: r.newLine! }); setText(""); }}>
                        {r.newLine}
                      </button>
                    ) : (r.newLine ?? "")}
                  </td>
                  <td className="code"><pre>{r.kind === "hunk" ? r.text : r.text || " "}</pre>
                    {drafts.filter((d) => d.path === f.path && d.line === r.newLine && r.kind !== "hunk").map((d, k) => (
                      <div key={k} className="draft">💬 {d.body}</div>
                    ))}
                    {open && open.path === f.path && open.line === r.newLine && r.kind !== "hunk" && (
                      <div className="comment-box">
                        <label>
                          Comment on line {r.newLine}
                          <textarea value={text} onChange={(e) => setText(e.target.value)} rows={2} autoFocus />
                        </label>
                        <button type="button" onClick={addDraft} disabled={!text.trim()}>Add comment</button>
                        <button type="button" onClick={() => setOpen(null)}>Discard</button>
                      </div>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
      {diff.data && files.length === 0 && <p className="muted">No changes between the base and the branch.</p>}
      {canWrite && ready && (
        <div className="card review-actions" role="group" aria-label="Review">
          <label>
            Review comment (for the whole change)
            <textarea value={general} onChange={(e) => setGeneral(e.target.value)} rows={3} />
          </label>
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
