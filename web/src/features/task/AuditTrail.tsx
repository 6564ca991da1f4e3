import { useQuery } from "@tanstack/react-query";
import { api } from "../../api/client";
import type { TaskEvent } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";

/** Every transition of the task, with who made it. */
export function AuditTrail({ taskId }: { taskId: string }) {
  const events = useQuery({ queryKey: ["events", taskId], queryFn: () => api.get<TaskEvent[]>(`/api/v1/tasks/${taskId}/events`) });
  return (
    <section className="card" aria-labelledby="audit-h">
      <h2 id="audit-h">History</h2>
      {events.isPending && <Loading what="history" />}
      <ErrorBox error={events.error} />
      <ol className="audit" data-testid="audit">
        {events.data?.map((e) => (
          <li key={e.id}>
            <time dateTime={e.created_at}>{new Date(e.created_at).toLocaleString()}</time>{" "}
            {e.from_status} → <strong>{e.to_status}</strong> <span className="muted">by {e.actor_kind}</span>
            {e.message && <span> — {e.message}</span>}
          </li>
        ))}
      </ol>
    </section>
  );
}
