// What each agent status means to the person looking at it, and which actions it allows.

export type AgentStatus =
  | "none" | "queued" | "provisioning" | "speccing" | "spec_ready" | "spec_approved"
  | "implementing" | "pr_ready" | "changes_requested" | "merged" | "cancelled" | "failed";

export const STATUS_LABEL: Record<AgentStatus, string> = {
  none: "Not handed over",
  queued: "Queued",
  provisioning: "Starting box",
  speccing: "Writing spec",
  spec_ready: "Spec ready",
  spec_approved: "Spec approved",
  implementing: "Implementing",
  pr_ready: "PR ready",
  changes_requested: "Changes requested",
  merged: "Merged",
  cancelled: "Cancelled",
  failed: "Failed",
};

/** One line: what happens next and who must act. */
export function caption(status: AgentStatus, queuePosition?: number | null): string {
  switch (status) {
    case "none": return "Hand it to the agent to get a spec written.";
    case "queued": return `Waiting for a free box${queuePosition ? ` (#${queuePosition} in line)` : ""}; nothing to do.`;
    case "provisioning": return "A box is starting; the agent will write a spec next.";
    case "speccing": return "The agent is writing the spec; wait for it.";
    case "spec_ready": return "Your turn: approve the spec or ask for a revision.";
    case "spec_approved": return "Approved; the box is being told to implement it.";
    case "implementing": return "The agent is implementing; a pull request comes next.";
    case "pr_ready": return "Your turn: review the pull request, request changes or mark it merged.";
    case "changes_requested": return "Your review comments are on their way to the box.";
    case "merged": return "Done: merged and the box is gone.";
    case "cancelled": return "Cancelled; hand it over again to restart.";
    case "failed": return "Stopped with an error: retry on a fresh box, or cancel.";
  }
}

export type Action = "handoff" | "approve-spec" | "revise-spec" | "review" | "mark-merged" | "retry" | "cancel" | "teardown";

const ACTIVE: AgentStatus[] = ["queued", "provisioning", "speccing", "spec_ready", "spec_approved", "implementing", "pr_ready", "changes_requested", "failed"];

const TEARDOWN_OK: AgentStatus[] = ["spec_ready", "pr_ready", "failed"];

/** The actions the status allows (the server checks again). */
export function actionsFor(status: AgentStatus, boxTornDown: boolean): Action[] {
  const out: Action[] = [];
  if (status === "none" || status === "cancelled" || status === "merged") out.push("handoff");
  if (status === "failed") out.push("retry");
  if (status === "spec_ready") out.push("approve-spec", "revise-spec");
  if (status === "pr_ready") out.push("review", "mark-merged");
  if (ACTIVE.includes(status)) out.push("cancel");
  // Only a box that waits on a human (it is parked) or has failed may go now; the server
  // refuses a box at work.
  if (!boxTornDown && TEARDOWN_OK.includes(status)) out.push("teardown");
  return out;
}

/** Actions that destroy something ask for a confirmation first. */
export const DESTRUCTIVE: Action[] = ["cancel", "teardown", "mark-merged"];
