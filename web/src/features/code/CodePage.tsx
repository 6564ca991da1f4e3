import { useQuery } from "@tanstack/react-query";
import { Fragment, useMemo } from "react";
import { api } from "../../api/client";
import type { CodeFile, CodeTree, Task } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { Link, setSearch, useSearch } from "../../lib/router";
import { Code } from "../review/DiffTable";
import { useHighlighter } from "../review/useHighlighter";

const CHANGE_LABEL: Record<string, string> = {
  branch: "changed on the branch",
  uncommitted: "changed, not committed",
  added: "new, not committed",
};

/** The code view: the task's box's workspace as it is now, read-only — the files (each marked
 *  with how it differs from the base) and the one chosen in `?path=`. Served by the box's
 *  control plane through Apiary; a parked or torn-down box says so. */
export function CodePage({ taskId }: { taskId: string }) {
  const path = useSearch().get("path");
  const task = useQuery({ queryKey: ["task", taskId], queryFn: () => api.get<Task>(`/api/v1/tasks/${taskId}`) });
  const tree = useQuery({
    queryKey: ["code-tree", taskId, task.data?.agent.status, task.data?.agent.round],
    queryFn: () => api.get<CodeTree>(`/api/v1/tasks/${taskId}/agent/code/tree`),
    enabled: !!task.data,
    retry: false,
  });
  const file = useQuery({
    queryKey: ["code-file", taskId, path, task.data?.agent.status, task.data?.agent.round],
    queryFn: () => api.get<CodeFile>(`/api/v1/tasks/${taskId}/agent/code/file?path=${encodeURIComponent(path!)}`),
    enabled: !!path && !!task.data,
    retry: false,
  });
  const hl = useHighlighter();
  // Highlighted by the file's type when it is known (the review page's highlighter).
  const lines = useMemo(() => {
    const text = file.data?.text;
    const language = file.data && hl?.languageOf(file.data.path);
    return text && language ? hl!.highlightLines(text.split("\n"), language) : null;
  }, [hl, file.data]);
  if (task.isPending) return <Loading what="the task" />;
  if (task.error) return <ErrorBox error={task.error} />;
  const changed = tree.data?.files.filter((f) => f.change).length ?? 0;
  return (
    <div className="code-page">
      <p><Link to={`/tasks/${taskId}`}>← {task.data!.title}</Link></p>
      <h1>Code in the box</h1>
      {tree.isPending && <Loading what="the workspace" />}
      {tree.error && <ErrorBox error={tree.error} />}
      {tree.data && (
        <div className="code-columns">
          <nav aria-label="Files" className="card code-files">
            <p className="muted">{tree.data.files.length} files, {changed} changed{tree.data.truncated ? " (list cut at 5000)" : ""}</p>
            <ul>
              {tree.data.files.map((f) => (
                <li key={f.path}>
                  <a
                    href={`?path=${encodeURIComponent(f.path)}`}
                    aria-current={f.path === path ? "true" : undefined}
                    onClick={(e) => { e.preventDefault(); setSearch({ path: f.path }); }}
                  >
                    {f.path}
                  </a>
                  {f.change && <span className={`pill change-${f.change}`} title={CHANGE_LABEL[f.change]}> {f.change}</span>}
                  {f.kind === "link" && <span className="muted"> (link)</span>}
                </li>
              ))}
            </ul>
          </nav>
          <section className="card code-file" aria-label="File">
            {!path && <p className="muted">Choose a file.</p>}
            {file.isPending && path && <Loading what={path} />}
            {file.error && <ErrorBox error={file.error} />}
            {file.data && (
              <>
                <h2 className="mono">{file.data.path}</h2>
                <p className="muted">
                  {file.data.size} bytes{file.data.change ? ` · ${CHANGE_LABEL[file.data.change]}` : ""}
                  {file.data.truncated ? " · cut at 1 MiB" : ""}
                </p>
                {file.data.text === null || file.data.text === undefined
                  ? <p className="muted">A binary file.</p>
                  : (
                    <pre className="mono code-text" data-testid="code-text">
                      {lines ? lines.map((l, i) => <Fragment key={i}><Code line={l} />{"\n"}</Fragment>) : file.data.text}
                    </pre>
                  )}
              </>
            )}
          </section>
        </div>
      )}
    </div>
  );
}
