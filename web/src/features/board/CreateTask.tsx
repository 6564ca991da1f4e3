import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api } from "../../api/client";
import type { Task } from "../../api/types";
import { ErrorBox } from "../../components/Feedback";

/** The form under the board that adds a task to "To do". */
export function CreateTask({ projectId }: { projectId: string }) {
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
