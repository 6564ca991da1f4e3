import { useEffect, useRef, type KeyboardEvent } from "react";
import type { User } from "../../api/types";
import { Link } from "../../lib/router";
import { TaskSheet } from "../task/TaskSheet";

/** The task sheet beside the board (`?task=<id>`): the board stays in view and live, Close or
 *  Escape (outside a text field) goes back to it. */
export function TaskDrawer({ taskId, me, onClose }: { taskId: string; me: User; onClose: () => void }) {
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => close.current?.focus(), [taskId]);
  const onKeyDown = (e: KeyboardEvent) => {
    const tag = (e.target as HTMLElement).tagName;
    if (e.key !== "Escape" || e.defaultPrevented || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    e.preventDefault();
    onClose();
  };
  return (
    <aside className="drawer" role="dialog" aria-modal="false" aria-labelledby="task-h" onKeyDown={onKeyDown} data-testid="task-drawer">
      <div className="drawer-bar">
        <Link to={`/tasks/${taskId}`}>Open full page</Link>
        <button ref={close} type="button" onClick={onClose}>Close</button>
      </div>
      <TaskSheet taskId={taskId} me={me} embedded />
    </aside>
  );
}
