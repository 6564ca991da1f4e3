import type { ReactNode } from "react";
import type { FleetTask } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { StatusBadge } from "../../components/StatusBadge";
import { Link } from "../../lib/router";
import { usd } from "../../lib/usage";
import { ageSince } from "./age";
import { LongText } from "./LongText";

export type FleetKind = "running" | "parked" | "queued" | "failures";

type Column = { head: string; num?: boolean; cell: (t: FleetTask, now: number) => ReactNode };

const task: Column = { head: "Task", cell: (t) => <Link to={`/tasks/${t.task_id}`}>{t.title}</Link> };
const project: Column = { head: "Project", cell: (t) => <Link to={`/projects/${t.project_id}`}>{t.project_name}</Link> };
const phase: Column = { head: "Phase", cell: (t) => <StatusBadge status={t.status} /> };
const round: Column = { head: "Round", num: true, cell: (t) => t.round };
const spent: Column = { head: "Spent", num: true, cell: (t) => usd(t.spent_usd) };

const COLUMNS: Record<FleetKind, Column[]> = {
  running: [task, project, phase, { head: "In phase for", cell: (t, now) => ageSince(t.since, now) }, round, spent],
  parked: [task, project, phase, { head: "Waiting for", cell: (t, now) => ageSince(t.since, now) }, round, spent],
  queued: [
    { head: "Position", num: true, cell: (t) => (t.queue_position ? `#${t.queue_position}` : "") },
    task, project,
    { head: "Waiting for", cell: (t, now) => ageSince(t.queued_at ?? t.since, now) },
    { head: "Attempt", num: true, cell: (t) => t.attempt },
  ],
  failures: [
    task, project,
    { head: "Failed", cell: (t, now) => `${ageSince(t.since, now)} ago` },
    round,
    { head: "Attempt", num: true, cell: (t) => t.attempt },
    spent,
    { head: "Error", cell: (t) => (t.last_error ? <LongText text={t.last_error} /> : <span className="muted">none recorded</span>) },
  ],
};

const TITLE: Record<FleetKind, string> = { running: "Running", parked: "Parked", queued: "Queued", failures: "Failures (last 24 h)" };

const EMPTY: Record<FleetKind, string> = {
  running: "No box is running.",
  parked: "No task is parked.",
  queued: "Nothing is waiting for a box.",
  failures: "No failures in the last 24 hours.",
};

const HINT: Partial<Record<FleetKind, string>> = {
  parked: "Waiting on a person with the box taken away; the next action resumes it on a new box.",
};

/** One part of the fleet as a table: what is in it, since when, and a Stop button where the
 *  task can still be cancelled. */
export function FleetTable({ kind, tasks, now, onStop, stopping }: {
  kind: FleetKind;
  tasks: FleetTask[];
  now: number;
  onStop?: (t: FleetTask) => void;
  stopping?: boolean;
}) {
  const id = `fleet-${kind}-h`;
  const cols = COLUMNS[kind];
  return (
    <section className="card fleet-section" aria-labelledby={id}>
      <h2 id={id}>{TITLE[kind]} <span className="count">({tasks.length})</span></h2>
      {HINT[kind] && <p className="hint">{HINT[kind]}</p>}
      {tasks.length === 0 ? (
        <p className="muted">{EMPTY[kind]}</p>
      ) : (
        <table className="fleet-table" aria-labelledby={id}>
          <thead>
            <tr>
              {cols.map((c) => <th key={c.head} scope="col" className={c.num ? "num" : undefined}>{c.head}</th>)}
              {onStop && <th scope="col"><span className="sr-only">Actions</span></th>}
            </tr>
          </thead>
          <tbody>
            {tasks.map((t) => (
              <tr key={t.task_id} data-testid={`fleet-${kind}-row`}>
                {cols.map((c) => <td key={c.head} className={c.num ? "num" : undefined}>{c.cell(t, now)}</td>)}
                {onStop && (
                  <td>
                    <ConfirmButton label="Stop" name={`Stop ${t.title}`} question={`Stop “${t.title}”? The task is cancelled and its box let go.`}
                      disabled={stopping} onConfirm={() => onStop(t)} />
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
