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

function mount(forge: string, agent: Record<string, unknown> = {}, diff = DIFF) {
  const sent: { path: string; body: unknown }[] = [];
  vi.stubGlobal("fetch", vi.fn(async (path: string, init?: RequestInit) => {
    let body: unknown;
    if (init?.method === "POST") {
      sent.push({ path, body: JSON.parse(String(init.body)) });
      body = { task: task("changes_requested"), changed: true };
    } else if (path.endsWith("/agent/diff")) {
      if (forge !== "local") return new Response(JSON.stringify({ error: { code: "not_local_forge", message: "the diff is on the project's forge" } }), { status: 409 });
      body = { base: "main", branch: "apiary/t1-footer", diff };
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

afterEach(() => { cleanup(); vi.unstubAllGlobals(); window.history.replaceState(null, "", "/"); });

/** Characters the default fonts (DejaVu Sans, Liberation, Noto Sans without emoji) all draw:
 *  printable ASCII and a few common punctuation marks and arrows. */
const SAFE = /^[\x20-\x7e\n\t\u00a0\u00b7\u2013\u2014\u2018\u2019\u201c\u201d\u2026\u2190\u2192]*$/;

function unsafeChars(text: string): string[] {
  return [...new Set([...text].filter((c) => !SAFE.test(c)))].map((c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase()}`);
}

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

  it("keeps the diff view in the URL: unified by default, ?view=split side by side", async () => {
    window.history.replaceState(null, "", "/tasks/t1/review?view=split");
    mount("local");
    expect(await screen.findByRole("table", { name: "Changes in a.txt, side by side" })).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Unified" }));
    expect(window.location.pathname + window.location.search).toBe("/tasks/t1/review");
    expect(await screen.findByRole("table", { name: "Changes in a.txt" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Unified" }).getAttribute("aria-pressed")).toBe("true");
    fireEvent.click(screen.getByRole("button", { name: "Side by side" }));
    expect(window.location.search).toBe("?view=split");
    expect(await screen.findByRole("table", { name: "Changes in a.txt, side by side" })).toBeTruthy();
  });

  it("renders line comments and the review comment as sanitised Markdown", async () => {
    const sent = mount("local");
    fireEvent.click(await screen.findByRole("button", { name: "Comment on a.txt line 2" }));
    fireEvent.change(screen.getByLabelText("Comment on line 2"), { target: { value: "Use **three**, see `x`.\n\n- a\n- b <img src=x onerror=alert(1)>" } });
    fireEvent.click(screen.getByRole("button", { name: "Add comment" }));
    const draft = document.querySelector(".draft")!;
    expect(draft.querySelector("strong")?.textContent).toBe("three");
    expect(draft.querySelector("code")?.textContent).toBe("x");
    expect(draft.querySelectorAll("li")).toHaveLength(2);
    expect(draft.querySelector("img")?.hasAttribute("onerror")).toBe(false);
    expect(draft.textContent).toContain("Pending comment");
    fireEvent.change(screen.getByLabelText("Review comment (for the whole change)"), { target: { value: "# Overall\n*fine*" } });
    const preview = screen.getByTestId("general-preview");
    expect(preview.querySelector("h1")?.textContent).toBe("Overall");
    expect(preview.querySelector("em")?.textContent).toBe("fine");
    fireEvent.click(screen.getByRole("button", { name: "Request changes" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    // The Markdown goes to the agent as written.
    expect(sent[0].body).toEqual({ comments: [{ body: "# Overall\n*fine*" }, { path: "a.txt", line: 2, body: "Use **three**, see `x`.\n\n- a\n- b <img src=x onerror=alert(1)>" }] });
  });

  it("draws no character the default fonts lack", async () => {
    const diff = `${DIFF}diff --git a/old.rs b/new.rs\nsimilarity index 90%\nrename from old.rs\nrename to new.rs\n--- a/old.rs\n+++ b/new.rs\n@@ -1 +1 @@\n-fn a() {}\n+fn b() {}\ndiff --git a/i.png b/i.png\nBinary files a/i.png and b/i.png differ\n`;
    mount("local", {
      fix_rounds: 1,
      checks: { source: "command", checks: [{ name: "test", passed: false, summary: "1 failed", log_tail: "FAILED" }, { name: "fmt", passed: true, summary: "ok" }] },
    }, diff);
    fireEvent.click(await screen.findByRole("button", { name: "Comment on a.txt line 2" }));
    fireEvent.change(screen.getByLabelText("Comment on line 2"), { target: { value: "a note" } });
    fireEvent.click(screen.getByRole("button", { name: "Add comment" }));
    fireEvent.click(screen.getByRole("button", { name: "Comment on new.rs line 1" }));
    fireEvent.change(screen.getByLabelText("Review comment (for the whole change)"), { target: { value: "ok" } });
    expect(document.querySelector(".draft")).toBeTruthy();
    expect(screen.getByRole("region", { name: "Checks" })).toBeTruthy();
    expect(unsafeChars(document.body.textContent!)).toEqual([]);
    fireEvent.click(screen.getByRole("button", { name: "Side by side" }));
    await screen.findByRole("table", { name: "Changes in a.txt, side by side" });
    expect(unsafeChars(document.body.textContent!)).toEqual([]);
    // The check is real: an emoji would be caught.
    expect(unsafeChars("\u{1F4AC} a")).toEqual(["U+1F4AC"]);
  });
});
