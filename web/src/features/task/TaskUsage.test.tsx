import { QueryClient, QueryClientProvider, useQueryClient } from "@tanstack/react-query";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { useLiveEvents } from "../../lib/live";
import { TaskUsage } from "./TaskUsage";

const row = (phase: string, round: number, model: string, cost: number) => ({
  phase, round, model, requests: 2, input_tokens: 1000, output_tokens: 200, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: cost,
});
const groups = [row("speccing", 0, "claude-sonnet-4-5", 0.12), row("implementing", 0, "claude-sonnet-4-5", 0.2), row("implementing", 1, "claude-haiku-4-5", 0.1)];
const report = {
  groups,
  total: { phase: "", round: 0, model: "", requests: 6, input_tokens: 3000, output_tokens: 600, cache_read_tokens: 1500, cache_write_tokens: 0, cost_usd: 0.42 },
  budget_usd: 10,
};

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
  const calls: string[] = [];
  vi.stubGlobal("EventSource", FakeSource);
  vi.stubGlobal("fetch", vi.fn(async (path: string) => {
    calls.push(path);
    return new Response(JSON.stringify(report), { status: 200, headers: { "content-type": "application/json" } });
  }));
  render(
    <QueryClientProvider client={new QueryClient()}>
      <Live />
      <TaskUsage taskId="t1" />
    </QueryClientProvider>,
  );
  return calls;
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("TaskUsage", () => {
  it("shows the cost against the budget, the tokens and a breakdown by phase and round", async () => {
    mount();
    expect((await screen.findByTestId("usage-cost")).textContent).toBe("$0.42 of $10.00");
    expect(screen.getByTestId("usage-tokens").textContent).toBe("3,000 input and 600 output tokens in 6 requests (cache: 1,500 read, 0 written)");
    const table = screen.getByRole("table", { name: "By phase and round" });
    const rows = [...table.querySelectorAll("tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent));
    expect(rows).toEqual([
      ["speccing", "0", "claude-sonnet-4-5", "2", "1,000", "200", "$0.12"],
      ["implementing", "0", "claude-sonnet-4-5", "2", "1,000", "200", "$0.20"],
      ["implementing", "1", "claude-haiku-4-5", "2", "1,000", "200", "$0.10"],
    ]);
    expect(screen.getByRole("meter", { name: "Task: budget used" })).toBeTruthy();
  });

  it("reloads on this task's live events, at most every 2 s, and ignores other tasks", async () => {
    const calls = mount();
    await screen.findByTestId("usage-cost");
    expect(calls).toEqual(["/api/v1/tasks/t1/agent/usage"]);
    act(() => FakeSource.last!.send("agent_log", { task: "t2", project: "p1", seq: 1 }));
    act(() => FakeSource.last!.send("agent_log", { task: "t1", project: "p1", seq: 1 }));
    await waitFor(() => expect(calls).toHaveLength(2));
    act(() => FakeSource.last!.send("agent_log", { task: "t1", project: "p1", seq: 2 }));
    act(() => FakeSource.last!.send("agent_update", { task: "t1", project: "p1" }));
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toHaveLength(2);
    await waitFor(() => expect(calls).toHaveLength(3), { timeout: 3000 });
  });
});
