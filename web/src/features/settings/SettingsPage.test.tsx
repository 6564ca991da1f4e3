import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { setCsrf } from "../../api/client";
import { githubWebhookUrl, normalizeHandle } from "./GithubSection";
import { SettingsPage } from "./SettingsPage";

const unset = { set: false };
const settings = {
  agent_orchestration_enabled: false, box_provider: "local", box_host_url: "", box_host_key: unset, callback_base_url: "http://10.0.0.2:7878", public_url: "https://apiary.example.com/",
  github_api_base: "https://api.github.com", github_handle: "apiary", ci_fix_rounds: 2, github_webhook_secret: unset, github_app_id: "", github_app_private_key: unset, local_repo_roots: [], egress_allow: [], default_template: "big", max_concurrent_boxes: 2,
  box_limits: { memory_mb: 4096, cpu_millis: 2000, pids: 1024 },
  task_log_bytes: 1000, watchdog_interval_s: 30, notifications_enabled: false, chatty_events: false, log_notifications: false,
  timeouts: { provisioning_s: 1, speccing_s: 2, implementing_s: 3, idle_s: 4, failed_grace_s: 5, orphan_s: 6, stall_s: 900 },
  telegram: { enabled: false, bot_token: unset, chat_id: "", api_base: "", updates: "off", bot_username: "" },
  slack: { enabled: false, bot_token: unset, signing_secret: { set: true }, channel: "", api_base: "https://slack.com/api" },
  email: { enabled: false, host: "", port: 587, tls: "starttls", username: "", password: unset, from: "", to: [], to_reviewers: false },
  webhooks: [],
  prompts: { spec: "", revise: "", implement: "", changes: "" },
  gateway: {
    base_urls: { openai: "http://llm.internal/v1" },
    models: { "claude-code": "claude-sonnet-4-5", codex: "gpt-5", aider: "claude-sonnet-4-5", opencode: "gpt-5", gemini: "gemini-2.5-pro" },
    agent_env: { NODE_OPTIONS: "--max-old-space-size=4096" },
    prices: [{ model: "claude-sonnet-4-5", input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 }],
    task_budget_usd: 10, project_month_budget_usd: 0, stall_repeats: 5,
    keys: { anthropic: { set: true }, openai: unset, gemini: unset },
  },
};

function mount(refuse?: { message: string; field: string; status?: number; code?: string }) {
  const sent: Record<string, unknown>[] = [];
  vi.stubGlobal("fetch", vi.fn(async (_path: string, init?: RequestInit) => {
    if (init?.method === "PATCH") {
      sent.push(JSON.parse(String(init.body)));
      if (refuse) {
        const { status = 400, code = "bad_request", ...error } = refuse;
        return new Response(JSON.stringify({ error: { code, ...error } }), { status });
      }
    }
    return new Response(JSON.stringify(settings), { status: 200, headers: { "content-type": "application/json" } });
  }));
  setCsrf("t");
  render(<QueryClientProvider client={new QueryClient()}><SettingsPage /></QueryClientProvider>);
  return sent;
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("SettingsPage: model gateway", () => {
  it("edits keys, base URLs, models, budgets, the stall guard, the environment and prices, and sends them", async () => {
    const sent = mount();
    const section = await screen.findByRole("group", { name: "Model gateway" });
    const s = within(section);
    expect((s.getByLabelText("Model for codex") as HTMLInputElement).value).toBe("gpt-5");
    expect((s.getByLabelText(/^Stall timeout/) as HTMLInputElement).value).toBe("900");
    expect(screen.queryByLabelText(/Timeout stall/)).toBeNull();
    fireEvent.click(within(s.getByRole("group", { name: "Anthropic API key" })).getByRole("button", { name: "Clear" }));
    fireEvent.change(s.getByLabelText("OpenAI base URL"), { target: { value: " " } });
    fireEvent.change(s.getByLabelText("Gemini base URL"), { target: { value: "https://gemini.internal" } });
    fireEvent.change(s.getByLabelText("Model for codex"), { target: { value: "gpt-5-mini" } });
    fireEvent.change(s.getByLabelText(/^Per-task budget/), { target: { value: "2.5" } });
    fireEvent.change(s.getByLabelText(/^Stall repeats/), { target: { value: "0" } });
    fireEvent.change(s.getByLabelText(/^Stall timeout/), { target: { value: "600" } });
    fireEvent.change(s.getByLabelText(/^Agent environment/), { target: { value: "NODE_OPTIONS=--x\nCI=1" } });
    fireEvent.click(s.getByRole("button", { name: "Add price" }));
    fireEvent.change(s.getByLabelText("Price row 2: model"), { target: { value: "*" } });
    fireEvent.change(s.getByLabelText("Price row 2: output ($ per million tokens)"), { target: { value: "20" } });
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0].timeouts).toMatchObject({ stall_s: 600 });
    expect(sent[0].gateway).toEqual({
      base_urls: { gemini: "https://gemini.internal" },
      models: { ...settings.gateway.models, codex: "gpt-5-mini" },
      agent_env: { NODE_OPTIONS: "--x", CI: "1" },
      prices: [settings.gateway.prices[0], { model: "*", input: 0, output: 20, cache_read: 0, cache_write: 0 }],
      task_budget_usd: 2.5, project_month_budget_usd: 0, stall_repeats: 0,
      keys: { anthropic: null },
    });
  });

  it("refuses a bad environment line without sending, and shows the server's refusal naming the field", async () => {
    const sent = mount({ message: "each price needs a model name", field: "gateway.prices" });
    const s = within(await screen.findByRole("group", { name: "Model gateway" }));
    fireEvent.change(s.getByLabelText(/^Agent environment/), { target: { value: "GOOD=1\n2BAD=x" } });
    expect(s.getByText(/^Line 2: "2BAD" is not a variable name/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    expect((await screen.findByRole("alert")).textContent).toMatch(/^gateway\.agent_env: Line 2/);
    expect(sent).toHaveLength(0);
    fireEvent.change(s.getByLabelText(/^Agent environment/), { target: { value: "GOOD=1" } });
    fireEvent.click(s.getByRole("button", { name: "Remove price row 1" }));
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toBe("gateway.prices: each price needs a model name"));
    expect(sent).toHaveLength(1);
  });
});

