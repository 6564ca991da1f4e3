import { useQuery } from "@tanstack/react-query";
import { api } from "../../api/client";
import type { PreviewState } from "../../api/types";
import { useLiveRefresh } from "../../lib/live";

const SAID: Record<string, string> = {
  starting: "starting…",
  ready: "ready",
  off: "not running now (a round is working)",
};

/** What the task's site preview is doing, beside its Site link: a click on a preview that is
 *  starting or down would otherwise only show a bare error page. */
export function SiteState({ taskId }: { taskId: string }) {
  const key = ["preview", taskId];
  const preview = useQuery({
    queryKey: key,
    queryFn: () => api.get<PreviewState>(`/api/v1/tasks/${taskId}/agent/preview`),
    // Asked again only while it starts; otherwise a new log line (its output reaches the
    // log, and a round's end too) brings the next state.
    refetchInterval: (q) => (q.state.data?.state === "starting" ? 3000 : false),
    retry: false,
  });
  useLiveRefresh(key, (ev) => ev.task === taskId && (ev.kind === "agent_log" || ev.kind === "agent_update"));
  const p = preview.data;
  if (!p) return null;
  const text = p.state === "down" ? `down: ${p.detail}` : SAID[p.state] ?? p.state;
  return <span className={p.state === "down" ? "warn" : "muted"} data-testid="site-state"> — {text}</span>;
}
