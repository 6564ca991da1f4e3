import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import type { SpecRevision, Task } from "../../api/types";
import { ErrorBox } from "../../components/Feedback";
import { lineDiff } from "./lineDiff";
import { renderMarkdown } from "./markdown";

/** The spec, rendered, with its revisions and what changed between them. */
export function SpecView({ task }: { task: Task }) {
  const revisions = useQuery({
    queryKey: ["revisions", task.id],
    queryFn: () => api.get<SpecRevision[]>(`/api/v1/tasks/${task.id}/agent/spec-revisions`),
  });
  const [compare, setCompare] = useState<number | null>(null);
  if (!task.agent.spec) return null;
  const revs = revisions.data ?? [];
  const shown = compare ? revs.find((r) => r.revision === compare) : null;
  const previous = shown ? revs.find((r) => r.revision === shown.revision - 1) : null;
  return (
    <section className="card spec" id="spec" aria-labelledby="spec-h">
      <h2 id="spec-h">Spec {task.agent.spec_revision > 0 && <span className="muted">revision {task.agent.spec_revision}</span>}</h2>
      <div className="markdown" data-testid="spec" dangerouslySetInnerHTML={{ __html: renderMarkdown(task.agent.spec) }} />
      <ErrorBox error={revisions.error} />
      {revs.length > 1 && (
        <details>
          <summary>Revision history ({revs.length})</summary>
          <ul>
            {revs.map((r) => (
              <li key={r.revision}>
                <button type="button" onClick={() => setCompare(r.revision)} aria-pressed={compare === r.revision}>
                  Revision {r.revision}
                </button>
                {r.feedback && <span className="muted"> after feedback: “{r.feedback}”</span>}
              </li>
            ))}
          </ul>
          {shown && previous && (
            <pre className="spec-diff" aria-label={`Changes from revision ${previous.revision} to ${shown.revision}`}>
              {lineDiff(previous.spec, shown.spec).map((l, i) => (
                <div key={i} className={`d-${l.kind}`}>{l.kind === "add" ? "+ " : l.kind === "del" ? "- " : "  "}{l.text}</div>
              ))}
            </pre>
          )}
        </details>
      )}
    </section>
  );
}