describe("SettingsPage: GitHub", () => {
  it("edits the API base, the handle, the fix rounds and the webhook secret, and sends them", async () => {
    const sent = mount();
    const s = within(await screen.findByRole("group", { name: "GitHub" }));
    expect((s.getByLabelText("GitHub API base") as HTMLInputElement).value).toBe("https://api.github.com");
    expect((s.getByLabelText("GitHub handle") as HTMLInputElement).value).toBe("apiary");
    expect((s.getByLabelText(/^Automatic fix rounds/) as HTMLInputElement).value).toBe("2");
    expect(s.getByTestId("github-webhook-help").textContent).toContain("https://apiary.example.com/api/v1/github/webhook");
    expect(s.getByTestId("github-webhook-help").textContent).toMatch(/content type application\/json/);
    fireEvent.change(s.getByLabelText("GitHub API base"), { target: { value: " https://ghe.example.com/api/v3 " } });
    fireEvent.change(s.getByLabelText("GitHub handle"), { target: { value: " @octo-bot " } });
    fireEvent.change(s.getByLabelText(/^Automatic fix rounds/), { target: { value: "0" } });
    const secret = within(s.getByRole("group", { name: "GitHub webhook secret" }));
    fireEvent.click(secret.getByRole("button", { name: "Set" }));
    fireEvent.change(secret.getByLabelText("New GitHub webhook secret"), { target: { value: "s3cret" } });
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0]).toMatchObject({ github_api_base: "https://ghe.example.com/api/v3", github_handle: "octo-bot", ci_fix_rounds: 0, github_webhook_secret: "s3cret" });
  });

  it("sends the GitHub App's id and its private key with its line breaks", async () => {
    const sent = mount();
    const s = within(await screen.findByRole("group", { name: "GitHub" }));
    fireEvent.change(s.getByLabelText("GitHub App id"), { target: { value: " 123456 " } });
    const key = within(s.getByRole("group", { name: "GitHub App private key (PEM)" }));
    fireEvent.click(key.getByRole("button", { name: "Set" }));
    const pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";
    fireEvent.change(key.getByLabelText("New GitHub App private key (PEM)"), { target: { value: pem } });
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0]).toMatchObject({ github_app_id: "123456", github_app_private_key: pem });
  });

  it("keeps an untouched webhook secret out of the save and clears one on request", async () => {
    settings.github_webhook_secret = { set: true };
    try {
      const sent = mount();
      const s = within(await screen.findByRole("group", { name: "GitHub" }));
      fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
      await waitFor(() => expect(sent).toHaveLength(1));
      expect(sent[0]).not.toHaveProperty("github_webhook_secret");
      expect(sent[0]).toMatchObject({ github_handle: "apiary", ci_fix_rounds: 2 });
      fireEvent.click(within(s.getByRole("group", { name: "GitHub webhook secret" })).getByRole("button", { name: "Clear" }));
      fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
      await waitFor(() => expect(sent).toHaveLength(2));
      expect(sent[1].github_webhook_secret).toBeNull();
    } finally {
      settings.github_webhook_secret = unset;
    }
  });

  it("says where to point the webhook before a public URL is set", () => {
    expect(githubWebhookUrl("", "")).toBe("<public URL>/api/v1/github/webhook");
    expect(githubWebhookUrl(" ", "http://10.0.0.2:7878/")).toBe("http://10.0.0.2:7878/api/v1/github/webhook");
    expect(normalizeHandle(" @apiary-bot ")).toBe("apiary-bot");
  });
});

