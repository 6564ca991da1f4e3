import { QueryClient, QueryClientProvider, useQueryClient } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { setCsrf } from "../../api/client";
import { useLiveEvents } from "../../lib/live";
import { ageSince, formatAge } from "./age";
import { FleetPage } from "./FleetPage";
import { debounce } from "./useFleetLive";

const ago = (min: number) => new Date(Date.now() - min * 60_000).toISOString();
const item = (id: string, title: string, status: string, extra: Record<string, unknown> = {}) => ({
  task_id: id, title, project_id: "p1", project_name: "Site", status, box_id: `box-${id}`, round: 0, attempt: 1,
  since: ago(3), queued_at: null, queue_position: null, last_error: null, spent_usd: 0, ...extra,
});
const longError = `agent exited with status 1\n${"stack line\n".repeat(20)}`;
const fleet = {
  cap: 4, provider: "local", host: "this host",
  running: [
    item("t1", "Fix login", "implementing", { round: 1, spent_usd: 0.12 }),
    item("t4", "Broken build", "failed", { since: ago(1), last_error: longError }),
  ],
  parked: [item("t2", "Write docs", "spec_ready", { box_id: null, since: ago(125) })],
  queued: [item("t3", "Add search", "queued", { box_id: null, queue_position: 1, queued_at: ago(0.5) })],
  failures: [item("t4", "Broken build", "failed", { since: ago(1), last_error: longError, attempt: 2 })],
};
const notifyErrors = [
  { id: 7, channel: "telegram", event: "pr_ready", error: "Telegram refused the message", status_code: 400, body: "chat not found", task_id: "t1", created_at: ago(10) },
];

/** A stand-in for the browser's EventSource: the test sends the server's events. */
class FakeSource {
  static last: FakeSource | null = null;
  handlers: Record<string, (e: MessageEvent) => void> = {};
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  constructor() { FakeSource.last = this; }
  addEventListener(kind: string, h: (e: MessageEvent) => void) { this.handlers[kind] = h; }
  close() {}
  send(kind: string, data: unknown) { this.handlers[kind]({ data: JSON.stringify(data) } as MessageEvent); }
}

function Live() {
  useLiveEvents(useQueryClient(), true);
  return null;
}

