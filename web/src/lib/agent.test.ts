import { describe, expect, it } from "vitest";
import { actionsFor, caption } from "./agent";

describe("agent status helpers", () => {
  it("offers the actions of the table and nothing else", () => {
    expect(actionsFor("none", true)).toEqual(["handoff"]);
    expect(actionsFor("spec_ready", false)).toEqual(["approve-spec", "revise-spec", "cancel", "teardown"]);
    expect(actionsFor("pr_ready", true)).toEqual(["review", "mark-merged", "cancel"]);
    expect(actionsFor("failed", false)).toEqual(["retry", "cancel", "teardown"]);
    expect(actionsFor("merged", true)).toEqual(["handoff"]);
    for (const working of ["provisioning", "speccing", "spec_approved", "implementing", "changes_requested"] as const) {
      expect(actionsFor(working, false)).toEqual(["cancel"]);
    }
  });
  it("says who must act", () => {
    expect(caption("spec_ready")).toMatch(/Your turn/);
    expect(caption("queued", 3)).toMatch(/#3 in line/);
  });
});
