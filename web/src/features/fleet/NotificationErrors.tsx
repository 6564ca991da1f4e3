import type { NotificationError } from "../../api/types";
import { Link } from "../../lib/router";
import { ageSince } from "./age";
import { LongText } from "./LongText";

/** The newest failed notification deliveries: when, where to, for what, and why. */
export function NotificationErrors({ errors, now }: { errors: NotificationError[]; now: number }) {
  return (
    <section className="card fleet-section" aria-labelledby="fleet-notify-h">
      <h2 id="fleet-notify-h">Notification errors <span className="count">({errors.length})</span></h2>
      {errors.length === 0 ? (
        <p className="muted">Every notification was delivered.</p>
      ) : (
        <table className="fleet-table" aria-labelledby="fleet-notify-h">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Channel</th>
              <th scope="col">Event</th>
              <th scope="col">Task</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {errors.map((e) => {
              const why = [e.status_code ? `${e.error} (HTTP ${e.status_code})` : e.error, e.body].filter(Boolean).join("\n");
              return (
                <tr key={e.id} data-testid="fleet-notify-row">
                  <td>{ageSince(e.created_at, now)} ago</td>
                  <td>{e.channel}</td>
                  <td>{e.event}</td>
                  <td>{e.task_id ? <Link to={`/tasks/${e.task_id}`}>{e.task_id}</Link> : <span className="muted">—</span>}</td>
                  <td><LongText text={why} /></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
