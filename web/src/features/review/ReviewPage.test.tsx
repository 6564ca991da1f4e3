import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { User } from "../../api/types";
import { ReviewPage } from "./ReviewPage";

const me = { id: "u1", name: "Ann", role: "member" } as User;

function task(status: string, agent: Record<string, unknown> = {}) {
  return {
    id: "t1", project_id: "p1", title: "Footer", description: "", status: "todo", assignee_id: null,
    agent: { status, round: 1, branch: "apiary/t1-footer", pr_url: "https://github.com/acme/site/pull/7", box_torn_down: false, parked: false, fix_rounds: 0, checks: null, ...agent },
  };
}

const DIFF = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1,2 @@\n one\n+two\n";

function mount(forge: string, agent: Record<string, unknown> = {}) {
  const sent: { path: string; body: unknown }[] = [];
  vi.stubGlobal("fetch", vi.fn(async (path: string, init?: RequestInit) => {
    let body: unknown;
    if (init?.method === "POST") {
      sent.push({ path, body: JSON.parse(String(init.body)) });
      body = { task: task("changes_requested"), changed: true };
    } else if (path.endsWith("/agent/diff")) {
      if (forge !== "local") return new Response(JSON.stringify({ error: { code: "not_local_forge", message: "the diff is on the project's forge" } }), { status: 409 });
      body = { base: "main", branch: "apiary/t1-footer", diff: DIFF };
    } else if (path.startsWith("/api/v1/projects/")) {
      body = { id: "p1", name: "Site", access: "write", agent: { forge } };
    } else {
      body = task("pr_ready", agent);
    }
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }));
  render(
    <QueryClientProvider client={new QueryClient()}>
      <ReviewPage taskId="t1" me={me} />
    </QueryClientProvider>,
  );
  return sent;
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("ReviewPage", () => {
  it("requests changes of a github PR with a general comment", async () => {
    const sent = mount("github");
    const box = await screen.findByLabelText("Review comment (for the whole change)");
    expect(screen.getByRole("link", { name: "open the pull request" }).getAttribute("href")).toBe("https://github.com/acme/site/pull/7");
    const button = screen.getByRole("button", { name: "Request changes" }) as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    fireEvent.change(box, { target: { value: "  Handle the empty footer.  " } });
    fireEvent.click(button);
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0].path).toBe("/api/v1/tasks/t1/agent/request-changes");
    expect(sent[0].body).toEqual({ comments: [{ body: "Handle the empty footer." }] });
    expect(screen.queryByRole("alert")).toBeNull();
    expect(screen.queryByRole("region", { name: "Checks" })).toBeNull();
  });

  it("shows the last checks of the PR head and the fix rounds spent", async () => {
    mount("github", {
      fix_rounds: 2,
      checks: { source: "github", checks: [{ name: "CI / test", passed: false, summary: "2 tests failed", log_tail: "FAILED footer_test" }] },
    });
    const panel = await screen.findByRole("region", { name: "Checks" });
    expect(panel.textContent).toContain("Checks failing");
    expect(panel.textContent).toContain("source: GitHub checks");
    expect(panel.textContent).toContain("Automatic fix rounds used: 2");
    expect(screen.getByRole("region", { name: "Log tail of CI / test" }).textContent).toBe("FAILED footer_test");
    // The review itself is unchanged.
    expect(await screen.findByLabelText("Review comment (for the whole change)")).toBeTruthy();
  });

  it("sends the general comment with the line comments on the local forge", async () => {
    const sent = mount("local");
    fireEvent.click(await screen.findByRole("button", { name: "Comment on a.txt line 2" }));
    fireEvent.change(screen.getByLabelText("Comment on line 2"), { target: { value: "say three" } });
    fireEvent.click(screen.getByRole("button", { name: "Add comment" }));
    fireEvent.change(screen.getByLabelText("Review comment (for the whole change)"), { target: { value: "Overall fine." } });
    fireEvent.click(screen.getByRole("button", { name: "Request changes" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0].body).toEqual({ comments: [{ body: "Overall fine." }, { path: "a.txt", line: 2, body: "say three" }] });
  });
});
