import { useQuery } from "@tanstack/react-query";
import { api } from "../../api/client";
import type { UsageReport } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { UsageSummary } from "../../components/UsageSummary";
import { useLiveRefresh } from "../../lib/live";

/** The task's model usage (every attempt), refreshed live as the agent works. */
export function TaskUsage({ taskId }: { taskId: string }) {
  const key = ["usage", "task", taskId];
  const usage = useQuery({ queryKey: key, queryFn: () => api.get<UsageReport>(`/api/v1/tasks/${taskId}/agent/usage`) });
  useLiveRefresh(key, (ev) => ev.task === taskId && (ev.kind === "agent_log" || ev.kind === "agent_update"));
  return (
    <section className="task-usage" aria-labelledby="usage-h">
      <h3 id="usage-h">Model usage</h3>
      {usage.isPending && !usage.error && <Loading what="usage" />}
      <ErrorBox error={usage.error} />
      {usage.data && <UsageSummary report={usage.data} by="phase" label="Task" />}
    </section>
  );
}
