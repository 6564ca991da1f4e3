import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ProjectGatewayForm, ProjectUsage } from "./ProjectGateway";

const gateway = {
  model: "", effective_model: "claude-sonnet-4-5", agent_env: { NODE_OPTIONS: "--x" }, task_budget_usd: 2.5, month_budget_usd: null,
  keys: { anthropic: { set: true }, openai: { set: false }, gemini: { set: false } },
};
const group = { phase: "", round: 0, model: "claude-sonnet-4-5", requests: 3, input_tokens: 12000, output_tokens: 3400, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: 0.42 };
const usage = { groups: [group], total: { ...group, model: "" }, budget_usd: 50, since: "2026-12-01T00:00:00Z" };

function mount(admin: boolean) {
  const sent: unknown[] = [];
  vi.stubGlobal("fetch", vi.fn(async (path: string, init?: RequestInit) => {
    if (init?.method === "PATCH") sent.push(JSON.parse(String(init.body)));
    const body = path.endsWith("/usage") ? usage : gateway;
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }));
  render(
    <QueryClientProvider client={new QueryClient()}>
      <ProjectGatewayForm projectId="p1" admin={admin} />
      <ProjectUsage projectId="p1" />
    </QueryClientProvider>,
  );
  return sent;
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("ProjectGatewayForm", () => {
  it("shows a member the budgets read-only and leaves them out of the save", async () => {
    const sent = mount(false);
    const task = (await screen.findByLabelText("Per-task budget ($)")) as HTMLInputElement;
    const month = screen.getByLabelText("Monthly budget ($)") as HTMLInputElement;
    expect(task.readOnly).toBe(true);
    expect(task.value).toBe("2.5");
    expect(month.readOnly).toBe(true);
    expect(month.value).toBe("");
    expect(screen.getByText(/Only an admin sets budgets/)).toBeTruthy();
    expect((screen.getByLabelText("Model (blank: the global model for the preset)") as HTMLInputElement).placeholder).toBe("claude-sonnet-4-5");
    fireEvent.change(screen.getByLabelText(/^Agent environment/), { target: { value: "NODE_OPTIONS=--y\nDEBUG=1" } });
    fireEvent.click(screen.getByRole("button", { name: "Save model gateway settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    const patch = sent[0] as Record<string, unknown>;
    expect(patch).not.toHaveProperty("task_budget_usd");
    expect(patch).not.toHaveProperty("month_budget_usd");
    expect(patch.agent_env).toEqual({ NODE_OPTIONS: "--y", DEBUG: "1" });
  });

  it("lets an admin set and clear the budgets", async () => {
    const sent = mount(true);
    const task = (await screen.findByLabelText("Per-task budget ($)")) as HTMLInputElement;
    expect(task.readOnly).toBe(false);
    fireEvent.change(task, { target: { value: "" } });
    fireEvent.change(screen.getByLabelText("Monthly budget ($)"), { target: { value: "75" } });
    fireEvent.click(within(screen.getByRole("group", { name: "OpenAI API key" })).getByRole("button", { name: "Set" }));
    fireEvent.change(screen.getByLabelText("New OpenAI API key"), { target: { value: "sk-test" } });
    fireEvent.click(screen.getByRole("button", { name: "Save model gateway settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0]).toMatchObject({ task_budget_usd: null, month_budget_usd: 75, keys: { openai: "sk-test" } });
  });

  it("refuses a bad environment line before sending anything", async () => {
    const sent = mount(true);
    fireEvent.change(await screen.findByLabelText(/^Agent environment/), { target: { value: "OK=1\noops" } });
    expect(screen.getByText('Line 2: "oops" is not NAME=value')).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Save model gateway settings" }));
    expect((await screen.findByRole("alert")).textContent).toMatch(/agent_env: Line 2/);
    expect(sent).toHaveLength(0);
  });
});

describe("ProjectUsage", () => {
  it("shows this month's cost against the monthly budget and the tokens", async () => {
    mount(false);
    expect((await screen.findByTestId("usage-cost")).textContent).toBe("$0.42 of $50.00");
    expect(screen.getByTestId("usage-tokens").textContent).toBe("12,000 input and 3,400 output tokens in 3 requests");
    expect(screen.getByText("Since 2026-12-01 (UTC).")).toBeTruthy();
  });
});
