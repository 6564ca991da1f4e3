import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { ChecksPanel, ChecksSummary, checksOutcome, checksSource } from "./ChecksPanel";

const failing = {
  source: "command",
  checks: [
    { name: "cargo fmt --check", passed: true, summary: "exit code 0", log_tail: "all formatted\n" },
    { name: "make test", passed: false, summary: "exit code 2", log_tail: "test a ... ok\ntest b ... FAILED\n" },
  ],
};

afterEach(cleanup);

describe("checks helpers", () => {
  it("tells passed, failed and no checks apart", () => {
    expect(checksOutcome(failing)).toBe("failed");
    expect(checksOutcome({ source: "github", checks: [failing.checks[0]] })).toBe("passed");
    expect(checksOutcome({ source: "github", checks: [] })).toBe("none");
  });
  it("names the source for people", () => {
    expect(checksSource("command")).toBe("check command");
    expect(checksSource("github")).toBe("GitHub checks");
    expect(checksSource("other")).toBe("other");
  });
});

describe("ChecksPanel", () => {
  it("shows the outcome, the source, each check and the fix rounds; opens the failing log only", () => {
    render(<ChecksPanel checks={failing} fixRounds={1} />);
    const panel = screen.getByRole("region", { name: "Checks" });
    expect(within(panel).getByTestId("checks-outcome").textContent).toBe("Checks failing");
    expect(panel.textContent).toContain("(1 of 2)");
    expect(panel.textContent).toContain("source: check command");
    expect(within(panel).getByTestId("fix-rounds").textContent).toBe("Automatic fix rounds used: 1");
    const items = within(panel).getAllByTestId("check");
    expect(items.map((li) => li.querySelector("strong")!.textContent)).toEqual(["cargo fmt --check", "make test"]);
    expect(items[0].textContent).toContain("passed");
    expect(items[0].textContent).toContain("exit code 0");
    expect(items[1].textContent).toContain("failed");
    expect(items[1].textContent).toContain("exit code 2");
    expect(items[0].querySelector("details")!.open).toBe(false);
    expect(items[1].querySelector("details")!.open).toBe(true);
    const log = screen.getByRole("region", { name: "Log tail of make test" });
    expect(log.tagName).toBe("PRE");
    expect(log.getAttribute("tabindex")).toBe("0");
    expect(log.textContent).toBe("test a ... ok\ntest b ... FAILED");
  });

  it("shows GitHub checks that passed, a check without a log, and no fix-rounds line at 0", () => {
    render(<ChecksPanel checks={{ source: "github", checks: [{ name: "CI / build", passed: true, summary: "Build succeeded" }] }} fixRounds={0} />);
    expect(screen.getByTestId("checks-outcome").textContent).toBe("Checks passed");
    expect(screen.getByRole("region", { name: "Checks" }).textContent).toContain("source: GitHub checks");
    expect(screen.getByTestId("check").querySelector("details")).toBeNull();
    expect(screen.getByTestId("check").textContent).toContain("CI / build");
    expect(screen.queryByTestId("fix-rounds")).toBeNull();
  });

  it("shows the fix rounds without a report, and nothing without either", () => {
    const { container, rerender } = render(<ChecksPanel checks={null} fixRounds={0} />);
    expect(container.innerHTML).toBe("");
    rerender(<ChecksPanel checks={null} fixRounds={2} />);
    expect(screen.getByTestId("fix-rounds").textContent).toBe("Automatic fix rounds used: 2");
    expect(screen.queryByTestId("checks-outcome")).toBeNull();
  });
});

describe("ChecksSummary", () => {
  it("sums the checks up in one line with a link to the details", () => {
    render(<ChecksSummary taskId="t1" checks={failing} fixRounds={2} />);
    const line = screen.getByTestId("checks-summary");
    expect(line.textContent).toContain("Checks failing");
    expect(line.textContent).toContain("automatic fix rounds used: 2");
    expect(screen.getByRole("link", { name: "Check details" }).getAttribute("href")).toBe("/tasks/t1/review");
  });
  it("is absent without checks or fix rounds", () => {
    const { container } = render(<ChecksSummary taskId="t1" checks={undefined} fixRounds={0} />);
    expect(container.innerHTML).toBe("");
  });
});
