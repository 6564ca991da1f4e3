// How long ago something happened, in the few words a glance needs ("3 min", "2 h 5 min").
import { useEffect, useState } from "react";

/** A duration in milliseconds as `<1 min`, `3 min`, `2 h 5 min` or `3 d 4 h`. */
export function formatAge(ms: number): string {
  const min = Math.floor(Math.max(0, ms) / 60_000);
  if (min < 1) return "<1 min";
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 24) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** The age of an RFC 3339 instant at `now`; blank for a missing or unreadable one. */
export function ageSince(at: string | null | undefined, now: number): string {
  const t = at ? Date.parse(at) : NaN;
  return Number.isNaN(t) ? "" : formatAge(now - t);
}

/** The current time, refreshed every `ms` so ages on screen keep moving. */
export function useNow(ms = 10_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
