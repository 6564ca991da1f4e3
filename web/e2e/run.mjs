// End-to-end: a real `apiary serve` (this checkout's debug build), real local boxes running a
// shell-script agent on a real git repository, driven in Debian's Chromium by playwright-core.
// No reload at any point: everything the page shows after an action arrives over the live stream.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import net from "node:net";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const root = resolve(import.meta.dirname, "../..");
const exe = join(root, "target/debug/apiary");
const shots = join(root, "target/screenshots");
mkdirSync(shots, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "apiary-e2e-"));
const PASSWORD = "e2e admin password";
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
let passed = 0;
let failed = 0;

function git(dir, ...args) {
  return execFileSync("git", ["-C", dir, "-c", "user.name=E2E", "-c", "user.email=e2e@example.test", ...args], { encoding: "utf8" });
}

async function freePort() {
  return new Promise((ok) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); });
  });
}

// The repository the project points at, and the agent script.
const repo = join(work, "repo.git");
const seed = join(work, "seed");
mkdirSync(seed);
execFileSync("git", ["init", "-q", "--bare", "-b", "main", repo]);
git(seed, "init", "-q", "-b", "main");
writeFileSync(join(seed, "hello.txt"), "hello\n");
git(seed, "add", "-A");
git(seed, "commit", "-q", "-m", "initial");
git(seed, "push", "-q", repo, "main");
// The site preview: the workspace's hello.txt as a page, under the base Apiary gives it.
const preview = join(work, "preview.py");
writeFileSync(preview, `import html, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BASE = os.environ["APIARY_SITE_BASE"]
class Site(BaseHTTPRequestHandler):
    def do_GET(self):
        if not self.path.startswith(BASE):
            self.send_error(404)
            return
        text = open("hello.txt").read() if os.path.exists("hello.txt") else ""
        body = ("<!doctype html><html lang=en><title>Greeter</title><main><h1>Greeter preview</h1><pre>%s</pre></main>" % html.escape(text)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Site).serve_forever()
`);
const agent = join(work, "agent.sh");
writeFileSync(agent, `#!/bin/sh
set -eu
prompt="$(cat "$APIARY_PROMPT_FILE")"
echo "e2e agent: $APIARY_PHASE"
case "$APIARY_PHASE" in
  spec|revise) case "$prompt" in *Slow*) sleep 6 ;; esac; mkdir -p .apiary; printf '# Plan\\n\\nAppend a *friendly* line to hello.txt.\\n' > .apiary/SPEC.md ;;
  implement) echo "hello from the agent" >> hello.txt; printf "const greeting = 'hello';\\n" > greet.js ;;
  changes) printf '%s\\n' "$prompt" | sed -n 's/^- //p' >> hello.txt ;;
esac
`);

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
// Site previews have an origin of their own; it stays across the server's restarts.
const sitePort = await freePort();
let server = null;
let demo = null;
function serve(bind, dataDir, extra = []) {
  return spawn(exe, ["serve", ...extra, "--bind", bind, "--data-dir", dataDir], {
    // A job the killed server had claimed (a fix round's dispatch, say) is taken over after
    // this lease, as an operator who restarts quickly would set it (default 300 s).
    env: { ...process.env, APIARY_ADMIN_EMAIL: "admin@example.test", APIARY_ADMIN_PASSWORD: PASSWORD, APIARY_LOG: "warn", APIARY_JOB_LEASE_S: "2" },
    stdio: ["ignore", "inherit", "inherit"],
  });
}
function startServer() {
  // A host per task (Chromium resolves every *.localhost to the loopback).
  server = serve(`127.0.0.1:${port}`, join(work, "data"), ["--site-bind", `127.0.0.1:${sitePort}`, "--site-url", `http://{task}.localhost:${sitePort}`]);
}
async function waitHealthy(url = base) {
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`${url}/healthz`)).ok) return; } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("apiary serve did not become healthy");
}

