import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { App } from "../../App";

class QuietSource {
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  addEventListener() {}
  close() {}
}

function mount(role: string) {
  vi.stubGlobal("EventSource", QuietSource);
  vi.stubGlobal("fetch", vi.fn(async (path: string) => {
    const body = path === "/api/v1/me" ? { user: { id: "u1", email: "a@example.com", name: "Ann", role }, csrf_token: "t" } : [];
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }));
  render(<QueryClientProvider client={new QueryClient()}><App /></QueryClientProvider>);
}

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("Fleet link", () => {
  it("is in the main navigation for admins, next to Settings", async () => {
    mount("admin");
    const nav = within(await screen.findByRole("navigation", { name: "Main" }));
    expect(nav.getAllByRole("link").map((l) => l.textContent)).toEqual(["Projects", "Settings", "Fleet"]);
    expect(nav.getByRole("link", { name: "Fleet" }).getAttribute("href")).toBe("/fleet");
  });

  it("is not shown to members", async () => {
    mount("member");
    const nav = within(await screen.findByRole("navigation", { name: "Main" }));
    expect(nav.queryByRole("link", { name: "Fleet" })).toBeNull();
    expect(nav.queryByRole("link", { name: "Settings" })).toBeNull();
  });
});
