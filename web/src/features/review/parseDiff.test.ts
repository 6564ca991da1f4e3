import { describe, expect, it } from "vitest";
import { diffCutNote, parseDiff, splitRows } from "./parseDiff";

const DIFF = `diff --git a/NOTES.md b/NOTES.md
index 1..2 100644
--- a/NOTES.md
+++ b/NOTES.md
@@ -1,2 +1,3 @@
 # Notes
 
+- hello
diff --git a/new.txt b/new.txt
new file mode 100644
--- /dev/null
+++ b/new.txt
@@ -0,0 +1 @@
+x`;

describe("parseDiff", () => {
  it("splits files and numbers the new side", () => {
    const files = parseDiff(DIFF);
    expect(files.map((f) => f.path)).toEqual(["NOTES.md", "new.txt"]);
    const added = files[0].rows.find((r) => r.kind === "add")!;
    expect(added).toEqual({ kind: "add", text: "- hello", newLine: 3, oldLine: null });
    expect(files[1].rows.filter((r) => r.kind === "add")).toHaveLength(1);
  });
});

describe("parseDiff, harder cases", () => {
  it("counts hunk lines, so removed `-- x` and added `++ y` stay lines, not headers", () => {
    const [f] = parseDiff("diff --git a/q.sql b/q.sql\n--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,2 @@\n--- a comment\n+++ y\n select 1;\n");
    expect(f.rows.map((r) => [r.kind, r.text])).toEqual([
      ["hunk", "@@ -1,2 +1,2 @@"], ["del", "-- a comment"], ["add", "++ y"], ["same", "select 1;"],
    ]);
    expect([f.added, f.removed]).toEqual([1, 1]);
  });

  it("tells added, deleted, renamed, binary and mode-only files apart", () => {
    const files = parseDiff([
      "diff --git a/old name.rs b/new name.rs", "similarity index 90%", "rename from old name.rs", "rename to new name.rs",
      "index 1..2 100644", "--- a/old name.rs", "+++ b/new name.rs", "@@ -1 +1 @@", "-a", "+b",
      "diff --git a/same.txt b/moved/same.txt", "similarity index 100%", "rename from same.txt", "rename to moved/same.txt",
      "diff --git a/logo.png b/logo.png", "new file mode 100644", "index 0000000..1234567", "Binary files /dev/null and b/logo.png differ",
      "diff --git a/gone.txt b/gone.txt", "deleted file mode 100644", "--- a/gone.txt", "+++ /dev/null", "@@ -1,2 +0,0 @@", "-x", "-y",
      "diff --git a/run.sh b/run.sh", "old mode 100644", "new mode 100755",
      "diff --git \"a/caf\\303\\251.md\" \"b/caf\\303\\251.md\"", "--- \"a/caf\\303\\251.md\"", "+++ \"b/caf\\303\\251.md\"", "@@ -0,0 +1 @@", "+hi",
      "",
    ].join("\n"));
    expect(files.map((f) => [f.path, f.oldPath, f.status, f.binary, f.added, f.removed])).toEqual([
      ["new name.rs", "old name.rs", "renamed", false, 1, 1],
      ["moved/same.txt", "same.txt", "renamed", false, 0, 0],
      ["logo.png", null, "added", true, 0, 0],
      ["gone.txt", null, "deleted", false, 0, 2],
      ["run.sh", null, "modified", false, 0, 0],
      ["café.md", null, "modified", false, 1, 0],
    ]);
    expect(files[4].modeChange).toEqual({ from: "100644", to: "100755" });
  });

  it("pairs removed and added runs side by side, context on both sides", () => {
    const [f] = parseDiff("diff --git a/a b/a\n@@ -1,4 +1,3 @@\n keep\n-old1\n-old2\n+new1\n end\n");
    const rows = splitRows(f.rows).map((s) => ("hunk" in s ? "hunk" : `${s.left?.text ?? "_"}|${s.right?.text ?? "_"}`));
    expect(rows).toEqual(["hunk", "keep|keep", "old1|new1", "old2|_", "end|end"]);
  });

  it("finds the note of a diff the server cut short", () => {
    const cut = "diff --git a/a b/a\n@@ -1,9 +1,9 @@\n+x\n… diff cut at 4 MB; see the branch itself for the rest\n";
    expect(diffCutNote(cut)).toBe("… diff cut at 4 MB; see the branch itself for the rest");
    expect(parseDiff(cut)[0].rows).toHaveLength(2);
    expect(diffCutNote(DIFF)).toBeNull();
  });
});
