import { describe, expect, it } from "vitest";
import { parseDiff } from "./parseDiff";

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