function mount() {
  const calls: { path: string; method: string; body?: unknown }[] = [];
  vi.stubGlobal("EventSource", FakeSource);
  vi.stubGlobal("fetch", vi.fn(async (path: string, init?: RequestInit) => {
    const method = init?.method ?? "GET";
    calls.push({ path, method, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    const body = path === "/api/v1/fleet" ? fleet : path === "/api/v1/notifications/errors" ? notifyErrors : {};
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }));
  setCsrf("t");
  render(
    <QueryClientProvider client={new QueryClient()}>
      <Live />
      <FleetPage />
    </QueryClientProvider>,
  );
  return calls;
}

const rows = (name: string) =>
  [...screen.getByRole("table", { name }).querySelectorAll("tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent));

afterEach(() => { cleanup(); vi.unstubAllGlobals(); vi.useRealTimers(); });

describe("FleetPage", () => {
  it("sums the fleet up and lists each part with its count", async () => {
    mount();
    expect((await screen.findByTestId("fleet-summary")).textContent).toBe("2 of 4 boxes running · 1 queued · local (this host)");
    for (const h of ["Running (2)", "Parked (1)", "Queued (1)", "Failures (last 24 h) (1)"]) expect(screen.getByRole("heading", { name: h })).toBeTruthy();
    expect(rows("Running (2)")[0]).toEqual(["Fix login", "Site", "Implementing", "3 min", "1", "$0.12", "Stop"]);
    expect(rows("Parked (1)")[0]).toEqual(["Write docs", "Site", "Spec ready", "2 h 5 min", "0", "$0.00", "Stop"]);
    expect(rows("Queued (1)")[0]).toEqual(["#1", "Add search", "Site", "<1 min", "1", "Stop"]);
    const running = within(screen.getByRole("table", { name: "Running (2)" }));
    expect(running.getByRole("link", { name: "Fix login" }).getAttribute("href")).toBe("/tasks/t1");
    expect(running.getAllByRole("link", { name: "Site" })[0].getAttribute("href")).toBe("/projects/p1");
    // The failure is listed with its error folded (it is long), and no Stop button.
    const failures = within(screen.getByRole("table", { name: "Failures (last 24 h) (1)" }));
    expect(failures.queryByRole("button")).toBeNull();
    const details = screen.getByRole("table", { name: "Failures (last 24 h) (1)" }).querySelector("details")!;
    expect(details.querySelector("summary")!.textContent).toBe("agent exited with status 1 …");
    expect(details.querySelector("pre")!.textContent).toBe(longError);
    expect(rows("Failures (last 24 h) (1)")[0].slice(0, 5)).toEqual(["Broken build", "Site", "1 min ago", "0", "2"]);
    // Notification errors below, with the channel's answer.
    expect(await screen.findByRole("heading", { name: "Notification errors (1)" })).toBeTruthy();
    const n = rows("Notification errors (1)")[0];
    expect(n.slice(0, 4)).toEqual(["10 min ago", "telegram", "pr_ready", "t1"]);
    expect(n[4]).toContain("Telegram refused the message (HTTP 400)");
  });

  it("stops a task only after confirmation, then refreshes the fleet", async () => {
    const calls = mount();
    const stop = await screen.findByRole("button", { name: "Stop Fix login" });
    fireEvent.click(stop);
    expect(calls.some((c) => c.method === "POST")).toBe(false);
    fireEvent.click(screen.getByRole("button", { name: "No" }));
    expect(calls.some((c) => c.method === "POST")).toBe(false);
    const before = calls.filter((c) => c.path === "/api/v1/fleet").length;
    fireEvent.click(screen.getByRole("button", { name: "Stop Fix login" }));
    fireEvent.click(within(screen.getByRole("group", { name: /^Stop “Fix login”\?/ })).getByRole("button", { name: "Yes, stop" }));
    await waitFor(() => expect(calls.filter((c) => c.method === "POST")).toEqual([{ path: "/api/v1/tasks/t1/agent/cancel", method: "POST", body: {} }]));
    await waitFor(() => expect(calls.filter((c) => c.path === "/api/v1/fleet").length).toBeGreaterThan(before));
  });

  it("refetches the fleet after live events, once they settle", async () => {
    const calls = mount();
    await screen.findByTestId("fleet-summary");
    const fetched = () => calls.filter((c) => c.path === "/api/v1/fleet").length;
    const before = fetched();
    FakeSource.last!.send("agent_log", { task: "t1", project: "p1", seq: 1 });
    FakeSource.last!.send("agent_update", { task: "t3", project: "p1" });
    await waitFor(() => expect(fetched()).toBe(before + 1), { timeout: 2000 });
    await new Promise((r) => setTimeout(r, 700));
    expect(fetched()).toBe(before + 1);
  });
});

describe("fleet helpers", () => {
  it("reads ages in a few words", () => {
    expect(formatAge(20_000)).toBe("<1 min");
    expect(formatAge(3 * 60_000)).toBe("3 min");
    expect(formatAge(60 * 60_000)).toBe("1 h");
    expect(formatAge(125 * 60_000)).toBe("2 h 5 min");
    expect(formatAge(50 * 3600_000)).toBe("2 d 2 h");
    expect(formatAge(-5)).toBe("<1 min");
    expect(ageSince(null, Date.now())).toBe("");
    expect(ageSince("2026-01-01T00:00:00Z", Date.parse("2026-01-01T00:07:30Z"))).toBe("7 min");
  });

  it("debounces a burst into one run, and runs at the latest after the longest wait", () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const d = debounce(fn, 500, 2000);
    d.call();
    vi.advanceTimersByTime(400);
    d.call();
    vi.advanceTimersByTime(400);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(100);
    expect(fn).toHaveBeenCalledTimes(1);
    // A steady stream every 300 ms still runs by the longest wait.
    for (let i = 0; i < 7; i++) { d.call(); vi.advanceTimersByTime(300); }
    expect(fn).toHaveBeenCalledTimes(2);
    d.call();
    d.cancel();
    vi.advanceTimersByTime(5000);
    expect(fn).toHaveBeenCalledTimes(2);
  });
});
