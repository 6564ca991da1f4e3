// The board's columns: a task's board `status` (the server's `BoardStatus`), in order.

export const COLUMNS = [
  { status: "todo", title: "To do" },
  { status: "in_progress", title: "In progress" },
  { status: "done", title: "Done" },
] as const;

/** A column's title, or the raw status for one this UI does not know. */
export function columnTitle(status: string): string {
  return COLUMNS.find((c) => c.status === status)?.title ?? status;
}

/** The status of the column `step` places left (-1) or right (+1) of `status`, if any. */
export function neighbour(status: string, step: -1 | 1): string | null {
  const i = COLUMNS.findIndex((c) => c.status === status);
  return i < 0 ? null : COLUMNS[i + step]?.status ?? null;
}
