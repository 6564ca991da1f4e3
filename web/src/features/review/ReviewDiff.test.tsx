import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Commenting } from "./DiffTable";
import { parseDiff } from "./parseDiff";
import { ReviewDiff } from "./ReviewDiff";

const RS = [
  "diff --git a/src/lib.rs b/src/lib.rs", "--- a/src/lib.rs", "+++ b/src/lib.rs", "@@ -1,3 +1,3 @@",
  " // lib", "-fn old() {}", "+fn new() {}", "+pub const X: u8 = 1;", "-const GONE: u8 = 0;",
].join("\n");
const TS = [
  "diff --git a/web/page.ts b/web/page.ts", "new file mode 100644", "--- /dev/null", "+++ b/web/page.ts", "@@ -0,0 +1 @@",
  '+const s = "<script>alert(1)</script>";',
].join("\n");
const TXT = "diff --git a/notes.txt b/notes.txt\n--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1 @@\n-<b>old</b>\n+new\n";
const BIG = ["diff --git a/big.json b/big.json", "new file mode 100644", "--- /dev/null", "+++ b/big.json", "@@ -0,0 +1,401 @@", ...Array.from({ length: 401 }, (_, i) => `+${i}`)].join("\n");
const RENAME = "diff --git a/a.md b/docs/a.md\nsimilarity index 100%\nrename from a.md\nrename to docs/a.md\n";
const BINARY = "diff --git a/logo.png b/logo.png\nindex 1..2 100644\nBinary files a/logo.png and b/logo.png differ\n";

const commenting: Commenting = { enabled: false, drafts: [], open: null, start: vi.fn(), add: vi.fn(), discard: vi.fn() };

function show(diff: string, view: "unified" | "split" = "unified", onView = vi.fn()) {
  return render(<ReviewDiff files={parseDiff(diff)} view={view} onView={onView} commenting={commenting} />);
}

afterEach(cleanup);

describe("ReviewDiff", () => {
  it("highlights Rust and TypeScript lines; markup in the diff stays text", async () => {
    const { container } = show(`${RS}\n${TS}\n${TXT}`);
    const rust = screen.getByRole("table", { name: "Changes in src/lib.rs" });
    // The highlighter is its own chunk: the lines are plain until it has loaded.
    await waitFor(() => expect(rust.querySelector(".hljs-keyword")).not.toBeNull(), { timeout: 5000 });
    expect([...rust.querySelectorAll(".hljs-keyword")].map((e) => e.textContent)).toEqual(expect.arrayContaining(["fn", "pub", "const"]));
    expect(rust.querySelector(".hljs-comment")?.textContent).toBe("// lib");
    const ts = screen.getByRole("table", { name: "Changes in web/page.ts" });
    expect(ts.querySelector(".hljs-keyword")?.textContent).toBe("const");
    expect(ts.querySelector(".hljs-string")?.textContent).toBe('"<script>alert(1)</script>"');
    expect(container.querySelector("script")).toBeNull();
    // An unknown type is plain text, its markup too.
    const txt = screen.getByRole("table", { name: "Changes in notes.txt" });
    expect(txt.querySelector("[class^=hljs]")).toBeNull();
    expect(txt.querySelector("b")).toBeNull();
    expect(txt.textContent).toContain("<b>old</b>");
  });

  it("marks added and removed lines with + and -, not by colour alone", () => {
    show(RS);
    const rows = [...screen.getByRole("table").querySelectorAll("tbody tr")].map((tr) => [tr.className, tr.querySelector(".mark")?.textContent ?? null]);
    expect(rows).toEqual([["d-hunk", null], ["d-same", ""], ["d-del", "-"], ["d-add", "+"], ["d-add", "+"], ["d-del", "-"]]);
  });

  it("shows old and new side by side in the split view", () => {
    const onView = vi.fn();
    show(RS, "split", onView);
    const table = screen.getByRole("table", { name: "Changes in src/lib.rs, side by side" });
    const pairs = [...table.querySelectorAll("tr.d-pair")].map((tr) => [
      tr.querySelector("[data-side=old]")!.textContent, tr.querySelector("[data-side=new]")!.textContent,
    ]);
    expect(pairs).toEqual([["// lib", "// lib"], ["fn old() {}", "fn new() {}"], ["", "pub const X: u8 = 1;"], ["const GONE: u8 = 0;", ""]]);
    // Line numbers: old on the left, new on the right.
    const changed = table.querySelectorAll("tr.d-pair")[1].querySelectorAll(".ln");
    expect([changed[0].textContent, changed[1].textContent]).toEqual(["2", "2"]);
    const toggle = screen.getByRole("group", { name: "Diff view" });
    expect(within(toggle).getByRole("button", { name: "Side by side" }).getAttribute("aria-pressed")).toBe("true");
    expect(within(toggle).getByRole("button", { name: "Unified" }).getAttribute("aria-pressed")).toBe("false");
    fireEvent.click(within(toggle).getByRole("button", { name: "Unified" }));
    expect(onView).toHaveBeenCalledWith("unified");
  });

  it("lists the files with their counts, linking to each", () => {
    show(`${RS}\n${TS}\n${RENAME}${BINARY}`);
    const nav = screen.getByRole("navigation", { name: "Changed files" });
    const items = within(nav).getAllByRole("listitem").map((li) => li.textContent);
    expect(items).toEqual(["src/lib.rs +2 -2 ", "web/page.ts +1 -0 added", "docs/a.md +0 -0 renamed", "logo.png +0 -0 binary"]);
    const link = within(nav).getByRole("link", { name: "web/page.ts" });
    const target = document.getElementById(link.getAttribute("href")!.slice(1))!;
    expect(target.tagName).toBe("H2");
    expect(target.textContent).toBe("web/page.ts");
    expect(screen.getByText(/4 files changed/).textContent).toBe("4 files changed, +3 -2");
    // Renames and binaries say what happened instead of showing lines.
    expect(screen.getByRole("heading", { name: "a.md renamed to docs/a.md" })).toBeTruthy();
    expect(screen.getByText("Renamed without changes.")).toBeTruthy();
    expect(screen.getByText("Binary file changed; not shown.")).toBeTruthy();
  });

  it("collapses a large file until asked, and collapses any file on request", () => {
    show(`${RS}\n${BIG}`);
    expect(screen.queryByRole("table", { name: "Changes in big.json" })).toBeNull();
    const show401 = screen.getByRole("button", { name: "Show 401 lines" });
    expect(show401.getAttribute("aria-expanded")).toBe("false");
    fireEvent.click(show401);
    const table = screen.getByRole("table", { name: "Changes in big.json" });
    expect(table.querySelectorAll("tr.d-add")).toHaveLength(401);
    expect(table.id).toBe(show401.getAttribute("aria-controls"));
    expect(show401.getAttribute("aria-expanded")).toBe("true");
    expect(show401.textContent).toBe("Hide lines");
    // The small file starts open and can be closed.
    const rsButton = within(screen.getByRole("region", { name: "src/lib.rs" })).getByRole("button", { name: "Hide lines" });
    expect(rsButton.getAttribute("aria-expanded")).toBe("true");
    fireEvent.click(rsButton);
    expect(screen.queryByRole("table", { name: "Changes in src/lib.rs" })).toBeNull();
    expect(rsButton.textContent).toBe("Show 5 lines");
  });
});
