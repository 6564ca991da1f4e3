import { useQuery } from "@tanstack/react-query";
import { api } from "../../api/client";
import type { TaskEvent } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { viaLabel } from "../../lib/via";

/** Names for the event kinds that are not a status change; an unknown kind shows as is. */
const KIND_LABEL: Record<string, string> = {
  board: "Moved on the board",
  checks: "Checks",
  log: "Log",
  message: "Message to the agent",
};

/** An event's kind for people (`checks` → Checks); an unknown kind shows as is. */
export function eventKindLabel(e: Pick<TaskEvent, "kind">): string {
  return KIND_LABEL[e.kind] ?? e.kind;
}

/** Who did it: the actor's kind, and the chat a human acted from (`by human via Telegram`). */
export function actorText(e: Pick<TaskEvent, "actor_kind" | "via">): string {
  return e.via ? `by ${e.actor_kind} via ${viaLabel(e.via)}` : `by ${e.actor_kind}`;
}

/** Every transition of the task, with who made it (and from which chat), and the other things
 *  that happened to it (checks giving up, …): each with its message. */
export function AuditTrail({ taskId }: { taskId: string }) {
  const events = useQuery({ queryKey: ["events", taskId], queryFn: () => api.get<TaskEvent[]>(`/api/v1/tasks/${taskId}/events`) });
  return (
    <section className="card" aria-labelledby="audit-h">
      <h2 id="audit-h">History</h2>
      {events.isPending && <Loading what="history" />}
      <ErrorBox error={events.error} />
      <ol className="audit" data-testid="audit">
        {events.data?.map((e) => {
          const moved = e.from_status !== e.to_status && (e.from_status || e.to_status);
          return (
            <li key={e.id} data-kind={e.kind}>
              <time dateTime={e.created_at}>{new Date(e.created_at).toLocaleString()}</time>{" "}
              {e.kind !== "transition" && <><span className="pill">{eventKindLabel(e)}</span>{" "}</>}
              {(e.kind === "transition" || moved) && <>{e.from_status} → <strong>{e.to_status}</strong>{" "}</>}
              <span className="muted">{actorText(e)}</span>
              {e.message && <span> — {e.message}</span>}
            </li>
          );
        })}
      </ol>
    </section>
  );
}
