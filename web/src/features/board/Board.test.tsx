import { QueryClient, QueryClientProvider, useQueryClient } from "@tanstack/react-query";
import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { User } from "../../api/types";
import { useLiveEvents } from "../../lib/live";
import { Board } from "./Board";

// The sheet has tests of its own; here it only has to show which task is open.
vi.mock("../task/TaskSheet", () => ({
  TaskSheet: ({ taskId }: { taskId: string }) => <h1 id="task-h">Sheet of {taskId}</h1>,
}));

const me = { id: "u1", name: "Ann", email: "ann@example.com", role: "member" } as User;

type FakeTask = { id: string; title: string; status: string; description: string; assignee_id: string | null; agent: Record<string, unknown> };

function task(id: string, title: string, status: string, agent: Record<string, unknown> = {}): FakeTask {
  return {
    id, title, status, description: "", assignee_id: null,
    agent: { status: "none", round: 0, attempt: 0, fix_rounds: 0, spent_usd: 0, box_torn_down: false, parked: false, spec_revision: 0, status_changed_at: "", queue_position: null, checks: null, ...agent },
  };
}

type Server = { tasks: FakeTask[]; patches: { path: string; body: unknown }[]; refuse: string | null; hold: Promise<void> | null };

function json(body: unknown, status = 200) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** A fake API with the project, its tasks and PATCH /tasks/{id}. */
function serve(tasks: FakeTask[], access = "write"): Server {
  const server: Server = { tasks, patches: [], refuse: null, hold: null };
  vi.stubGlobal("fetch", vi.fn(async (path: string, init?: RequestInit) => {
    if (init?.method === "PATCH") {
      const body = JSON.parse(String(init.body)) as { status: string };
      server.patches.push({ path, body });
      if (server.hold) await server.hold;
      if (server.refuse) return json({ error: { code: "invalid_transition", message: server.refuse } }, 409);
      const t = server.tasks.find((x) => path === `/api/v1/tasks/${x.id}`)!;
      t.status = body.status;
      return json({ ...t, project_id: "p1" });
    }
    if (path === "/api/v1/projects/p1") return json({ id: "p1", name: "Site", description: "", access, agent: {} });
    if (path === "/api/v1/projects/p1/tasks") return json(server.tasks.map((t) => ({ ...t, project_id: "p1" })));
    return json({ error: { code: "not_found", message: "no such thing" } }, 404);
  }));
  return server;
}

function mount(tasks: FakeTask[], access = "write") {
  const server = serve(tasks, access);
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <Board projectId="p1" me={me} />
    </QueryClientProvider>,
  );
  return server;
}

const column = (name: string) => screen.getByRole("region", { name });
/** Waits for the board to show `title`, then checks it stands in `name`. */
async function inColumn(name: string, title: string) {
  await screen.findByText(title);
  expect(within(column(name)).getByText(title)).toBeTruthy();
}
const card = (title: string) => screen.getByText(title).closest("article") as HTMLElement;

/** What a browser's drag carries, as far as the board uses it (jsdom has no DataTransfer). */
function dataTransfer() {
  const data: Record<string, string> = {};
  return {
    setData: (k: string, v: string) => { data[k] = v; },
    getData: (k: string) => data[k] ?? "",
    get types() { return Object.keys(data); },
    dropEffect: "none",
    effectAllowed: "all",
  };
}

function drag(title: string, to: string) {
  const dt = dataTransfer();
  fireEvent.dragStart(card(title), { dataTransfer: dt });
  fireEvent.dragEnter(column(to), { dataTransfer: dt });
  fireEvent.dragOver(column(to), { dataTransfer: dt });
  fireEvent.drop(column(to), { dataTransfer: dt });
  fireEvent.dragEnd(card(title), { dataTransfer: dt });
}

