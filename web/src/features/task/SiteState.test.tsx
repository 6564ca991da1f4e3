import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SiteState } from "./SiteState";

function mount(answers: { state: string; detail: string }[]) {
  const calls: string[] = [];
  vi.stubGlobal("fetch", vi.fn(async (path: string) => {
    calls.push(path);
    const body = answers[Math.min(calls.length - 1, answers.length - 1)];
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }));
  render(
    <QueryClientProvider client={new QueryClient()}>
      <SiteState taskId="t1" />
    </QueryClientProvider>,
  );
  return calls;
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("SiteState", () => {
  it("says why a preview is down, from the task's box, and does not keep asking", async () => {
    const calls = mount([{ state: "down", detail: "the preview exited (exit status: 1)" }]);
    expect((await screen.findByTestId("site-state")).textContent).toContain("down: the preview exited (exit status: 1)");
    expect(calls[0]).toBe("/api/v1/tasks/t1/agent/preview");
    await new Promise((r) => setTimeout(r, 3500));
    expect(calls.length).toBe(1);
  }, 10_000);

  it("asks again while the preview starts, until it is ready", async () => {
    const calls = mount([{ state: "starting", detail: "" }, { state: "ready", detail: "" }]);
    expect((await screen.findByTestId("site-state")).textContent).toContain("starting");
    expect((await screen.findByText(/ready/, {}, { timeout: 5000 })).textContent).toContain("ready");
    expect(calls.length).toBe(2);
  }, 10_000);
});
