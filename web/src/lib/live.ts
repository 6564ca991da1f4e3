// One Server-Sent Events connection drives the board, the task sheet and the log: events
// invalidate the queries they concern (no polling). The browser's EventSource reconnects by
// itself and sends Last-Event-ID, so the server replays what was missed; on reconnect every
// query is refreshed as well, so nothing stays stale after an outage.
import { useEffect, useRef, useState } from "react";
import { useQueryClient, type QueryClient } from "@tanstack/react-query";

export type LiveState = "connecting" | "online" | "offline";

export type LiveEvent = { kind: "agent_update" | "agent_log"; task: string; project: string; seq?: number };
type Listener = (ev: LiveEvent) => void;
const listeners = new Set<Listener>();

/** Subscribes to live events (the log view uses this to fetch new lines). */
export function onLive(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/** Calls `fn` at most once every `ms`: the first call runs at once, calls within the window
 *  fold into one run at its end. `cancel` drops a pending run. */
export function throttle(fn: () => void, ms: number): { call: () => void; cancel: () => void } {
  let last = -Infinity;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const run = () => {
    timer = null;
    last = Date.now();
    fn();
  };
  return {
    call() {
      if (timer) return;
      const wait = last + ms - Date.now();
      if (wait <= 0) run();
      else timer = setTimeout(run, wait);
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}

/** Refetches a query when a live event it cares about arrives, at most every `ms` (usage
 *  changes with every model request, so a busy agent must not flood the server). */
export function useLiveRefresh(queryKey: readonly unknown[], matches: (ev: LiveEvent) => boolean, ms = 2000) {
  const client = useQueryClient();
  const match = useRef(matches);
  match.current = matches;
  const key = JSON.stringify(queryKey);
  useEffect(() => {
    const t = throttle(() => void client.invalidateQueries({ queryKey: JSON.parse(key) as unknown[] }), ms);
    const off = onLive((ev) => {
      if (match.current(ev)) t.call();
    });
    return () => {
      off();
      t.cancel();
    };
  }, [client, key, ms]);
}

/** Opens the stream for the signed-in user and keeps the cache in step; returns the state. */
export function useLiveEvents(client: QueryClient, enabled: boolean): LiveState {
  const [state, setState] = useState<LiveState>("connecting");
  useEffect(() => {
    if (!enabled) return;
    const source = new EventSource("/api/v1/events");
    let wasOffline = false;
    source.onopen = () => {
      setState("online");
      if (wasOffline) void client.invalidateQueries();
      wasOffline = false;
    };
    source.onerror = () => {
      wasOffline = true;
      setState("offline");
    };
    const handle = (kind: "agent_update" | "agent_log") => (e: MessageEvent) => {
      const data = JSON.parse(e.data) as { task: string; project: string; seq?: number };
      if (kind === "agent_update") {
        void client.invalidateQueries({ queryKey: ["task", data.task] });
        void client.invalidateQueries({ queryKey: ["tasks", data.project] });
        void client.invalidateQueries({ queryKey: ["events", data.task] });
        void client.invalidateQueries({ queryKey: ["revisions", data.task] });
      }
      listeners.forEach((l) => l({ kind, ...data }));
    };
    source.addEventListener("agent_update", handle("agent_update"));
    source.addEventListener("agent_log", handle("agent_log"));
    return () => source.close();
  }, [client, enabled]);
  return state;
}
