import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import type { Task } from "../../api/types";
import { columnTitle } from "./columns";

type Move = { task: Task; to: string };

/** Moves cards between columns, optimistically: the card shows in its new column at once, the
 *  PATCH follows, and a refusal puts it back with the server's reason. The server's list stays
 *  untouched until it answers, so a live refetch meanwhile cannot undo the move on screen. */
export function useTaskMoves(projectId: string) {
  const client = useQueryClient();
  // Task id → the column it was moved to, while the server has not answered.
  const [pending, setPending] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [announcement, setAnnouncement] = useState("");
  const settle = (id: string, to: string) =>
    setPending((p) => {
      if (p[id] !== to) return p; // a later move of the same card is still on its way
      const rest = { ...p };
      delete rest[id];
      return rest;
    });
  const mutation = useMutation({
    mutationFn: ({ task, to }: Move) => api.patch<Task>(`/api/v1/tasks/${task.id}`, { status: to }),
    onSuccess: (updated) => {
      client.setQueryData<Task[]>(["tasks", projectId], (list) => list?.map((t) => (t.id === updated.id ? updated : t)));
      client.setQueryData(["task", updated.id], updated);
      void client.invalidateQueries({ queryKey: ["tasks", projectId] });
    },
    onError: (err, { task, to }) => {
      const reason = (err instanceof Error ? err.message : String(err)).replace(/\.?$/, ".");
      setAnnouncement("");
      setError(`Could not move "${task.title}" to ${columnTitle(to)}: ${reason} It is back in ${columnTitle(task.status)}.`);
    },
    onSettled: (_data, _err, { task, to }) => settle(task.id, to),
  });
  return {
    /** The column a card shows in now. */
    status: (task: Task) => pending[task.id] ?? task.status,
    /** Moves a card; false when it is already there. */
    move(task: Task, to: string): boolean {
      if ((pending[task.id] ?? task.status) === to) return false;
      setPending((p) => ({ ...p, [task.id]: to }));
      setError(null);
      setAnnouncement(`Moved "${task.title}" to ${columnTitle(to)}.`);
      mutation.mutate({ task, to });
      return true;
    },
    /** Why the last move failed, for an alert. */
    error,
    dismissError: () => setError(null),
    /** What the last move did, for a polite live region. */
    announcement,
  };
}
