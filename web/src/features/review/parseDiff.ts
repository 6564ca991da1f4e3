/** A unified diff split into files and lines, with each line's number on the new side. */
export type DiffRow = { kind: "hunk" | "add" | "del" | "same"; text: string; newLine: number | null; oldLine: number | null };
export type DiffFile = { path: string; rows: DiffRow[] };

export function parseDiff(diff: string): DiffFile[] {
  const files: DiffFile[] = [];
  let file: DiffFile | null = null;
  let oldLine = 0;
  let newLine = 0;
  for (const line of diff.split("\n")) {
    if (line.startsWith("diff --git ")) {
      const m = / b\/(.*)$/.exec(line);
      file = { path: m ? m[1] : line, rows: [] };
      files.push(file);
      continue;
    }
    if (!file || line.startsWith("index ") || line.startsWith("--- ") || line.startsWith("+++ ") || line.startsWith("new file") || line.startsWith("deleted file")) continue;
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      oldLine = Number(hunk[1]);
      newLine = Number(hunk[2]);
      file.rows.push({ kind: "hunk", text: line, newLine: null, oldLine: null });
    } else if (line.startsWith("+")) {
      file.rows.push({ kind: "add", text: line.slice(1), newLine: newLine++, oldLine: null });
    } else if (line.startsWith("-")) {
      file.rows.push({ kind: "del", text: line.slice(1), newLine: null, oldLine: oldLine++ });
    } else if (line.startsWith(" ")) {
      file.rows.push({ kind: "same", text: line.slice(1), newLine: newLine++, oldLine: oldLine++ });
    }
  }
  return files;
}
