import { Fragment, useMemo, useState } from "react";
import { renderMarkdown } from "../task/markdown";
import type { HlLine, HlNode } from "./highlight";
import { splitRows, type DiffFile, type DiffRow } from "./parseDiff";
import { useHighlighter } from "./useHighlighter";

export type Draft = { path: string; line: number; body: string };

/** Line comments of the review being written: the drafts, the line whose box is open. */
export type Commenting = {
  /** The reader may comment (write access and a PR ready for review). */
  enabled: boolean;
  drafts: Draft[];
  open: { path: string; line: number } | null;
  start: (path: string, line: number) => void;
  add: (body: string) => void;
  discard: () => void;
};

export type DiffView = "unified" | "split";

/** One file's lines as a table, unified or side by side, highlighted by file type. */
export function DiffTable({ file, view, commenting, id }: { file: DiffFile; view: DiffView; commenting: Commenting; id: string }) {
  const highlighter = useHighlighter();
  const hl = useMemo(() => highlighter?.highlightRows(file.path, file.rows) ?? null, [highlighter, file]);
  const code = (r: DiffRow, side: "old" | "new") => {
    const line = hl?.[r.kind === "add" ? "new" : r.kind === "del" ? "old" : side].get(r);
    return <pre>{line ? <Code line={line} /> : r.text || " "}</pre>;
  };
  const lineNo = (r: DiffRow | null) => {
    if (!r || r.newLine === null) return null;
    return commenting.enabled ? (
      <button type="button" className="ln-btn" aria-label={`Comment on ${file.path} line ${r.newLine}`} onClick={() => commenting.start(file.path, r.newLine!)}>
        {r.newLine}
      </button>
    ) : r.newLine;
  };
  const comments = (r: DiffRow | null, span: number, indent: number) => {
    if (!r || r.newLine === null) return null;
    const drafts = commenting.drafts.filter((d) => d.path === file.path && d.line === r.newLine);
    const open = commenting.open?.path === file.path && commenting.open.line === r.newLine;
    if (drafts.length === 0 && !open) return null;
    return (
      <tr className="d-comments">
        {indent > 0 && <td colSpan={indent} />}
        <td colSpan={span}>
          {drafts.map((d, k) => <DraftComment key={k} draft={d} />)}
          {open && <CommentBox line={r.newLine} onAdd={commenting.add} onDiscard={commenting.discard} />}
        </td>
      </tr>
    );
  };
  if (view === "split") {
    return (
      <table className="diff diff-split" id={id} aria-label={`Changes in ${file.path}, side by side`}>
        <colgroup>
          <col className="c-ln" /><col className="c-mark" /><col />
          <col className="c-ln" /><col className="c-mark" /><col />
        </colgroup>
        <Headers names={["Old line", "Change", "Old code", "New line", "Change", "New code"]} />
        <tbody>
          {splitRows(file.rows).map((s, i) => "hunk" in s ? (
            <tr key={i} className="d-hunk"><td colSpan={6}><pre>{s.hunk.text}</pre></td></tr>
          ) : (
            <Fragment key={i}>
              <tr className="d-pair">
                <td className={`ln ${side(s.left)}`}>{s.left?.oldLine ?? ""}</td>
                <td className={`mark ${side(s.left)}`}>{mark(s.left)}</td>
                <td className={`code ${side(s.left)}`} data-side="old">{s.left && code(s.left, "old")}</td>
                <td className={`ln ${side(s.right)}`}>{lineNo(s.right)}</td>
                <td className={`mark ${side(s.right)}`}>{mark(s.right)}</td>
                <td className={`code ${side(s.right)}`} data-side="new">{s.right && code(s.right, "new")}</td>
              </tr>
              {comments(s.right, 3, 3)}
            </Fragment>
          ))}
        </tbody>
      </table>
    );
  }
  return (
    <table className="diff" id={id} aria-label={`Changes in ${file.path}`}>
      <Headers names={["Old line", "New line", "Change", "Code"]} />
      <tbody>
        {file.rows.map((r, i) => r.kind === "hunk" ? (
          <tr key={i} className="d-hunk"><td colSpan={4}><pre>{r.text}</pre></td></tr>
        ) : (
          <Fragment key={i}>
            <tr className={`d-${r.kind}`}>
              <td className="ln">{r.oldLine ?? ""}</td>
              <td className="ln">{lineNo(r)}</td>
              <td className="mark">{mark(r)}</td>
              <td className="code">{code(r, "new")}</td>
            </tr>
            {comments(r, 2, 2)}
          </Fragment>
        ))}
      </tbody>
    </table>
  );
}

/** Column headers for screen readers; the columns speak for themselves on screen. */
function Headers({ names }: { names: string[] }) {
  return (
    <thead className="diff-head">
      <tr>{names.map((n, i) => <th key={i} scope="col"><span className="sr-only">{n}</span></th>)}</tr>
    </thead>
  );
}

/** The row's class on one side of the split view; an empty side is filler. */
function side(r: DiffRow | null): string {
  return r ? `d-${r.kind}` : "d-none";
}

/** "+" or "-" in its own column, so an added or removed line is not told by colour alone. */
function mark(r: DiffRow | null): string {
  return r?.kind === "add" ? "+" : r?.kind === "del" ? "-" : "";
}

/** A highlighted line (highlight.js's scopes as spans; text stays text). */
export function Code({ line }: { line: HlLine }) {
  return <>{line.map((n, i) => <Node key={i} node={n} />)}</>;
}

function Node({ node }: { node: HlNode }) {
  if (typeof node === "string") return <>{node}</>;
  return <span className={node.cls}>{node.children.map((n, i) => <Node key={i} node={n} />)}</span>;
}

/** A line comment of the review being written, its Markdown rendered and sanitised. */
function DraftComment({ draft }: { draft: Draft }) {
  return (
    <div className="draft">
      <span className="draft-label">Pending comment</span>
      <div className="markdown" dangerouslySetInnerHTML={{ __html: renderMarkdown(draft.body) }} />
    </div>
  );
}

/** The box for a new line comment; its text is its own, so typing re-renders only the box. */
function CommentBox({ line, onAdd, onDiscard }: { line: number; onAdd: (body: string) => void; onDiscard: () => void }) {
  const [text, setText] = useState("");
  return (
    <div className="comment-box">
      <label>
        Comment on line {line}
        <textarea value={text} onChange={(e) => setText(e.target.value)} rows={3} autoFocus aria-describedby={`md-hint-${line}`} />
      </label>
      <p className="hint" id={`md-hint-${line}`}>Markdown is rendered.</p>
      <button type="button" onClick={() => onAdd(text.trim())} disabled={!text.trim()}>Add comment</button>{" "}
      <button type="button" onClick={onDiscard}>Discard</button>
    </div>
  );
}
