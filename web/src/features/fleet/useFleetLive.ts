// The fleet follows the live stream: any agent event (a status change, a log line that comes
// with a model request) may change it, so the fleet is refetched once things settle.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { onLive } from "../../lib/live";

/** Runs `fn` once calls have paused for `ms`, and at the latest `maxWait` after the first
 *  call of a burst (a stream of log lines must not hold it off forever). */
export function debounce(fn: () => void, ms: number, maxWait: number): { call: () => void; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let first = 0;
  const run = () => {
    timer = null;
    fn();
  };
  return {
    call() {
      const now = Date.now();
      if (timer) clearTimeout(timer);
      else first = now;
      timer = setTimeout(run, Math.max(0, Math.min(ms, first + maxWait - now)));
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}

/** Refetches the query `key` after live events (debounced by `ms`). */
export function useFleetLive(key: readonly unknown[], ms = 500, maxWait = 5000) {
  const client = useQueryClient();
  const k = JSON.stringify(key);
  useEffect(() => {
    const d = debounce(() => void client.invalidateQueries({ queryKey: JSON.parse(k) as unknown[] }), ms, maxWait);
    const off = onLive(() => d.call());
    return () => {
      off();
      d.cancel();
    };
  }, [client, k, ms, maxWait]);
}
