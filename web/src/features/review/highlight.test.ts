import { describe, expect, it } from "vitest";
import { highlightLines, htmlToLines, languageOf, type HlNode } from "./highlight";

/** The text of a line, and the scopes each piece of text sits in. */
function flat(nodes: HlNode[], scopes: string[] = []): [string, string][] {
  return nodes.flatMap((n) => (typeof n === "string" ? [[n, scopes.join(" ")] as [string, string]] : flat(n.children, [...scopes, n.cls])));
}
const text = (nodes: HlNode[]) => flat(nodes).map(([t]) => t).join("");

describe("languageOf", () => {
  it("knows the common types by extension and leaves the rest plain", () => {
    expect(["a/lib.rs", "App.tsx", "x.mjs", "c.yml", "Cargo.toml", "q.SQL", "index.html", "run.sh", "README.md"].map(languageOf))
      .toEqual(["rust", "typescript", "javascript", "yaml", "ini", "sql", "xml", "bash", "markdown"]);
    expect(["Dockerfile", "notes.txt", "a.unknown", ".gitignore"].map(languageOf)).toEqual([null, null, null, null]);
  });
});

describe("highlightLines", () => {
  it("marks a Rust keyword and string", () => {
    const [line] = highlightLines(['fn main() { let s = "hi"; }'], "rust")!;
    expect(text(line)).toBe('fn main() { let s = "hi"; }');
    expect(flat(line)).toContainEqual(["fn", "hljs-keyword"]);
    expect(flat(line)).toContainEqual(['"hi"', "hljs-string"]);
  });

  it("keeps markup in the code as text", () => {
    const [line] = highlightLines(['const s = "<script>alert(1)</script>" && a < b;'], "typescript")!;
    expect(text(line)).toBe('const s = "<script>alert(1)</script>" && a < b;');
    expect(flat(line)).toContainEqual(['"<script>alert(1)</script>"', "hljs-string"]);
  });

  it("colours a comment across lines, one tree per line", () => {
    const lines = highlightLines(["/* one", "two */ let x = 1;"], "typescript")!;
    expect(lines).toHaveLength(2);
    expect(flat(lines[1])[0]).toEqual(["two */", "hljs-comment"]);
    expect(flat(lines[1])).toContainEqual(["let", "hljs-keyword"]);
  });

  it("reads only spans back from the HTML; anything else stays text", () => {
    expect(htmlToLines('<span class="hljs-string">&quot;a&amp;b&quot;</span><img src=x onerror=alert(1)>\n&lt;b&gt;')).toEqual([
      [{ cls: "hljs-string", children: ['"a&b"'] }, "<img src=x onerror=alert(1)>"],
      ["<b>"],
    ]);
  });
});

// WCAG relative luminance and contrast of two #rrggbb colours.
function luminance(hex: string): number {
  const [r, g, b] = hex.match(/[0-9a-f]{2}/gi)!.map((x) => parseInt(x, 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

describe("syntax colours", () => {
  it("meet WCAG AA (4.5:1) on every row background of the diff", async () => {
    // Vitest empties CSS imports, so the stylesheet is read from disk (Node's fs, untyped here).
    const fs = await import(/* @vite-ignore */ `node:${"fs"}`);
    const css: string = fs.readFileSync("src/styles.css", "utf8"); // vitest runs in web/
    const rules = [...css.matchAll(/([^{}]*\.hljs-[^{}]*)\{[^}]*color:\s*(#[0-9a-f]{6})/gi)];
    expect(rules.length).toBeGreaterThan(5);
    const backgrounds = ["#ffffff", "#e6f4e7", "#fbe9e7"];
    expect(css).toContain(".spec-diff .d-add, .diff .d-add { background: #e6f4e7; }"); // the backgrounds checked against
    expect(css).toContain(".spec-diff .d-del, .diff .d-del { background: #fbe9e7; }");
    for (const [, selector, colour] of rules) {
      for (const bg of backgrounds) expect(`${selector.trim()} on ${bg}: ${contrast(colour, bg).toFixed(2)}`).toMatch(/: (4\.[5-9]|[5-9]\.|\d\d\.)/);
    }
  });
});
