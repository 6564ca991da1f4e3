// Syntax highlighting of diff lines with highlight.js's core and only the common languages.
// highlight.js returns escaped HTML made of `<span class="…">`; it is read back into a small
// tree of class names and text here and rendered by React as elements and text, so nothing
// from the diff ever reaches the page as HTML.
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import ini from "highlight.js/lib/languages/ini";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import type { DiffRow } from "./parseDiff";

const LANGUAGES = { bash, css, go, ini, java, javascript, json, markdown, python, rust, sql, typescript, xml, yaml };
for (const [name, grammar] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, grammar);

const BY_EXTENSION: Record<string, keyof typeof LANGUAGES> = {
  ts: "typescript", tsx: "typescript", mts: "typescript", cts: "typescript",
  js: "javascript", jsx: "javascript", mjs: "javascript", cjs: "javascript",
  rs: "rust", py: "python", pyi: "python", go: "go",
  json: "json", yaml: "yaml", yml: "yaml", toml: "ini", ini: "ini",
  css: "css", html: "xml", htm: "xml", xml: "xml", svg: "xml",
  md: "markdown", markdown: "markdown",
  sh: "bash", bash: "bash", zsh: "bash", sql: "sql", java: "java",
};
const BY_NAME: Record<string, keyof typeof LANGUAGES> = { ".bashrc": "bash", ".profile": "bash", ".zshrc": "bash", "Cargo.lock": "ini" };

/** The language of a file by its name, or null: unknown types are shown plain. */
export function languageOf(path: string): string | null {
  const name = path.slice(path.lastIndexOf("/") + 1);
  if (BY_NAME[name]) return BY_NAME[name];
  const dot = name.lastIndexOf(".");
  return dot > 0 ? (BY_EXTENSION[name.slice(dot + 1).toLowerCase()] ?? null) : null;
}

/** Highlighted text: strings are text, the rest highlight.js scopes (`hljs-keyword`). */
export type HlNode = string | { cls: string; children: HlNode[] };
export type HlLine = HlNode[];

/** Past this a side of a file is shown plain: highlighting it would stall the page. */
const MAX_CHARS = 300_000;

/** Highlights each side of a file's rows as one text (so a comment or string spanning lines
 *  is coloured right), then splits it back into lines: old (context and removed lines) and
 *  new (context and added lines) by row. Null when the language is unknown. */
export function highlightRows(path: string, rows: DiffRow[]): { old: Map<DiffRow, HlLine>; new: Map<DiffRow, HlLine> } | null {
  const language = languageOf(path);
  if (!language) return null;
  const side = (kind: "add" | "del") => {
    const mine = rows.filter((r) => r.kind === "same" || r.kind === kind);
    const hl = highlightLines(mine.map((r) => r.text), language);
    return new Map(hl ? mine.map((r, k) => [r, hl[k]]) : []);
  };
  return { old: side("del"), new: side("add") };
}

/** Lines highlighted as one text, or null if they cannot be. */
export function highlightLines(lines: string[], language: string): HlLine[] | null {
  const code = lines.join("\n");
  if (code.length > MAX_CHARS || !hljs.getLanguage(language)) return null;
  let html: string;
  try {
    html = hljs.highlight(code, { language, ignoreIllegals: true }).value;
  } catch {
    return null;
  }
  const out = htmlToLines(html);
  return out.length === lines.length ? out : null;
}

const ENTITIES: Record<string, string> = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'" };

/** highlight.js's output (spans with classes around escaped text) read back into lines of
 *  nodes; a scope open across a line break is reopened on the next line. Anything that is
 *  not such a span is kept as text. */
export function htmlToLines(html: string): HlLine[] {
  type Open = { cls: string; children: HlNode[] };
  const lines: HlLine[] = [];
  let root: HlNode[] = [];
  let open: Open[] = [];
  const here = () => (open.length ? open[open.length - 1].children : root);
  const breakLine = () => {
    lines.push(root);
    root = [];
    let parent = root;
    open = open.map((o) => {
      const n: Open = { cls: o.cls, children: [] };
      parent.push(n);
      parent = n.children;
      return n;
    });
  };
  const text = (t: string) => {
    t.split("\n").forEach((part, i) => {
      if (i > 0) breakLine();
      const at = here();
      if (!part) return;
      if (typeof at[at.length - 1] === "string") at[at.length - 1] += part;
      else at.push(part);
    });
  };
  const token = /<span class="([\w -]*)">|<\/span>|&(?:amp|lt|gt|quot|#x27|#39);|[^<&]+|[<&]/g;
  for (const m of html.matchAll(token)) {
    const t = m[0];
    if (m[1] !== undefined) {
      const n: Open = { cls: m[1], children: [] };
      here().push(n);
      open.push(n);
    } else if (t === "</span>") {
      open.pop();
    } else {
      text(ENTITIES[t] ?? t);
    }
  }
  lines.push(root);
  return lines;
}
