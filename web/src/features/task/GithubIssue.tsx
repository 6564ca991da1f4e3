// A task made from a GitHub issue knows the issue's number; its description ends with a line
// naming the issue's URL (`(GitHub issue #12: https://github.com/acme/site/issues/12)`).

/** The issue's web address, when the description's last line names it (http(s) only). */
export function issueUrl(description: string, issue: number): string | null {
  const last = description.trimEnd().split("\n").pop() ?? "";
  for (const m of last.matchAll(/https?:\/\/[^\s()<>"']+\/issues\/(\d+)(?![\w/])/g)) {
    if (Number(m[1]) === issue) return m[0];
  }
  return null;
}

/** Where a task came from, when a GitHub issue's label made it. */
export function GithubIssue({ issue, description }: { issue?: number | null; description: string }) {
  if (issue === null || issue === undefined) return null;
  const url = issueUrl(description, issue);
  return (
    <p className="muted" data-testid="github-issue">
      From GitHub issue {url ? <a href={url} target="_blank" rel="noreferrer">#{issue}</a> : `#${issue}`}
    </p>
  );
}
