import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api } from "../../api/client";
import type { Project, Task, User } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { StatusBadge } from "../../components/StatusBadge";
import { Link } from "../../lib/router";

const COLUMNS = [
  ["todo", "To do"],
  ["in_progress", "In progress"],
  ["done", "Done"],
] as const;

type Filter = "all" | "mine" | "agent" | "failed";

/** A project's board: columns by board status, cards with their agent badge. */
export function Board({ projectId, me }: { projectId: string; me: User }) {
  const project = useQuery({ queryKey: ["project", projectId], queryFn: () => api.get<Project>(`/api/v1/projects/${projectId}`) });
  const tasks = useQuery({ queryKey: ["tasks", projectId], queryFn: () => api.get<Task[]>(`/api/v1/projects/${projectId}/tasks`) });
  const [filter, setFilter] = useState<Filter>("all");
  const canWrite = project.data?.access === "write" && me.role !== "agent";
  const shown = (tasks.data ?? []).filter((t) => {
    if (filter === "mine") return t.assignee_id === me.id;
    if (filter === "agent") return t.agent.status !== "none";
    if (filter === "failed") return t.agent.status === "failed";
    return true;
  });
  return (
    <section aria-labelledby="board-h">
      <div className="board-head">
        <h1 id="board-h">{project.data?.name ?? "Board"}</h1>
        {canWrite && <Link to={`/projects/${projectId}/agent`}>Agent settings</Link>}
        <div role="group" aria-label="Filter tasks" className="filters">
          {(["all", "mine", "agent", "failed"] as Filter[]).map((f) => (
            <button key={f} type="button" aria-pressed={filter === f} onClick={() => setFilter(f)}>
              {f === "agent" ? "Agent-managed" : f[0].toUpperCase() + f.slice(1)}
            </button>
          ))}
        </div>
      </div>
      <ErrorBox error={project.error ?? tasks.error} />
      {tasks.isPending ? (
        <Loading what="tasks" />
      ) : (
        <div className="columns">
          {COLUMNS.map(([key, title]) => (
            <div key={key} className="column" aria-label={title} role="region">
              <h2>{title}</h2>
              {shown.filter((t) => t.status === key).map((t) => <TaskCard key={t.id} task={t} />)}
            </div>
          ))}
        </div>
      )}
      {canWrite && <CreateTask projectId={projectId} />}
    </section>
  );
}

function TaskCard({ task }: { task: Task }) {
  return (
    <article className="card task-card" data-testid="task-card" data-task={task.id}>
      <Link to={`/tasks/${task.id}`}>{task.title}</Link>
      <div className="card-foot">
        {task.agent.status !== "none" && <StatusBadge status={task.agent.status} />}
        {task.agent.status === "queued" && task.agent.queue_position && (
          <span className="muted">#{task.agent.queue_position} in queue</span>
        )}
      </div>
    </article>
  );
}

function CreateTask({ projectId }: { projectId: string }) {
  const client = useQueryClient();
  const [title, setTitle] = useState("");
  const [description, setDescription] = useState("");
  const create = useMutation({
    mutationFn: () => api.post<Task>(`/api/v1/projects/${projectId}/tasks`, { title, description }),
    onSuccess: () => {
      setTitle("");
      setDescription("");
      void client.invalidateQueries({ queryKey: ["tasks", projectId] });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (title.trim()) create.mutate();
  };
  return (
    <form className="card create-task" onSubmit={submit} aria-label="Create a task">
      <h2>New task</h2>
      <label>
        Title
        <input value={title} onChange={(e) => setTitle(e.target.value)} required maxLength={500} />
      </label>
      <label>
        Description
        <textarea value={description} onChange={(e) => setDescription(e.target.value)} rows={3} />
      </label>
      <ErrorBox error={create.error} />
      <button type="submit" disabled={create.isPending}>Create task</button>
    </form>
  );
}