/** Runs axe-core on the page as it stands; a serious or critical violation fails the step. */
async function axe(p, what) {
  if (!(await p.evaluate(() => "axe" in window))) await p.addScriptTag({ path: AXE });
  const result = await p.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) {
    const lines = bad.map((v) => `    ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(" | ")}`);
    throw new Error(`axe found ${bad.length} serious or critical violation(s) on ${what}:\n${lines.join("\n")}`);
  }
}

/** The admin's CSRF token, for API calls made beside the page. */
async function csrfOf(ctx) {
  return (await (await ctx.request.get(`${base}/api/v1/me`)).json()).csrf_token;
}

async function setCap(n) {
  const ctx = page.context();
  const r = await ctx.request.patch(`${base}/api/v1/settings`, { data: { max_concurrent_boxes: n }, headers: { "x-csrf-token": await csrfOf(ctx) } });
  assert.equal(r.status(), 200, `PATCH /settings: ${await r.text()}`);
}

/** A card in the board's column (`todo`, `in_progress`, `done`). */
function cardIn(column, title) {
  return page.getByTestId(`column-${column}`).getByTestId("task-card").filter({ hasText: title });
}

async function createTask(title) {
  await page.getByLabel("Title").fill(title);
  await page.getByRole("button", { name: "Create task" }).click();
  await cardIn("todo", title).waitFor();
}

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`  ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`  FAIL ${name}: ${e.stack ?? e}`);
    await page?.screenshot({ path: join(shots, "failed-step.png"), fullPage: true }).catch(() => {});
    throw e;
  }
}

startServer();
await waitHealthy();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
page.setDefaultTimeout(30_000);
let taskUrl = "";
let projectUrl = "";

try {
  await step("sign in", async () => {
    await page.goto(base);
    await page.getByLabel("Email").fill("admin@example.test");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Projects" }).waitFor();
    await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
  });

  await step("turn orchestration on in the settings", async () => {
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByLabel("Agent orchestration on").check();
    // The test's repository sits beside the data folder: allow its folder for local repositories.
    await page.getByLabel(/Local repository folders/).fill(work);
    await page.getByLabel("Automatic fix rounds for failing checks").fill("1");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    await axe(page, "the settings page");
  });

  await step("the settings show the model gateway", async () => {
    const gateway = page.getByRole("group", { name: "Model gateway", exact: true });
    await gateway.waitFor();
    await gateway.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, "settings-gateway.png"), fullPage: true });
  });

  await step("create a project pointing at a local repository", async () => {
    await page.getByRole("link", { name: "Projects" }).click();
    await page.getByLabel("New project").fill("Greeter");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.getByRole("heading", { name: "Agent for Greeter" }).waitFor();
    await page.getByLabel("Agent enabled for this project").check();
    await page.getByLabel("Repository URL").fill(repo);
    await page.getByLabel("Agent preset").selectOption("script");
    await page.getByLabel("Custom command (wins over the preset)").fill(`sh ${agent}`);
    // Checks run in the box after each round; this one passes only once the reviewer's wave is in.
    // (It names the text through a variable: the fix round's comment quotes the command.)
    await page.getByLabel("Check command").fill("w=wave; grep -q \"$w as well\" hello.txt || { echo 'hello.txt does not wave yet'; exit 1; }");
    await page.getByLabel("Site preview command").fill(`exec python3 ${preview}`);
    await page.getByRole("textbox", { name: "changes prompt" }).fill("Review:\n{% for c in comments %}- {{ c.body }}\n{% endfor %}");
    await page.getByRole("button", { name: "Save agent settings" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    await page.getByRole("link", { name: "← Greeter" }).click();
    projectUrl = page.url();
  });

  await step("create a task and hand it to the agent; spec_ready arrives live", async () => {
    await page.getByLabel("Title").fill("Say hello (politely)");
    await page.getByRole("button", { name: "Create task" }).click();
    const card = page.getByTestId("task-card").filter({ hasText: "Say hello (politely)" });
    await card.waitFor();
    await page.screenshot({ path: join(shots, "board.png"), fullPage: true });
    // The card opens the task beside the board (`?task=`); the rest of the run uses its page.
    await card.getByRole("link").click();
    await page.getByRole("dialog").getByRole("link", { name: "Open full page" }).click();
    taskUrl = page.url();
    await page.getByRole("button", { name: "Hand to agent" }).click();
    await page.getByTestId("agent-status").filter({ hasText: "Spec ready" }).waitFor();
    await page.getByTestId("spec").filter({ hasText: "Append a friendly line" }).waitFor();
    await page.getByTestId("agent-log").filter({ hasText: "e2e agent: spec" }).waitFor();
    await page.screenshot({ path: join(shots, "task-spec-ready.png"), fullPage: true });
    await axe(page, "the task page");
  });

  await step("a user without write access sees no action buttons, and the API refuses", async () => {
    const admin = await page.context().request;
    const csrf = (await (await admin.get(`${base}/api/v1/me`)).json()).csrf_token;
    const projectId = projectUrl.split("/").pop();
    const taskId = taskUrl.split("/").pop();
    execFileSync(exe, ["user", "create", "--data-dir", join(work, "data"), "--email", "reader@example.test", "--name", "Reader"], { env: { ...process.env, APIARY_USER_PASSWORD: "reader password", APIARY_LOG: "error" } });
    const users = await (await admin.get(`${base}/api/v1/users`)).json();
    const reader = users.find((u) => u.email === "reader@example.test");
    const put = await admin.put(`${base}/api/v1/projects/${projectId}/members/${reader.id}`, { data: { access: "read" }, headers: { "x-csrf-token": csrf } });
    assert.equal(put.status(), 204);
    const ctx = await browser.newContext();
    const other = await ctx.newPage();
    await other.goto(base);
    await other.getByLabel("Email").fill("reader@example.test");
    await other.getByLabel("Password").fill("reader password");
    await other.getByRole("button", { name: "Sign in" }).click();
    await other.getByRole("heading", { name: "Projects" }).waitFor();
    await other.goto(taskUrl);
    await other.getByTestId("agent-status").filter({ hasText: "Spec ready" }).waitFor();
    assert.equal(await other.getByRole("group", { name: "Agent actions" }).count(), 0, "no action buttons for a reader");
    assert.equal(await other.getByRole("button", { name: "Approve spec" }).count(), 0);
    const readerCsrf = (await (await ctx.request.get(`${base}/api/v1/me`)).json()).csrf_token;
    const refused = await ctx.request.post(`${base}/api/v1/tasks/${taskId}/agent/approve-spec`, { data: {}, headers: { "x-csrf-token": readerCsrf } });
    assert.equal(refused.status(), 403);
    await ctx.close();
  });

  await step("the board: the handed-over card stands in In progress", async () => {
    await page.getByRole("link", { name: "← Greeter" }).click();
    await cardIn("in_progress", "Say hello (politely)").getByTestId("agent-status").filter({ hasText: "Spec ready" }).waitFor();
    await axe(page, "the board");
  });

  await step("drag and drop: a new card dragged from To do to Done stays there", async () => {
    await createTask("Drag me along");
    await cardIn("todo", "Drag me along").dragTo(page.getByTestId("column-done"));
    await cardIn("done", "Drag me along").waitFor();
    await page.getByTestId("board-announcer").filter({ hasText: 'Moved "Drag me along" to Done.' }).waitFor();
    // The server's answer (and the live refetch after it) keeps it there.
    const projectId = projectUrl.split("/").pop();
    for (let i = 0; i < 50; i++) {
      const tasks = await (await page.context().request.get(`${base}/api/v1/projects/${projectId}/tasks`)).json();
      if (tasks.find((t) => t.title === "Drag me along")?.status === "done") break;
      if (i === 49) throw new Error("the server did not record the move");
      await new Promise((r) => setTimeout(r, 100));
    }
    await cardIn("done", "Drag me along").waitFor();
    await page.screenshot({ path: join(shots, "board-dnd.png"), fullPage: true });
  });

  await step("the fleet: with a cap of one box the next task queues; stop it there", async () => {
    await setCap(1);
    await createTask("Wait for a box");
    await cardIn("todo", "Wait for a box").getByRole("link").click();
    const sheet = page.getByRole("dialog");
    await sheet.getByRole("button", { name: "Hand to agent" }).click();
    await sheet.getByTestId("agent-status").filter({ hasText: "Queued" }).waitFor();
    await sheet.getByRole("button", { name: "Close" }).click();
    await page.getByRole("link", { name: "Fleet" }).click();
    await page.getByTestId("fleet-summary").filter({ hasText: "1 of 1 boxes running · 1 queued" }).waitFor();
    await page.getByTestId("fleet-running-row").filter({ hasText: "Say hello (politely)" }).waitFor();
    const queued = page.getByTestId("fleet-queued-row").filter({ hasText: "Wait for a box" });
    await queued.filter({ hasText: "#1" }).waitFor();
    await page.screenshot({ path: join(shots, "fleet.png"), fullPage: true });
    await axe(page, "the fleet page");
    await queued.getByRole("button", { name: "Stop Wait for a box" }).click();
    await queued.getByRole("button", { name: "Yes, stop" }).click();
    await page.getByText("Nothing is waiting for a box.").waitFor();
    await setCap(5);
  });

  await step("a follow-up message reaches the agent while it writes the spec", async () => {
    await page.getByRole("link", { name: "Projects" }).click();
    await page.getByRole("link", { name: "Greeter" }).click();
    await createTask("Slow follow-up");
    await cardIn("todo", "Slow follow-up").getByRole("link").click();
    const sheet = page.getByRole("dialog");
    await sheet.getByRole("button", { name: "Hand to agent" }).click();
    await sheet.getByTestId("agent-status").filter({ hasText: "Writing spec" }).waitFor();
    await sheet.getByLabel("Your message for the agent").fill("Please mention the weather.");
    await sheet.getByRole("button", { name: "Send" }).click();
    await sheet.getByRole("status").filter({ hasText: "Sent: the agent gets it at its next turn." }).waitFor();
    await sheet.getByTestId("agent-log").filter({ hasText: /message from .*: Please mention the weather\./ }).waitFor();
    await sheet.getByTestId("agent-log").getByText(/message from/).scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, "follow-up.png"), fullPage: true });
    await sheet.getByTestId("agent-status").filter({ hasText: "Spec ready" }).waitFor({ timeout: 30_000 });
    await sheet.getByRole("button", { name: "Cancel" }).click();
    await sheet.getByRole("button", { name: "Yes, cancel" }).click();
    await sheet.getByTestId("agent-status").filter({ hasText: "Cancelled" }).waitFor();
    await sheet.getByRole("button", { name: "Close" }).click();
    // Back to the first task's page for the rest of the loop.
    await cardIn("in_progress", "Say hello (politely)").getByRole("link").click();
    await page.getByRole("dialog").getByRole("link", { name: "Open full page" }).click();
    assert.equal(page.url(), taskUrl);
  });

  await step("approve; the server goes away for five seconds; pr_ready still arrives", async () => {
    await page.getByRole("button", { name: "Approve spec" }).click();
    await page.getByTestId("agent-status").filter({ hasText: /Implementing|PR ready/ }).waitFor();
    server.kill("SIGKILL");
    await page.getByTestId("live-state").filter({ hasText: "Offline" }).waitFor({ timeout: 15_000 });
    await new Promise((r) => setTimeout(r, 5000));
    startServer();
    await waitHealthy();
    await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor({ timeout: 30_000 });
    await page.getByTestId("agent-status").filter({ hasText: "PR ready" }).waitFor({ timeout: 60_000 });
  });

  await step("the check fails: one fix round runs on its own, then the review page shows the failing check", async () => {
    await page.getByTestId("checks-summary").filter({ hasText: "automatic fix rounds used: 1" }).waitFor({ timeout: 60_000 });
    await page.getByTestId("agent-status").filter({ hasText: "PR ready" }).waitFor({ timeout: 60_000 });
    await page.getByRole("link", { name: "Review PR" }).click();
    await page.getByRole("heading", { name: /Review:/ }).waitFor();
    const checks = page.getByTestId("checks");
    await checks.getByTestId("checks-outcome").filter({ hasText: "Checks failing" }).waitFor();
    await checks.getByTestId("fix-rounds").filter({ hasText: "Automatic fix rounds used: 1" }).waitFor();
    await checks.getByRole("region", { name: /Log tail of w=wave/ }).filter({ hasText: "hello.txt does not wave yet" }).waitFor();
    await page.screenshot({ path: join(shots, "review-checks-failing.png"), fullPage: true });
    await axe(page, "the review page (unified)");
    await page.goBack();
  });

  await step("review: comment on a line and on the whole change, request changes; round 3 arrives live with its check passing", async () => {
    await page.getByRole("link", { name: "Review PR" }).click();
    await page.getByRole("heading", { name: /Review:/ }).waitFor();
    await page.getByRole("button", { name: "Comment on hello.txt line 2" }).click();
    await page.getByLabel("Comment on line 2").fill("say goodbye too");
    await page.getByRole("button", { name: "Add comment" }).click();
    await page.getByLabel("Review comment (for the whole change)").fill("wave as well");
    await page.screenshot({ path: join(shots, "review.png"), fullPage: true });
    await page.getByRole("button", { name: "Request changes" }).click();
    await page.getByText("round 3").waitFor();
    await page.getByTestId("agent-status").filter({ hasText: "PR ready" }).waitFor({ timeout: 60_000 });
    await page.getByRole("table", { name: "Changes in hello.txt" }).getByText("say goodbye too").waitFor();
    await page.getByRole("table", { name: "Changes in hello.txt" }).getByText("wave as well").waitFor();
    await page.getByTestId("checks").getByTestId("checks-outcome").filter({ hasText: "Checks passed" }).waitFor({ timeout: 30_000 });
  });

  await step("the review side by side: the JavaScript file is highlighted", async () => {
    await page.getByRole("button", { name: "Side by side" }).click();
    const table = page.getByRole("table", { name: "Changes in greet.js, side by side" });
    await table.locator('td.code[data-side="new"] span[class*="hljs-"]').first().waitFor();
    const tokens = await table.locator('span[class*="hljs-"]').evaluateAll((els) => els.map((e) => `${e.className}:${e.textContent}`));
    assert.ok(tokens.some((t) => t.startsWith("hljs-keyword:const")), `a highlighted keyword, got ${tokens.join(", ")}`);
    assert.ok(tokens.some((t) => t.startsWith("hljs-string:")), `a highlighted string, got ${tokens.join(", ")}`);
    await page.screenshot({ path: join(shots, "review-split.png"), fullPage: true });
    await axe(page, "the review page (side by side)");
    await page.getByRole("button", { name: "Unified" }).click();
  });

  await step("the code view from the agent panel: the agent's file marked changed and shown", async () => {
    const review = page.url();
    await page.getByRole("link", { name: "← Say hello (politely)" }).click();
    await page.getByRole("region", { name: "Agent" }).getByRole("link", { name: "Code" }).click();
    await page.getByRole("heading", { name: "Code in the box" }).waitFor();
    const files = page.getByRole("navigation", { name: "Files" });
    await files.getByRole("link", { name: "hello.txt" }).click();
    await page.getByTestId("code-text").filter({ hasText: "say goodbye too" }).waitFor();
    // A JavaScript file is highlighted by its type.
    await files.getByRole("link", { name: "greet.js" }).click();
    await page.getByTestId("code-text").locator('span[class*="hljs-"]').first().waitFor();
    await page.screenshot({ path: join(shots, "code-view.png"), fullPage: true });
    await axe(page, "the code view");
    // The Site link: the agent's app, in a tab of its own, from the site origin.
    await page.goto(taskUrl);
    await page.getByTestId("site-state").filter({ hasText: "ready" }).waitFor();
    const [site] = await Promise.all([
      page.waitForEvent("popup"),
      page.getByRole("region", { name: "Agent" }).getByRole("link", { name: "Site" }).click(),
    ]);
    await site.getByRole("heading", { name: "Greeter preview" }).waitFor();
    await site.getByText("say goodbye too").waitFor();
    const taskId = taskUrl.split("/").pop();
    assert.equal(new URL(site.url()).host, `${taskId}.localhost:${sitePort}`, `served from the task's own site origin: ${site.url()}`);
    assert.ok(!site.url().includes("apiary_ticket"), site.url());
    await site.screenshot({ path: join(shots, "site-preview.png"), fullPage: true });
    await site.close();
    await page.goto(review);
    await page.getByRole("heading", { name: /Review:/ }).waitFor();
  });

  await step("mark merged; the card shows merged and the box is gone", async () => {
    await page.getByRole("button", { name: "Mark merged" }).click();
    await page.getByRole("button", { name: "Yes, mark merged" }).click();
    await page.getByTestId("agent-status").filter({ hasText: "Merged" }).waitFor();
    await page.getByRole("link", { name: "← Say hello (politely)" }).click();
    await page.getByRole("link", { name: "← Greeter" }).click();
    await cardIn("done", "Say hello (politely)").getByTestId("agent-status").filter({ hasText: "Merged" }).waitFor();
    await page.screenshot({ path: join(shots, "board-columns.png"), fullPage: true });
    const log = git(repo, "log", "--format=%s", "main");
    assert.match(log, /Merge apiary\//);
    const taskId = taskUrl.split("/").pop();
    for (let i = 0; i < 100; i++) {
      const t = await (await page.context().request.get(`${base}/api/v1/tasks/${taskId}`)).json();
      if (t.agent.box_torn_down && !existsSync(join(work, "data", "boxes", t.agent.box_id ?? "none"))) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("the box was not torn down");
  });

  await step("the account page", async () => {
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByRole("heading", { name: "Account", exact: true }).waitFor();
    await axe(page, "the account page");
  });

  await step("the demo: three seeded tasks, one handed over", async () => {
    const port2 = await freePort();
    const base2 = `http://127.0.0.1:${port2}`;
    demo = serve(`127.0.0.1:${port2}`, join(work, "demo-data"), ["--demo", "--site-bind", "127.0.0.1:0"]);
    await waitHealthy(base2);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const other = await ctx.newPage();
    await other.goto(base2);
    await other.getByLabel("Email").fill("admin@example.test");
    await other.getByLabel("Password").fill(PASSWORD);
    await other.getByRole("button", { name: "Sign in" }).click();
    await other.getByRole("heading", { name: "Projects" }).waitFor();
    await other.getByRole("link", { name: "Demo", exact: true }).click();
    await other.getByRole("heading", { name: "Demo" }).waitFor();
    const cards = other.getByTestId("task-card");
    await cards.nth(2).waitFor();
    assert.equal(await cards.count(), 3);
    await cards.getByTestId("agent-status").first().waitFor();
    assert.equal(await cards.filter({ has: other.getByTestId("agent-status") }).count(), 1, "one demo task handed over");
    await other.screenshot({ path: join(shots, "demo.png"), fullPage: true });
    await axe(other, "the demo board");
    // Cancel the handed-over task so its box goes with the demo server.
    const csrf = (await (await ctx.request.get(`${base2}/api/v1/me`)).json()).csrf_token;
    const projects = await (await ctx.request.get(`${base2}/api/v1/projects`)).json();
    const tasks = await (await ctx.request.get(`${base2}/api/v1/projects/${projects.find((p) => p.name === "Demo").id}/tasks`)).json();
    for (const t of tasks.filter((t) => t.agent.status !== "none")) {
      const r = await ctx.request.post(`${base2}/api/v1/tasks/${t.id}/agent/cancel`, { data: {}, headers: { "x-csrf-token": csrf } });
      assert.equal(r.status(), 200, `cancel: ${await r.text()}`);
      for (let i = 0; i < 100 && !(await (await ctx.request.get(`${base2}/api/v1/tasks/${t.id}`)).json()).agent.box_torn_down; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await ctx.close();
  });
} catch {
  // reported by step()
} finally {
  await browser.close();
  server?.kill("SIGTERM");
  if (demo?.pid) process.kill(demo.pid, "SIGTERM");
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
