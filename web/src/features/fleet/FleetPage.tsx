import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../../api/client";
import type { Fleet, FleetTask, NotificationError } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { useNow } from "./age";
import { FleetTable } from "./FleetTable";
import { NotificationErrors } from "./NotificationErrors";
import { useFleetLive } from "./useFleetLive";

const FLEET = ["fleet"];
const NOTIFY = ["notification-errors"];
/** The fallback when the live stream is quiet or down. */
const POLL_MS = 15_000;

/** One line: how full the fleet is and where its boxes run. */
export function fleetSummary(f: Fleet): string {
  return `${f.running.length} of ${f.cap} boxes running · ${f.queued.length} queued · ${f.provider} (${f.host})`;
}

/** The admins' view of the fleet: boxes running, parked and queued against the cap, the last
 *  day's failures and failed notifications; each live task can be stopped from here. */
export function FleetPage() {
  const client = useQueryClient();
  const fleet = useQuery({ queryKey: FLEET, queryFn: () => api.get<Fleet>("/api/v1/fleet"), refetchInterval: POLL_MS });
  const errors = useQuery({
    queryKey: NOTIFY,
    queryFn: () => api.get<NotificationError[]>("/api/v1/notifications/errors"),
    refetchInterval: POLL_MS,
  });
  useFleetLive(FLEET);
  const now = useNow();
  const stop = useMutation({
    mutationFn: (t: FleetTask) => api.post(`/api/v1/tasks/${t.task_id}/agent/cancel`, {}),
    onSettled: (_r, _e, t) => {
      void client.invalidateQueries({ queryKey: FLEET });
      void client.invalidateQueries({ queryKey: ["task", t.task_id] });
      void client.invalidateQueries({ queryKey: ["tasks", t.project_id] });
    },
  });
  const f = fleet.data;
  return (
    <div className="fleet">
      <h1 id="fleet-h">Fleet</h1>
      {f ? <p className="fleet-summary" data-testid="fleet-summary">{fleetSummary(f)}</p>
        : fleet.error ? <ErrorBox error={fleet.error} /> : <Loading what="the fleet" />}
      {f && fleet.error && <ErrorBox error={fleet.error} />}
      <ErrorBox error={stop.error} />
      {f && (
        <>
          <FleetTable kind="running" tasks={f.running} now={now} onStop={(t) => stop.mutate(t)} stopping={stop.isPending} />
          <FleetTable kind="parked" tasks={f.parked} now={now} onStop={(t) => stop.mutate(t)} stopping={stop.isPending} />
          <FleetTable kind="queued" tasks={f.queued} now={now} onStop={(t) => stop.mutate(t)} stopping={stop.isPending} />
          <FleetTable kind="failures" tasks={f.failures} now={now} />
        </>
      )}
      {errors.data ? <NotificationErrors errors={errors.data} now={now} /> : <ErrorBox error={errors.error} />}
    </div>
  );
}
