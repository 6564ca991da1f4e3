import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { setCsrf } from "../../api/client";
import { AccountPage } from "./AccountPage";
import { expiryText } from "./LinkCode";

const me = { id: "u1", name: "Ann", email: "ann@example.test", role: "member" };
const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
const inTen = () => new Date(Date.now() + 10 * 60_000 - 1_000).toISOString();
const annOnTelegram = { via: "telegram", chat_user_id: "4242", chat_user_name: "@ann", created_at: "2026-12-01T10:00:00Z" };

/** A server with `links`; the code it hands out is `code`. Returns the requests made. */
function mount(links: unknown[], code: Record<string, unknown> = {}) {
  const calls: { method: string; path: string; csrf?: string }[] = [];
  vi.stubGlobal("fetch", vi.fn(async (path: string, init?: RequestInit) => {
    const method = init?.method ?? "GET";
    calls.push({ method, path, csrf: (init?.headers as Record<string, string> | undefined)?.["x-csrf-token"] });
    if (method === "DELETE") return new Response(null, { status: 204 });
    if (method === "POST") return json({ code: "K7Q2MX", expires_at: inTen(), telegram_url: null, slack_command: null, ...code });
    return json(links);
  }));
  setCsrf("t");
  render(<QueryClientProvider client={new QueryClient()}><AccountPage me={me} /></QueryClientProvider>);
  return calls;
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); vi.useRealTimers(); });

describe("AccountPage: chat accounts", () => {
  it("shows a new code with Telegram's link and Slack's command, and when it expires", async () => {
    const calls = mount([], { telegram_url: "https://t.me/apiary_bot?start=K7Q2MX", slack_command: "/apiary link K7Q2MX" });
    expect(await screen.findByText("No chat account linked.")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Link a chat account" }));
    const panel = within(await screen.findByRole("region", { name: "Your link code" }));
    expect(panel.getByTestId("link-code").textContent).toBe("K7Q2MX");
    expect(panel.getByRole("button", { name: "Copy code" })).toBeTruthy();
    expect(panel.getByText(/^Expires in 10 minutes$/)).toBeTruthy();
    expect(panel.getByRole("link", { name: "https://t.me/apiary_bot?start=K7Q2MX" }).getAttribute("href")).toBe("https://t.me/apiary_bot?start=K7Q2MX");
    expect(panel.getByTestId("link-telegram").textContent).toContain("send /start K7Q2MX to the bot");
    expect(panel.getByTestId("link-slack").textContent).toBe("Slack: type /apiary link K7Q2MX in Slack.");
    expect(panel.queryByTestId("link-none")).toBeNull();
    expect(calls.find((c) => c.method === "POST")).toEqual({ method: "POST", path: "/api/v1/me/chat-links/code", csrf: "t" });
  });

  it("leaves out the chat that is not set up, and says so when neither is", async () => {
    mount([], { slack_command: "/apiary link K7Q2MX" });
    fireEvent.click(await screen.findByRole("button", { name: "Link a chat account" }));
    const panel = within(await screen.findByRole("region", { name: "Your link code" }));
    expect(panel.getByTestId("link-slack")).toBeTruthy();
    expect(panel.queryByTestId("link-telegram")).toBeNull();
    expect(panel.queryByRole("link")).toBeNull();
    expect(panel.queryByTestId("link-none")).toBeNull();
    cleanup();

    mount([]);
    fireEvent.click(await screen.findByRole("button", { name: "Link a chat account" }));
    const none = within(await screen.findByRole("region", { name: "Your link code" }));
    expect(none.queryByTestId("link-telegram")).toBeNull();
    expect(none.queryByTestId("link-slack")).toBeNull();
    expect(none.getByTestId("link-none").textContent).toMatch(/^Chat actions are not configured: an admin sets up Telegram updates or Slack in the settings/);
  });

  it("lists the links and unlinks one with DELETE after asking", async () => {
    const slack = { via: "slack", chat_user_id: "U1", chat_user_name: "ann.b", created_at: "2026-12-02T10:00:00Z" };
    const calls = mount([annOnTelegram, slack]);
    const list = within(await screen.findByRole("list", { name: "Linked chat accounts" }));
    await list.findByText(/^Telegram: @ann, linked/);
    expect(list.getByText(/^Slack: ann\.b, linked/)).toBeTruthy();
    fireEvent.click(list.getByRole("button", { name: "Unlink Telegram" }));
    expect(calls.some((c) => c.method === "DELETE")).toBe(false);
    fireEvent.click(list.getByRole("button", { name: "Yes, unlink telegram" }));
    await waitFor(() => expect(calls.filter((c) => c.method === "DELETE")).toEqual([{ method: "DELETE", path: "/api/v1/me/chat-links/telegram", csrf: "t" }]));
    await waitFor(() => expect(calls.filter((c) => c.method === "GET")).toHaveLength(2));
  });

  it("reads the list every 5 s while a code waits, and says who it linked", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const links: unknown[] = [];
    const calls = mount(links, { telegram_url: "https://t.me/apiary_bot?start=K7Q2MX" });
    fireEvent.click(await screen.findByRole("button", { name: "Link a chat account" }));
    await screen.findByRole("region", { name: "Your link code" });
    const reads = () => calls.filter((c) => c.method === "GET").length;
    const before = reads();
    await act(() => vi.advanceTimersByTimeAsync(5_000));
    await waitFor(() => expect(reads()).toBe(before + 1));
    links.push(annOnTelegram);
    await act(() => vi.advanceTimersByTimeAsync(5_000));
    expect((await screen.findByText(/^Linked as/)).textContent).toBe("Linked as @ann on Telegram.");
    expect(screen.queryByRole("region", { name: "Your link code" })).toBeNull();
    const after = reads();
    await act(() => vi.advanceTimersByTimeAsync(15_000));
    expect(reads()).toBe(after);
  });

  it("counts the minutes down to expiry", () => {
    const now = Date.parse("2026-12-01T10:00:00Z");
    expect(expiryText("2026-12-01T10:10:00Z", now)).toBe("Expires in 10 minutes");
    expect(expiryText("2026-12-01T10:00:30Z", now)).toBe("Expires in 1 minute");
    expect(expiryText("2026-12-01T10:00:00Z", now)).toBe("Expired");
  });
});
