import { memo, useState } from "react";
import { DiffTable, type Commenting, type DiffView } from "./DiffTable";
import type { DiffFile } from "./parseDiff";

/** Files with more changed lines than this start collapsed. */
export const LARGE_FILE = 400;

/** The change file by file: the unified / side-by-side toggle, the list of files with their
 *  counts, and each file's lines (a large one collapsed until asked for). */
export const ReviewDiff = memo(function ReviewDiff({ files, view, onView, commenting }: {
  files: DiffFile[];
  view: DiffView;
  onView: (view: DiffView) => void;
  commenting: Commenting;
}) {
  if (files.length === 0) return null;
  return (
    <div className="review-diff">
      <div className="diff-toolbar">
        <div role="group" aria-label="Diff view" className="toggle">
          <button type="button" aria-pressed={view === "unified"} onClick={() => onView("unified")}>Unified</button>
          <button type="button" aria-pressed={view === "split"} onClick={() => onView("split")}>Side by side</button>
        </div>
        <span className="muted">
          {files.length} file{files.length === 1 ? "" : "s"} changed, <Counts file={sum(files)} />
        </span>
      </div>
      <nav className="card file-list" aria-label="Changed files">
        <ul>
          {files.map((f, i) => (
            <li key={i}>
              <a href={`#${fileId(i)}`} className="mono">{f.path}</a> <Counts file={f} /> <FileTags file={f} />
            </li>
          ))}
        </ul>
      </nav>
      {files.map((f, i) => <FileCard key={`${i}:${f.path}`} file={f} index={i} view={view} commenting={commenting} />)}
    </div>
  );
});

function fileId(i: number): string {
  return `diff-file-${i}`;
}

function sum(files: DiffFile[]): { added: number; removed: number } {
  return { added: files.reduce((n, f) => n + f.added, 0), removed: files.reduce((n, f) => n + f.removed, 0) };
}

/** "+12 -3": lines added and removed. */
function Counts({ file }: { file: { added: number; removed: number } }) {
  return (
    <span className="counts" data-testid="counts">
      <span className="count-add">+{file.added}</span> <span className="count-del">-{file.removed}</span>
    </span>
  );
}

/** What else happened to the file: added, deleted, renamed, binary, mode changed. */
function FileTags({ file }: { file: DiffFile }) {
  const tags = [
    file.status !== "modified" ? file.status : null,
    file.binary ? "binary" : null,
    file.modeChange ? "mode changed" : null,
  ].filter((t): t is string => t !== null);
  return <>{tags.map((t) => <span key={t} className="pill">{t}</span>)}</>;
}

function FileCard({ file, index, view, commenting }: { file: DiffFile; index: number; view: DiffView; commenting: Commenting }) {
  const lines = file.rows.filter((r) => r.kind !== "hunk").length;
  const [expanded, setExpanded] = useState(file.added + file.removed <= LARGE_FILE);
  const id = fileId(index);
  return (
    <section className="card diff-file" aria-labelledby={id}>
      <div className="diff-file-head">
        {/* The heading is what the file list jumps to. */}
        <h2 className="mono" id={id} tabIndex={-1}>
          {file.oldPath && <>{file.oldPath} <span aria-hidden="true">→</span><span className="sr-only">{file.status === "copied" ? "copied to" : "renamed to"}</span> </>}
          {file.path}
        </h2>
        <Counts file={file} /> <FileTags file={file} />
        {lines > 0 && (
          <button type="button" className="collapse-btn" aria-expanded={expanded} aria-controls={`${id}-lines`} onClick={() => setExpanded(!expanded)}>
            {expanded ? "Hide lines" : `Show ${lines} lines`}
          </button>
        )}
      </div>
      <FileNotes file={file} />
      {lines > 0 && expanded && <DiffTable file={file} view={view} commenting={commenting} id={`${id}-lines`} />}
      {lines > 0 && !expanded && (
        <p className="muted" id={`${id}-lines`}>
          {file.added + file.removed > LARGE_FILE ? "A large change, collapsed." : "Collapsed."}
        </p>
      )}
    </section>
  );
}

/** Why a file has no lines to show, or what changed besides its lines. */
function FileNotes({ file }: { file: DiffFile }) {
  const notes: string[] = [];
  if (file.binary) notes.push(file.status === "added" ? "Binary file added; not shown." : file.status === "deleted" ? "Binary file deleted; not shown." : "Binary file changed; not shown.");
  if (file.oldPath && file.rows.length === 0 && !file.binary) notes.push(`${file.status === "copied" ? "Copied" : "Renamed"} without changes.`);
  if (file.modeChange) notes.push(`Mode changed from ${file.modeChange.from} to ${file.modeChange.to}.`);
  if (!file.binary && file.rows.length === 0 && !file.oldPath && !file.modeChange) notes.push(file.status === "deleted" ? "Empty file deleted." : file.status === "added" ? "Empty file added." : "No line changes.");
  if (notes.length === 0) return null;
  return <p className="muted file-notes">{notes.join(" ")}</p>;
}
