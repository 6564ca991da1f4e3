import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState, type DragEvent } from "react";
import { api } from "../../api/client";
import type { Project, Task, User } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { Link, setSearch, useSearch } from "../../lib/router";
import { COLUMNS } from "./columns";
import { CreateTask } from "./CreateTask";
import { CARD_DRAG_TYPE, MOVE_HINT_ID, TaskCard } from "./TaskCard";
import { TaskDrawer } from "./TaskDrawer";
import { useTaskMoves } from "./useTaskMoves";

const FILTERS = { all: "All", mine: "Mine", agent: "Agent-managed", failed: "Failed" } as const;
type Filter = keyof typeof FILTERS;

function parseFilter(v: string | null): Filter {
  return v && v in FILTERS ? (v as Filter) : "all";
}

/** Whether a task passes the board's filters. */
function passes(t: Task, filter: Filter, text: string, me: User): boolean {
  if (filter === "mine" && t.assignee_id !== me.id) return false;
  if (filter === "agent" && t.agent.status === "none") return false;
  if (filter === "failed" && t.agent.status !== "failed") return false;
  const q = text.trim().toLowerCase();
  return !q || t.title.toLowerCase().includes(q) || t.description.toLowerCase().includes(q);
}

/** A project's board: columns by board status, cards with their agent badge. Cards move by drag
 *  and drop or by keyboard; the server's list (refetched on every live event) decides where a
 *  card stands, so a task the agent moves changes column by itself. The filters and the open
 *  task live in the URL (`?filter=agent&q=login&task=<id>`). */
export function Board({ projectId, me }: { projectId: string; me: User }) {
  const project = useQuery({ queryKey: ["project", projectId], queryFn: () => api.get<Project>(`/api/v1/projects/${projectId}`) });
  const tasks = useQuery({ queryKey: ["tasks", projectId], queryFn: () => api.get<Task[]>(`/api/v1/projects/${projectId}/tasks`) });
  const search = useSearch();
  const filter = parseFilter(search.get("filter"));
  const text = search.get("q") ?? "";
  const openTask = search.get("task");
  const canWrite = project.data?.access === "write" && me.role !== "agent";
  const moves = useTaskMoves(projectId);
  const [dragging, setDragging] = useState<string | null>(null);
  const [over, setOver] = useState<string | null>(null);

  // A card that moves changes column, so React mounts it anew: give its title the focus back.
  const columns = useRef<HTMLDivElement>(null);
  const focusCard = useRef<string | null>(null);
  useEffect(() => {
    const id = focusCard.current;
    if (!id || !columns.current) return;
    const card = Array.from(columns.current.querySelectorAll<HTMLElement>("[data-task]")).find((el) => el.dataset.task === id);
    card?.querySelector<HTMLElement>(".card-title")?.focus();
    focusCard.current = null;
  });

  const all = tasks.data ?? [];
  const shown = all.filter((t) => passes(t, filter, text, me));
  const moveTo = (task: Task, to: string, focus: boolean) => {
    if (moves.move(task, to) && focus) focusCard.current = task.id;
  };
  const dropZone = (to: string) => {
    const accept = (e: DragEvent) => {
      if (!canWrite || !Array.from(e.dataTransfer.types).includes(CARD_DRAG_TYPE)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "move";
      if (over !== to) setOver(to);
    };
    return {
      onDragEnter: accept,
      onDragOver: accept,
      onDragLeave: (e: DragEvent) => {
        if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver((o) => (o === to ? null : o));
      },
      onDrop: (e: DragEvent) => {
        if (!canWrite) return;
        e.preventDefault();
        const id = e.dataTransfer.getData(CARD_DRAG_TYPE) || dragging;
        setOver(null);
        setDragging(null);
        const task = all.find((t) => t.id === id);
        if (task) moveTo(task, to, false);
      },
    };
  };
  const closeTask = () => {
    focusCard.current = openTask;
    setSearch({ task: null });
  };

  return (
    <section aria-labelledby="board-h">
      <div className="board-head">
        <h1 id="board-h">{project.data?.name ?? "Board"}</h1>
        {canWrite && <Link to={`/projects/${projectId}/agent`}>Agent settings</Link>}
        <label className="board-search">
          Filter by text
          <input type="search" value={text} onChange={(e) => setSearch({ q: e.target.value }, { replace: true })} />
        </label>
        <div role="group" aria-label="Filter tasks" className="filters">
          {(Object.keys(FILTERS) as Filter[]).map((f) => (
            <button key={f} type="button" aria-pressed={filter === f} onClick={() => setSearch({ filter: f === "all" ? null : f }, { replace: true })}>
              {FILTERS[f]}
            </button>
          ))}
        </div>
      </div>
      <ErrorBox error={project.error ?? tasks.error} />
      {moves.error && (
        <div className="error" role="alert">
          {moves.error}{" "}
          <button type="button" onClick={moves.dismissError}>Dismiss</button>
        </div>
      )}
      <div className="sr-only" role="status" aria-live="polite" data-testid="board-announcer">{moves.announcement}</div>
      <p id={MOVE_HINT_ID} hidden>Left and right arrow keys move the card to the next column.</p>
      {tasks.isPending ? (
        <Loading what="tasks" />
      ) : (
        <>
          {all.length > 0 && shown.length === 0 && <p className="muted">No task matches these filters.</p>}
          <div className="columns" ref={columns}>
            {COLUMNS.map((c) => {
              const cards = shown.filter((t) => moves.status(t) === c.status);
              return (
                <div key={c.status} className={`column${over === c.status ? " drop-target" : ""}`} aria-label={c.title} role="region" data-testid={`column-${c.status}`} {...dropZone(c.status)}>
                  <h2>{c.title} <span className="count">{cards.length}</span></h2>
                  {cards.map((t) => (
                    <TaskCard
                      key={t.id}
                      task={t}
                      status={c.status}
                      canMove={canWrite}
                      dragging={dragging === t.id}
                      onMove={(to) => moveTo(t, to, true)}
                      onDrag={(id) => {
                        setDragging(id);
                        if (!id) setOver(null);
                      }}
                    />
                  ))}
                </div>
              );
            })}
          </div>
        </>
      )}
      {canWrite && <CreateTask projectId={projectId} />}
      {openTask && <TaskDrawer taskId={openTask} me={me} onClose={closeTask} />}
    </section>
  );
}
