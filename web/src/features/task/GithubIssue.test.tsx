import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { GithubIssue, issueUrl } from "./GithubIssue";

const DESCRIPTION = "The footer is empty.\n\n(GitHub issue #12: https://github.com/acme/site/issues/12)";

afterEach(cleanup);

describe("issueUrl", () => {
  it("finds the issue's URL on the description's last line", () => {
    expect(issueUrl(DESCRIPTION, 12)).toBe("https://github.com/acme/site/issues/12");
    expect(issueUrl(`${DESCRIPTION}\n\n`, 12)).toBe("https://github.com/acme/site/issues/12");
  });
  it("ignores another issue, an earlier line, other schemes and a longer number", () => {
    expect(issueUrl(DESCRIPTION, 1)).toBeNull();
    expect(issueUrl("see https://github.com/acme/site/issues/12\nmore text", 12)).toBeNull();
    expect(issueUrl("javascript://x/issues/12", 12)).toBeNull();
    expect(issueUrl("https://github.com/acme/site/issues/123", 12)).toBeNull();
    expect(issueUrl("", 12)).toBeNull();
  });
});

describe("GithubIssue", () => {
  it("links the issue when the description names its URL", () => {
    render(<GithubIssue issue={12} description={DESCRIPTION} />);
    expect(screen.getByTestId("github-issue").textContent).toBe("From GitHub issue #12");
    expect(screen.getByRole("link", { name: "#12" }).getAttribute("href")).toBe("https://github.com/acme/site/issues/12");
  });
  it("says the number as plain text otherwise, and nothing for a task not from an issue", () => {
    const { container, rerender } = render(<GithubIssue issue={7} description="Typed by hand." />);
    expect(screen.getByTestId("github-issue").textContent).toBe("From GitHub issue #7");
    expect(screen.queryByRole("link")).toBeNull();
    rerender(<GithubIssue issue={null} description="" />);
    expect(container.innerHTML).toBe("");
  });
});
