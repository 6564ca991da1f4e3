import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { actorText, AuditTrail, eventKindLabel } from "./AuditTrail";

const at = "2026-12-01T10:00:00Z";
const events = [
  { id: 1, kind: "transition", from_status: "implementing", to_status: "pr_ready", actor_kind: "box", created_at: at, message: null },
  { id: 2, kind: "checks", from_status: "pr_ready", to_status: "pr_ready", actor_kind: "system", created_at: at, message: "checks still failing after 2 fix rounds" },
  { id: 3, kind: "something_new", actor_kind: "system", created_at: at, message: "a new kind of event" },
];

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("AuditTrail", () => {
  it("names event kinds, known and unknown", () => {
    expect(eventKindLabel({ kind: "checks" })).toBe("Checks");
    expect(eventKindLabel({ kind: "board" })).toBe("Moved on the board");
    expect(eventKindLabel({ kind: "message" })).toBe("Message to the agent");
    expect(eventKindLabel({ kind: "something_new" })).toBe("something_new");
  });

  it("shows transitions as before and other events with their kind and message", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify(events), { status: 200, headers: { "content-type": "application/json" } })));
    render(<QueryClientProvider client={new QueryClient()}><AuditTrail taskId="t1" /></QueryClientProvider>);
    await screen.findAllByRole("listitem");
    const items = screen.getAllByRole("listitem").map((li) => li.textContent!.replace(/^.*?(?=implementing|Checks|something_new)/, ""));
    expect(items).toEqual([
      "implementing → pr_ready by box",
      "Checks by system — checks still failing after 2 fix rounds",
      "something_new by system — a new kind of event",
    ]);
  });

  it("names the chat a human acted from", async () => {
    expect(actorText({ actor_kind: "human", via: "telegram" })).toBe("by human via Telegram");
    expect(actorText({ actor_kind: "human", via: "slack" })).toBe("by human via Slack");
    expect(actorText({ actor_kind: "human", via: null })).toBe("by human");
    expect(actorText({ actor_kind: "system" })).toBe("by system");
    const fromChat = [
      { id: 4, kind: "transition", from_status: "spec_ready", to_status: "spec_approved", actor_kind: "human", actor_id: "u1", via: "telegram", created_at: at, message: null },
      { id: 5, kind: "transition", from_status: "spec_approved", to_status: "queued", actor_kind: "human", actor_id: "u1", via: null, created_at: at, message: null },
    ];
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify(fromChat), { status: 200, headers: { "content-type": "application/json" } })));
    render(<QueryClientProvider client={new QueryClient()}><AuditTrail taskId="t1" /></QueryClientProvider>);
    const items = await screen.findAllByRole("listitem");
    expect(items[0].textContent).toMatch(/spec_ready → spec_approved by human via Telegram$/);
    expect(items[1].textContent).toMatch(/spec_approved → queued by human$/);
  });
});
