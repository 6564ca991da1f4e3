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

const root = resolve(import.meta.dirname, "../..");
const exe = join(root, "target/debug/apiary");
const shots = join(root, "target/screenshots");
mkdirSync(shots, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "apiary-e2e-"));
const PASSWORD = "e2e admin password";
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
const agent = join(work, "agent.sh");
writeFileSync(agent, `#!/bin/sh
set -eu
prompt="$(cat "$APIARY_PROMPT_FILE")"
echo "e2e agent: $APIARY_PHASE"
case "$APIARY_PHASE" in
  spec|revise) mkdir -p .apiary; printf '# Plan\\n\\nAppend a *friendly* line to hello.txt.\\n' > .apiary/SPEC.md ;;
  implement) echo "hello from the agent" >> hello.txt ;;
  changes) printf '%s\\n' "$prompt" | sed -n 's/^- //p' >> hello.txt ;;
esac
`);

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let server = null;
function startServer() {
  server = spawn(exe, ["serve", "--bind", `127.0.0.1:${port}`, "--data-dir", join(work, "data")], {
    // A job the killed server had claimed (a fix round's dispatch, say) is taken over after
    // this lease, as an operator who restarts quickly would set it (default 300 s).
    env: { ...process.env, APIARY_ADMIN_EMAIL: "admin@example.test", APIARY_ADMIN_PASSWORD: PASSWORD, APIARY_LOG: "warn", APIARY_JOB_LEASE_S: "2" },
    stdio: ["ignore", "inherit", "inherit"],
  });
}
async function waitHealthy() {
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) return; } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("apiary serve did not become healthy");
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

  await step("mark merged; the card shows merged and the box is gone", async () => {
    await page.getByRole("button", { name: "Mark merged" }).click();
    await page.getByRole("button", { name: "Yes, mark merged" }).click();
    await page.getByTestId("agent-status").filter({ hasText: "Merged" }).waitFor();
    await page.getByRole("link", { name: "← Say hello (politely)" }).click();
    await page.getByRole("link", { name: "← Greeter" }).click();
    await page.getByTestId("task-card").filter({ hasText: "Say hello (politely)" }).getByTestId("agent-status").filter({ hasText: "Merged" }).waitFor();
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
} catch {
  // reported by step()
} finally {
  await browser.close();
  server?.kill("SIGTERM");
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
