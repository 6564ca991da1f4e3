import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api } from "../../api/client";
import type { Comment, Person } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";

/** People's comments on the task. */
export function Comments({ taskId, canWrite }: { taskId: string; canWrite: boolean }) {
  const client = useQueryClient();
  const comments = useQuery({ queryKey: ["comments", taskId], queryFn: () => api.get<Comment[]>(`/api/v1/tasks/${taskId}/comments`) });
  const users = useQuery({ queryKey: ["users"], queryFn: () => api.get<Person[]>("/api/v1/users") });
  const [body, setBody] = useState("");
  const add = useMutation({
    mutationFn: () => api.post<Comment>(`/api/v1/tasks/${taskId}/comments`, { body }),
    onSuccess: () => {
      setBody("");
      void client.invalidateQueries({ queryKey: ["comments", taskId] });
    },
  });
  const name = (id: string) => users.data?.find((u) => u.id === id)?.name ?? "someone";
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (body.trim()) add.mutate();
  };
  return (
    <section className="card" aria-labelledby="comments-h">
      <h2 id="comments-h">Comments</h2>
      {comments.isPending && <Loading what="comments" />}
      <ErrorBox error={comments.error} />
      <ul className="comments">
        {comments.data?.map((c) => (
          <li key={c.id}><strong>{name(c.author_id)}</strong>: {c.body}</li>
        ))}
      </ul>
      {canWrite && (
        <form onSubmit={submit} aria-label="Add a comment">
          <label>
            Comment
            <textarea value={body} onChange={(e) => setBody(e.target.value)} rows={2} />
          </label>
          <button type="submit" disabled={add.isPending || !body.trim()}>Comment</button>
          <ErrorBox error={add.error} />
        </form>
      )}
    </section>
  );
}
