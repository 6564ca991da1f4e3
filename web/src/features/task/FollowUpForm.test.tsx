import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Task } from "../../api/types";
import { AgentPanel } from "./AgentPanel";

function task(status: string, agent: Record<string, unknown> = {}): Task {
  return {
    id: "t1", project_id: "p1", title: "Say hello", description: "", status: "in_progress",
    agent: { status, round: 1, parked: false, box_torn_down: false, fix_rounds: 0, checks: null, ...agent },
  } as unknown as Task;
}

function json(body: unknown, status = 200) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** The panel with a stubbed API: `message` answers the follow-up POST; the rest is empty. */
function mount(status: string, canWrite: boolean, message: () => Response, agent: Record<string, unknown> = {}) {
  const posts: { path: string; body: unknown }[] = [];
  vi.stubGlobal("fetch", vi.fn(async (path: string, init?: RequestInit) => {
    if (init?.method === "POST" && path.endsWith("/agent/message")) {
      posts.push({ path, body: JSON.parse(String(init.body)) });
      return message();
    }
    return json({ groups: [], total: { phase: "", round: 0, model: "", requests: 0, input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: 0 }, budget_usd: null });
  }));
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <AgentPanel task={task(status, agent)} canWrite={canWrite} />
    </QueryClientProvider>,
  );
  return posts;
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("the follow-up message form", () => {
  it("shows only while the agent writes the spec or implements, and only to writers", () => {
    for (const status of ["speccing", "implementing"]) {
      mount(status, true, () => json({ waiting: 1 }, 202));
      expect(screen.getByRole("form", { name: "Message the agent" })).toBeTruthy();
      cleanup();
    }
    for (const status of ["queued", "provisioning", "spec_ready", "pr_ready", "merged"]) {
      mount(status, true, () => json({ waiting: 1 }, 202));
      expect(screen.queryByRole("form", { name: "Message the agent" })).toBeNull();
      cleanup();
    }
    mount("speccing", false, () => json({ waiting: 1 }, 202));
    expect(screen.queryByRole("form", { name: "Message the agent" })).toBeNull();
  });

  it("sends the text, says so and clears the box", async () => {
    const posts = mount("speccing", true, () => json({ waiting: 1 }, 202));
    const box = screen.getByLabelText("Your message for the agent") as HTMLTextAreaElement;
    const send = screen.getByRole("button", { name: "Send" }) as HTMLButtonElement;
    expect(send.disabled).toBe(true);
    fireEvent.change(box, { target: { value: "  Please mention the weather.  " } });
    fireEvent.click(send);
    await screen.findByText("Sent: the agent gets it at its next turn.");
    expect(posts).toEqual([{ path: "/api/v1/tasks/t1/agent/message", body: { text: "Please mention the weather." } }]);
    expect(box.value).toBe("");
  });

  it("shows the server's refusal like other action errors and keeps the text", async () => {
    mount("implementing", true, () => json({ error: { code: "not_working", message: "the agent is not working on the task" } }, 409));
    const box = screen.getByLabelText("Your message for the agent") as HTMLTextAreaElement;
    fireEvent.change(box, { target: { value: "Use tabs." } });
    fireEvent.click(screen.getByRole("button", { name: "Send" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("the agent is not working on the task"));
    expect(screen.queryByText(/^Sent:/)).toBeNull();
    expect(box.value).toBe("Use tabs.");
  });
});

describe("the box's links", () => {
  it("open the code view of a running box, and say a parked one resumes on the next action", () => {
    mount("pr_ready", true, () => json({}), { code_url: `${window.location.origin}/tasks/t1/code`, pr_url: "https://example.test/pr/1" });
    expect(screen.getByRole("link", { name: "Code" }).getAttribute("href")).toBe(`${window.location.origin}/tasks/t1/code`);
    cleanup();
    mount("pr_ready", true, () => json({}), { parked: true, code_url: `${window.location.origin}/tasks/t1/code`, pr_url: "https://example.test/pr/1" });
    expect(screen.queryByRole("link", { name: "Code" })).toBeNull();
    expect(screen.getByTestId("link-parked-code").textContent).toBe("Code: parked — resumes on your next action");
    expect(screen.getByRole("link", { name: "Pull request" })).toBeTruthy();
  });
});