describe("SettingsPage: Telegram", () => {
  it("sends how updates arrive and the bot's username, and shows the webhook URL in webhook mode", async () => {
    const sent = mount();
    const s = within(await screen.findByRole("group", { name: "Telegram" }));
    expect((s.getByLabelText("Telegram updates") as HTMLSelectElement).value).toBe("off");
    expect(s.getAllByRole("option").map((o) => o.textContent)).toEqual([
      "Off — notifications only",
      "Webhook — Telegram calls Apiary at its public URL",
      "Long polling — Apiary asks Telegram (no public URL needed)",
    ]);
    expect(s.queryByTestId("telegram-webhook-help")).toBeNull();
    fireEvent.click(s.getByLabelText("Telegram on"));
    fireEvent.change(s.getByLabelText("Telegram updates"), { target: { value: "webhook" } });
    fireEvent.change(s.getByLabelText("Telegram bot username"), { target: { value: " @apiary_bot " } });
    expect(s.getByTestId("telegram-webhook-help").textContent).toContain("https://apiary.example.com/api/v1/telegram/webhook");
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0].telegram).toEqual({ enabled: true, chat_id: "", api_base: "", updates: "webhook", bot_username: "apiary_bot" });
  });

  it("shows Telegram refusing the webhook, naming the field", async () => {
    mount({ status: 502, code: "telegram_refused", message: "Telegram refused the webhook: bad webhook: HTTPS url must be provided", field: "telegram.updates" });
    const s = within(await screen.findByRole("group", { name: "Telegram" }));
    fireEvent.change(s.getByLabelText("Telegram updates"), { target: { value: "webhook" } });
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toBe("telegram.updates: Telegram refused the webhook: bad webhook: HTTPS url must be provided"));
    expect(screen.queryByText("Saved.")).toBeNull();
  });
});

describe("SettingsPage: Slack", () => {
  it("shows the request URLs for the Slack app", async () => {
    mount();
    const s = within(await screen.findByRole("group", { name: "Slack" }));
    const help = s.getByTestId("slack-urls-help").textContent!;
    expect(help).toContain("Interactivity: https://apiary.example.com/api/v1/slack/interactions");
    expect(help).toContain("Slash command /apiary: https://apiary.example.com/api/v1/slack/commands");
  });

  it("sends the channel settings, and a secret only when one is typed or cleared", async () => {
    const sent = mount();
    const s = within(await screen.findByRole("group", { name: "Slack" }));
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0].slack).toEqual({ enabled: false, channel: "", api_base: "https://slack.com/api" });

    fireEvent.click(s.getByLabelText("Slack on"));
    fireEvent.change(s.getByLabelText("Slack channel ID"), { target: { value: " C0123456789 " } });
    fireEvent.change(s.getByLabelText("Slack API base"), { target: { value: " " } });
    const token = within(s.getByRole("group", { name: "Slack bot token" }));
    fireEvent.click(token.getByRole("button", { name: "Set" }));
    fireEvent.change(token.getByLabelText("New Slack bot token"), { target: { value: "xoxb-1-2" } });
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(sent).toHaveLength(2));
    expect(sent[1].slack).toEqual({ enabled: true, channel: "C0123456789", bot_token: "xoxb-1-2" });

    const signing = within(s.getByRole("group", { name: "Slack signing secret" }));
    fireEvent.click(signing.getByRole("button", { name: "Clear" }));
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(sent).toHaveLength(3));
    expect(sent[2].slack).toMatchObject({ signing_secret: null });
    expect(sent[2].slack).not.toHaveProperty("bot_token");
  });
});