beforeEach(() => window.history.replaceState(null, "", "/projects/p1"));
afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("Board", () => {
  it("moves a dropped card at once and PATCHes its status", async () => {
    const server = mount([task("t1", "Fix login", "todo"), task("t2", "Footer", "in_progress")]);
    await inColumn("To do", "Fix login");
    let release!: () => void;
    server.hold = new Promise((r) => { release = r; });
    drag("Fix login", "Done");
    // Optimistic: in its new column before the server has answered.
    expect(within(column("Done")).getByText("Fix login")).toBeTruthy();
    expect(within(column("To do")).queryByText("Fix login")).toBeNull();
    await waitFor(() => expect(server.patches).toEqual([{ path: "/api/v1/tasks/t1", body: { status: "done" } }]));
    release();
    await waitFor(() => expect(card("Fix login").dataset.status).toBe("done"));
    expect(within(column("Done")).getByText("Fix login")).toBeTruthy();
    expect(screen.queryByRole("alert")).toBeNull();
    expect(screen.getByTestId("board-announcer").textContent).toBe('Moved "Fix login" to Done.');
  });

  it("ignores a drop on the card's own column", async () => {
    const server = mount([task("t1", "Fix login", "todo")]);
    await inColumn("To do", "Fix login");
    drag("Fix login", "To do");
    await new Promise((r) => setTimeout(r, 20));
    expect(server.patches).toHaveLength(0);
  });

  it("puts the card back and says why when the server refuses the move", async () => {
    const server = mount([task("t1", "Fix login", "todo")]);
    await inColumn("To do", "Fix login");
    server.refuse = "the task is locked";
    drag("Fix login", "In progress");
    expect(within(column("In progress")).getByText("Fix login")).toBeTruthy();
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toMatch(/Could not move "Fix login" to In progress: the task is locked\. It is back in To do\./);
    expect(within(column("To do")).getByText("Fix login")).toBeTruthy();
    expect(within(column("In progress")).queryByText("Fix login")).toBeNull();
    expect(screen.getByTestId("board-announcer").textContent).toBe("");
    fireEvent.click(within(alert).getByRole("button", { name: "Dismiss" }));
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("moves a card with the keyboard through its Move menu and announces it", async () => {
    const server = mount([task("t1", "Fix login", "todo")]);
    await inColumn("To do", "Fix login");
    const toggle = screen.getByRole("button", { name: 'Move "Fix login"' });
    expect(toggle.getAttribute("aria-expanded")).toBe("false");
    fireEvent.click(toggle);
    expect(toggle.getAttribute("aria-expanded")).toBe("true");
    const menu = screen.getByRole("group", { name: 'Move "Fix login" to' });
    expect(within(menu).getAllByRole("button").map((b) => b.textContent)).toEqual(["In progress", "Done"]);
    fireEvent.click(within(menu).getByRole("button", { name: 'Move "Fix login" to Done' }));
    expect(screen.getByTestId("board-announcer").textContent).toBe('Moved "Fix login" to Done.');
    expect(screen.getByTestId("board-announcer").getAttribute("aria-live")).toBe("polite");
    expect(within(column("Done")).getByText("Fix login")).toBeTruthy();
    // The card was mounted anew in its column; the focus follows it.
    expect(document.activeElement).toBe(within(column("Done")).getByRole("link", { name: "Fix login" }));
    await waitFor(() => expect(server.patches).toEqual([{ path: "/api/v1/tasks/t1", body: { status: "done" } }]));
  });

  it("moves a card with the arrow keys while its title has focus", async () => {
    const server = mount([task("t1", "Fix login", "in_progress")]);
    await inColumn("In progress", "Fix login");
    const link = within(column("In progress")).getByRole("link", { name: "Fix login" });
    expect(document.getElementById(link.getAttribute("aria-describedby")!)!.textContent).toMatch(/arrow keys move the card/);
    fireEvent.keyDown(link, { key: "ArrowLeft" });
    expect(within(column("To do")).getByText("Fix login")).toBeTruthy();
    expect(screen.getByTestId("board-announcer").textContent).toBe('Moved "Fix login" to To do.');
    await waitFor(() => expect(server.patches).toHaveLength(1));
    // Nothing left of the first column.
    fireEvent.keyDown(within(column("To do")).getByRole("link", { name: "Fix login" }), { key: "ArrowLeft" });
    await new Promise((r) => setTimeout(r, 20));
    expect(server.patches).toEqual([{ path: "/api/v1/tasks/t1", body: { status: "todo" } }]);
  });

  it("offers no moves without write access", async () => {
    mount([task("t1", "Fix login", "todo")], "read");
    await inColumn("To do", "Fix login");
    await screen.findByRole("heading", { name: "Site" });
    expect(screen.queryByRole("button", { name: /^Move/ })).toBeNull();
    expect(card("Fix login").getAttribute("draggable")).toBe("false");
  });

  it("shows the agent's status, queue position, review round, checks and cost on the card", async () => {
    mount([
      task("t1", "Queued one", "in_progress", { status: "queued", queue_position: 2 }),
      task("t2", "Second round", "in_progress", {
        status: "pr_ready", round: 3, fix_rounds: 1, spent_usd: 0.4321,
        checks: { source: "command", checks: [{ name: "make test", passed: false }, { name: "lint", passed: true }] },
      }),
      task("t3", "First round", "in_progress", { status: "pr_ready", round: 1, checks: { source: "github", checks: [{ name: "ci", passed: true }] } }),
      task("t4", "Untouched", "todo"),
    ]);
    await inColumn("In progress", "Queued one");
    const queued = within(card("Queued one"));
    expect(queued.getByTestId("agent-status").textContent).toBe("Queued");
    expect(queued.getByTestId("queue-position").textContent).toBe("#2 in queue");
    expect(queued.queryByTestId("review-round")).toBeNull();
    const second = within(card("Second round"));
    expect(second.getByTestId("agent-status").textContent).toBe("PR ready");
    expect(second.getByTestId("review-round").textContent).toBe("round 3");
    expect(second.getByTestId("card-checks").textContent).toBe("1 of 2 checks failing");
    expect(second.getByTestId("card-fix-rounds").textContent).toBe("1 fix round");
    expect(second.getByTestId("card-cost").textContent).toBe("$0.43");
    expect(second.queryByTestId("queue-position")).toBeNull();
    const first = within(card("First round"));
    expect(first.queryByTestId("review-round")).toBeNull();
    expect(first.getByTestId("card-checks").textContent).toBe("checks pass");
    expect(first.queryByTestId("card-fix-rounds")).toBeNull();
    expect(first.queryByTestId("card-cost")).toBeNull();
    expect(within(card("Untouched")).queryByTestId("agent-status")).toBeNull();
  });

  it("moves a card live when the server changes its status (the board follows the agent)", async () => {
    class FakeSource {
      static last: FakeSource;
      handlers: Record<string, (e: MessageEvent) => void> = {};
      onopen: (() => void) | null = null;
      onerror: (() => void) | null = null;
      constructor() { FakeSource.last = this; }
      addEventListener(kind: string, f: (e: MessageEvent) => void) { this.handlers[kind] = f; }
      close() {}
      emit(kind: string, data: unknown) { this.handlers[kind]({ data: JSON.stringify(data) } as MessageEvent); }
    }
    const server = serve([task("t1", "Fix login", "todo")]);
    vi.stubGlobal("EventSource", FakeSource);
    function Live() {
      useLiveEvents(useQueryClient(), true);
      return <Board projectId="p1" me={me} />;
    }
    render(<QueryClientProvider client={new QueryClient()}><Live /></QueryClientProvider>);
    await inColumn("To do", "Fix login");
    server.tasks[0].status = "in_progress";
    server.tasks[0].agent = { ...server.tasks[0].agent, status: "queued", queue_position: 1 };
    act(() => FakeSource.last.emit("agent_update", { task: "t1", project: "p1", agent_status: "queued" }));
    await waitFor(() => expect(within(column("In progress")).getByText("Fix login")).toBeTruthy());
    expect(within(column("To do")).queryByText("Fix login")).toBeNull();
    expect(within(card("Fix login")).getByTestId("queue-position").textContent).toBe("#1 in queue");
  });
});

describe("Board URL state", () => {
  const tasks = () => [
    task("t1", "Fix login", "todo"),
    task("t2", "Agent work", "in_progress", { status: "implementing" }),
    task("t3", "Login page copy", "done", { status: "merged" }),
  ];

  it("opens the task named in the URL and drops it from the URL when closed", async () => {
    window.history.replaceState(null, "", "/projects/p1?task=t2&filter=agent");
    mount(tasks());
    const sheet = await screen.findByRole("dialog", { name: "Sheet of t2" });
    expect(within(sheet).getByRole("link", { name: "Open full page" }).getAttribute("href")).toBe("/tasks/t2");
    fireEvent.click(within(sheet).getByRole("button", { name: "Close" }));
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(window.location.pathname + window.location.search).toBe("/projects/p1?filter=agent");
    // The focus goes back to the card the sheet was about.
    expect(document.activeElement).toBe(screen.getByRole("link", { name: "Agent work" }));
  });

  it("opens a card's sheet into the URL, keeping the filters, and Back closes it", async () => {
    window.history.replaceState(null, "", "/projects/p1?q=login");
    mount(tasks());
    const link = await screen.findByRole("link", { name: "Fix login" });
    expect(link.getAttribute("href")).toBe("/projects/p1?q=login&task=t1");
    fireEvent.click(link);
    expect(window.location.search).toBe("?q=login&task=t1");
    expect(await screen.findByRole("dialog", { name: "Sheet of t1" })).toBeTruthy();
    fireEvent.keyDown(screen.getByRole("button", { name: "Close" }), { key: "Escape" });
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(window.location.search).toBe("?q=login");
    fireEvent.click(screen.getByRole("link", { name: "Fix login" }));
    act(() => {
      window.history.back();
    });
    await waitFor(() => expect(window.location.search).toBe("?q=login"));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
  });

  it("reads the filters from the URL and writes them back", async () => {
    window.history.replaceState(null, "", "/projects/p1?filter=agent&q=WORK");
    mount(tasks());
    await screen.findByText("Agent work");
    expect(screen.queryByText("Fix login")).toBeNull();
    expect(screen.queryByText("Login page copy")).toBeNull();
    expect(screen.getByRole("button", { name: "Agent-managed" }).getAttribute("aria-pressed")).toBe("true");
    const text = screen.getByLabelText("Filter by text") as HTMLInputElement;
    expect(text.value).toBe("WORK");

    fireEvent.change(text, { target: { value: "login" } });
    expect(window.location.search).toBe("?filter=agent&q=login");
    expect(screen.getByText("Login page copy")).toBeTruthy();
    expect(screen.queryByText("Agent work")).toBeNull();
    expect(screen.queryByText("Fix login")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "All" }));
    expect(window.location.search).toBe("?q=login");
    expect(screen.getByText("Fix login")).toBeTruthy();
    expect(screen.getByText("Login page copy")).toBeTruthy();
    expect(screen.queryByText("Agent work")).toBeNull();
    fireEvent.change(text, { target: { value: "zzz" } });
    expect(screen.getByText("No task matches these filters.")).toBeTruthy();
    fireEvent.change(text, { target: { value: "" } });
    expect(window.location.search).toBe("");
    expect(screen.getByText("Agent work")).toBeTruthy();
  });

  it("treats an unknown filter in the URL as all", async () => {
    window.history.replaceState(null, "", "/projects/p1?filter=bogus");
    mount(tasks());
    await screen.findByText("Fix login");
    expect(screen.getByRole("button", { name: "All" }).getAttribute("aria-pressed")).toBe("true");
  });
});
