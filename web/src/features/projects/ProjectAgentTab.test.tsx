import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { isRemoteRepo, ProjectAgentTab } from "./ProjectAgentTab";

const project = {
  id: "p1", name: "Site", description: "", access: "write", created_at: "", updated_at: "", board_follows_agent: false,
  agent: {
    enabled: true, repo_url: "/srv/git/site.git", base_branch: "main", template: "big", preset: "script",
    command: "sh /opt/agent.sh", forge: "local", github_token: { set: false }, github_webhook_secret: { set: false }, check_command: "make test", preview_command: "", preview_ready_path: "/", trigger_label: "apiary",
    prompts: { spec: "", implement: "", changes: "", revise: "" },
  },
};

const none = { phase: "", round: 0, model: "", requests: 0, input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: 0 };
const gateway = {
  model: "", effective_model: "claude-sonnet-4-5", agent_env: {}, task_budget_usd: null, month_budget_usd: null,
  keys: { anthropic: { set: false }, openai: { set: false }, gemini: { set: false } },
};
const usage = { groups: [], total: none, budget_usd: 0, since: "2026-12-01T00:00:00Z" };

function mount(admin: boolean, agent: Record<string, unknown> = {}) {
  const sent: unknown[] = [];
  vi.stubGlobal("fetch", vi.fn(async (path: string, init?: RequestInit) => {
    if (init?.method === "PATCH") sent.push(JSON.parse(String(init.body)));
    const body = path.includes("prompts/defaults") ? { global: {}, built_in: {} }
      : path.endsWith("/gateway") ? gateway
      : path.endsWith("/usage") ? usage
      : { ...project, agent: { ...project.agent, ...agent } };
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }));
  render(
    <QueryClientProvider client={new QueryClient()}>
      <ProjectAgentTab projectId="p1" admin={admin} />
    </QueryClientProvider>,
  );
  return sent;
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("ProjectAgentTab", () => {
  it("hides the command and template from members and leaves them out of the save", async () => {
    const sent = mount(false);
    await screen.findByRole("heading", { name: "Agent for Site" });
    expect(screen.queryByLabelText(/Custom command/)).toBeNull();
    expect(screen.queryByLabelText("Box template")).toBeNull();
    expect(screen.getByText(/repository on the host, set by an admin/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Save agent settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    const agent = (sent[0] as { agent: Record<string, unknown> }).agent;
    expect(agent).not.toHaveProperty("command");
    expect(agent).not.toHaveProperty("template");
    expect(agent).not.toHaveProperty("check_command");
    expect(agent).not.toHaveProperty("preview_command");
  });

  it("shows members the check command read-only, with a hint", async () => {
    mount(false);
    const input = (await screen.findByLabelText("Check command")) as HTMLInputElement;
    expect(input.value).toBe("make test");
    expect(input.readOnly).toBe(true);
    expect(document.getElementById(input.getAttribute("aria-describedby")!)!.textContent).toMatch(/Only admins may change it/);
  });

  it("lets admins set the check command", async () => {
    const sent = mount(true);
    const input = (await screen.findByLabelText("Check command")) as HTMLInputElement;
    expect(input.readOnly).toBe(false);
    fireEvent.change(input, { target: { value: "cargo test" } });
    fireEvent.click(screen.getByRole("button", { name: "Save agent settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect((sent[0] as { agent: Record<string, unknown> }).agent.check_command).toBe("cargo test");
  });

  it("edits the trigger label of a github project, trimmed, and refuses a blank one", async () => {
    const sent = mount(false, { forge: "github" });
    const label = (await screen.findByLabelText("Trigger label")) as HTMLInputElement;
    expect(label.value).toBe("apiary");
    fireEvent.change(label, { target: { value: "   " } });
    fireEvent.click(screen.getByRole("button", { name: "Save agent settings" }));
    expect((await screen.findByRole("alert")).textContent).toMatch(/^agent\.trigger_label: /);
    expect(sent).toHaveLength(0);
    fireEvent.change(label, { target: { value: " agent-task " } });
    fireEvent.click(screen.getByRole("button", { name: "Save agent settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect((sent[0] as { agent: Record<string, unknown> }).agent.trigger_label).toBe("agent-task");
  });

  it("has no trigger label on the local forge", async () => {
    const sent = mount(true);
    await screen.findByRole("heading", { name: "Agent for Site" });
    expect(screen.queryByLabelText("Trigger label")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Save agent settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect((sent[0] as { agent: Record<string, unknown> }).agent).not.toHaveProperty("trigger_label");
  });

  it("shows admins every field", async () => {
    mount(true);
    await screen.findByRole("heading", { name: "Agent for Site" });
    expect(screen.getByLabelText(/Custom command/)).toBeTruthy();
    expect(screen.getByLabelText("Box template")).toBeTruthy();
  });

  it("lets a member make the board follow the agent, and saves it", async () => {
    const sent = mount(false);
    const box = (await screen.findByRole("checkbox", { name: "Board follows the agent" })) as HTMLInputElement;
    expect(box.checked).toBe(false);
    expect(document.getElementById(box.getAttribute("aria-describedby")!)!.textContent)
      .toBe("Hand-off moves the card to In progress, merged to Done, cancelled back to To do.");
    fireEvent.click(box);
    fireEvent.click(screen.getByRole("button", { name: "Save agent settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect((sent[0] as { board_follows_agent: boolean }).board_follows_agent).toBe(true);
  });

  it("tells remote git URLs from paths on the host", () => {
    for (const u of ["https://github.com/a/b.git", "ssh://git@h/x", "git@github.com:a/b.git"]) expect(isRemoteRepo(u)).toBe(true);
    for (const u of ["/srv/x.git", "file:///srv/x.git", "./x", "ext::sh -c id", "https:///etc"]) expect(isRemoteRepo(u)).toBe(false);
  });
});
