/** A unified diff (`git diff`) split into files and lines, with each line's number on both sides. */
export type DiffRow = { kind: "hunk" | "add" | "del" | "same"; text: string; newLine: number | null; oldLine: number | null };
export type FileStatus = "added" | "deleted" | "renamed" | "copied" | "modified";
export type DiffFile = {
  /** The path on the new side (the old one for a deleted file). */
  path: string;
  /** The path on the old side when the file was renamed or copied. */
  oldPath: string | null;
  status: FileStatus;
  binary: boolean;
  /** `old mode` → `new mode`, when only or also the mode changed. */
  modeChange: { from: string; to: string } | null;
  added: number;
  removed: number;
  rows: DiffRow[];
};

/** Parses `git diff` output. Hunk lengths are counted, so a removed line `-- x` (shown as
 *  `--- x`) stays a line and is never taken for a file header. */
export function parseDiff(diff: string): DiffFile[] {
  const files: DiffFile[] = [];
  let file: DiffFile | null = null;
  let oldLine = 0;
  let newLine = 0;
  let oldLeft = 0;
  let newLeft = 0;
  for (const line of diff.split("\n")) {
    if (file && (oldLeft > 0 || newLeft > 0)) {
      const mark = line[0];
      if (mark === "+" && newLeft > 0) {
        file.rows.push({ kind: "add", text: line.slice(1), newLine: newLine++, oldLine: null });
        file.added++;
        newLeft--;
        continue;
      }
      if (mark === "-" && oldLeft > 0) {
        file.rows.push({ kind: "del", text: line.slice(1), newLine: null, oldLine: oldLine++ });
        file.removed++;
        oldLeft--;
        continue;
      }
      // A context line; some tools strip the space of an empty one.
      if ((mark === " " || line === "") && oldLeft > 0 && newLeft > 0) {
        file.rows.push({ kind: "same", text: line.slice(1), newLine: newLine++, oldLine: oldLine++ });
        oldLeft--;
        newLeft--;
        continue;
      }
      if (mark === "\\") continue; // "\ No newline at end of file"
      // Anything else ends the hunk early (a diff cut short); read it as a header.
      oldLeft = newLeft = 0;
    }
    if (line.startsWith("\\")) continue;
    if (line.startsWith("diff --git ")) {
      const [a, b] = gitPaths(line.slice("diff --git ".length));
      file = { path: b, oldPath: a === b ? null : a, status: "modified", binary: false, modeChange: null, added: 0, removed: 0, rows: [] };
      files.push(file);
      continue;
    }
    if (!file) continue;
    const hunk = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (hunk) {
      oldLine = Number(hunk[1]);
      newLine = Number(hunk[3]);
      oldLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      newLeft = hunk[4] === undefined ? 1 : Number(hunk[4]);
      file.rows.push({ kind: "hunk", text: line, newLine: null, oldLine: null });
    } else if (line.startsWith("new file mode")) {
      file.status = "added";
    } else if (line.startsWith("deleted file mode")) {
      file.status = "deleted";
    } else if (line.startsWith("old mode ")) {
      file.modeChange = { from: line.slice(9), to: file.modeChange?.to ?? "" };
    } else if (line.startsWith("new mode ")) {
      file.modeChange = { from: file.modeChange?.from ?? "", to: line.slice(9) };
    } else if (line.startsWith("rename from ") || line.startsWith("copy from ")) {
      file.status = line.startsWith("rename") ? "renamed" : "copied";
      file.oldPath = unquote(line.slice(line.indexOf(" from ") + 6));
    } else if (line.startsWith("rename to ") || line.startsWith("copy to ")) {
      file.path = unquote(line.slice(line.indexOf(" to ") + 4));
    } else if (line.startsWith("Binary files ") || line === "GIT binary patch") {
      file.binary = true;
    } else if (line.startsWith("+++ ")) {
      const p = unquote(line.slice(4).replace(/\t$/, ""));
      if (p !== "/dev/null") file.path = stripPrefix(p);
    }
  }
  for (const f of files) {
    if (f.status === "modified" && f.oldPath !== null) f.status = "renamed";
    if (f.status === "deleted" || f.status === "added") f.oldPath = null;
  }
  return files;
}

/** The sides of a split (side-by-side) view: context on both sides, a run of removed lines
 *  paired with the run of added lines that follows it. */
export type SplitRow = { hunk: DiffRow } | { left: DiffRow | null; right: DiffRow | null };

export function splitRows(rows: DiffRow[]): SplitRow[] {
  const out: SplitRow[] = [];
  let i = 0;
  while (i < rows.length) {
    const r = rows[i];
    if (r.kind === "hunk") {
      out.push({ hunk: r });
      i++;
    } else if (r.kind === "same") {
      out.push({ left: r, right: r });
      i++;
    } else {
      const dels: DiffRow[] = [];
      const adds: DiffRow[] = [];
      while (i < rows.length && rows[i].kind === "del") dels.push(rows[i++]);
      while (i < rows.length && rows[i].kind === "add") adds.push(rows[i++]);
      for (let k = 0; k < Math.max(dels.length, adds.length); k++) out.push({ left: dels[k] ?? null, right: adds[k] ?? null });
    }
  }
  return out;
}

/** The note the server appends when it cut a very large diff short, if any. */
export function diffCutNote(diff: string): string | null {
  const m = /\n(… diff cut at [^\n]*)\n?$/.exec(diff);
  return m ? m[1] : null;
}

/** `a/x b/y` from a `diff --git` line. Without renames both sides are equal, which settles
 *  paths containing " b/"; quoted paths are unquoted. */
function gitPaths(rest: string): [string, string] {
  if (rest.startsWith('"')) {
    const a = readQuoted(rest);
    const b = rest.slice(a.length + 1).trim();
    return [stripPrefix(unquote(a)), stripPrefix(unquote(b))];
  }
  const half = (rest.length - 1) / 2;
  if (Number.isInteger(half) && rest[half] === " " && rest.slice(2, half) === rest.slice(half + 3)) {
    const p = rest.slice(2, half);
    return [p, p];
  }
  const m = /^(.*?) ("?b\/.*)$/.exec(rest);
  if (!m) return [rest, rest];
  return [stripPrefix(unquote(m[1])), stripPrefix(unquote(m[2]))];
}

function stripPrefix(p: string): string {
  return /^[ab]\//.test(p) ? p.slice(2) : p;
}

/** The leading C-style quoted string of `s`, quotes included. */
function readQuoted(s: string): string {
  let i = 1;
  while (i < s.length && s[i] !== '"') i += s[i] === "\\" ? 2 : 1;
  return s.slice(0, i + 1);
}

const ESCAPES: Record<string, number> = { a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '"': 34, "\\": 92 };

/** Git quotes paths with unusual bytes as C strings with octal escapes of UTF-8 bytes. */
export function unquote(s: string): string {
  if (!(s.length >= 2 && s.startsWith('"') && s.endsWith('"'))) return s;
  const bytes: number[] = [];
  const body = s.slice(1, -1);
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== "\\") {
      bytes.push(...new TextEncoder().encode(c));
    } else if (/[0-7]{3}/.test(body.slice(i + 1, i + 4))) {
      bytes.push(parseInt(body.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(ESCAPES[body[i + 1]] ?? body.charCodeAt(i + 1));
      i += 1;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
