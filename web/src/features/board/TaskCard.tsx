import { useRef, useState, type DragEvent, type KeyboardEvent } from "react";
import type { Task } from "../../api/types";
import { StatusBadge } from "../../components/StatusBadge";
import { Link, withSearch } from "../../lib/router";
import { COLUMNS, neighbour } from "./columns";

/** The drag data type of a card (its task id); columns accept drags that carry it. */
export const CARD_DRAG_TYPE = "application/x-apiary-task";

/** The element that holds a card's keyboard hint (see `Board`). */
export const MOVE_HINT_ID = "board-move-hint";

type Props = {
  task: Task;
  /** The column the card shows in (the server's status, or where it is being moved). */
  status: string;
  canMove: boolean;
  dragging: boolean;
  onMove: (to: string) => void;
  onDrag: (taskId: string | null) => void;
};

/** One task on the board: its title (opens the sheet), what its agent is doing, and — for
 *  writers — a drag handle on the whole card, the left/right arrow keys and a "Move" menu. */
export function TaskCard({ task, status, canMove, dragging, onMove, onDrag }: Props) {
  const [menu, setMenu] = useState(false);
  const toggle = useRef<HTMLButtonElement>(null);
  const menuId = `move-${task.id}`;
  const onDragStart = (e: DragEvent) => {
    e.dataTransfer.setData(CARD_DRAG_TYPE, task.id);
    e.dataTransfer.setData("text/plain", task.title);
    e.dataTransfer.effectAllowed = "move";
    onDrag(task.id);
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (!canMove || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    if (e.key === "Escape" && menu) {
      setMenu(false);
      toggle.current?.focus();
      return;
    }
    // Arrow keys move the card while its title has focus (they do nothing else there).
    const step = e.key === "ArrowLeft" ? -1 : e.key === "ArrowRight" ? 1 : 0;
    if (!step || !(e.target as HTMLElement).classList.contains("card-title")) return;
    const to = neighbour(status, step);
    if (!to) return;
    e.preventDefault();
    onMove(to);
  };
  return (
    <article
      className={`card task-card${dragging ? " dragging" : ""}`}
      data-testid="task-card"
      data-task={task.id}
      data-status={status}
      draggable={canMove}
      onDragStart={canMove ? onDragStart : undefined}
      onDragEnd={canMove ? () => onDrag(null) : undefined}
      onKeyDown={onKeyDown}
    >
      <Link to={withSearch({ task: task.id })} className="card-title" draggable={false} aria-describedby={canMove ? MOVE_HINT_ID : undefined}>
        {task.title}
      </Link>
      <div className="card-foot">
        <AgentFacts agent={task.agent} />
        {canMove && (
          <button
            ref={toggle}
            type="button"
            className="move-toggle"
            aria-label={`Move "${task.title}"`}
            aria-expanded={menu}
            aria-controls={menuId}
            onClick={() => setMenu((m) => !m)}
          >
            Move…
          </button>
        )}
      </div>
      {canMove && menu && (
        <div id={menuId} role="group" aria-label={`Move "${task.title}" to`} className="move-menu">
          {COLUMNS.filter((c) => c.status !== status).map((c) => (
            <button
              key={c.status}
              type="button"
              aria-label={`Move "${task.title}" to ${c.title}`}
              onClick={() => {
                setMenu(false);
                onMove(c.status);
              }}
            >
              {c.title}
            </button>
          ))}
        </div>
      )}
    </article>
  );
}

/** The agent's status and, when they matter, its place in the queue, review round, checks and cost. */
function AgentFacts({ agent: a }: { agent: Task["agent"] }) {
  if (a.status === "none") return null;
  const checks = a.checks?.checks ?? [];
  const failing = checks.filter((c) => !c.passed).length;
  return (
    <>
      <StatusBadge status={a.status} />
      {a.status === "queued" && a.queue_position != null && (
        <span className="muted" data-testid="queue-position">#{a.queue_position} in queue</span>
      )}
      {a.round > 1 && <span className="pill" data-testid="review-round">round {a.round}</span>}
      {checks.length > 0 && (
        <span className={`pill ${failing ? "bad" : "ok"}`} data-testid="card-checks">
          {failing ? `${failing} of ${checks.length} checks failing` : "checks pass"}
        </span>
      )}
      {a.fix_rounds > 0 && (
        <span className="pill" data-testid="card-fix-rounds">
          {a.fix_rounds} fix round{a.fix_rounds === 1 ? "" : "s"}
        </span>
      )}
      {a.spent_usd > 0 && (
        <span className="muted" data-testid="card-cost" title="spent through the model gateway in this attempt">
          ${a.spent_usd.toFixed(2)}
        </span>
      )}
    </>
  );
}
