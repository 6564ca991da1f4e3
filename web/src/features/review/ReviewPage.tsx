import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, ApiError } from "../../api/client";
import type { Diff, Project, Task, TransitionOut, User } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorBox, Loading } from "../../components/Feedback";
import { StatusBadge } from "../../components/StatusBadge";
import { Link } from "../../lib/router";
import { parseDiff } from "./parseDiff";

type Draft = { path: string; line: number; body: string };

/** Apiary's own pull request page (the `local` forge): the diff file by file, line comments
 *  that become the review, request changes, mark merged. */
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
    enabled: !!task.data?.agent.branch,
  });
  const [drafts, setDrafts] = useState<Draft[]>([]);
  const [open, setOpen] = useState<{ path: string; line: number } | null>(null);
  const [text, setText] = useState("");
  const canWrite = project.data?.access === "write" && me.role !== "agent";
  const done = (out: TransitionOut) => {
    client.setQueryData(["task", taskId], out.task);
    setDrafts([]);
  };
  const requestChanges = useMutation({
    mutationFn: () => api.post<TransitionOut>(`/api/v1/tasks/${taskId}/agent/request-changes`, { comments: drafts }),
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
      {diff.isPending && t.agent.branch && <Loading what="diff" />}
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
          <p>{drafts.length} comment(s) in this review.</p>
          <button type="button" disabled={drafts.length === 0 || requestChanges.isPending} onClick={() => requestChanges.mutate()}>
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
