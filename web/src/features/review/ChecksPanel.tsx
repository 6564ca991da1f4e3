import type { Check, CheckReport } from "../../api/types";
import { Link } from "../../lib/router";

export type ChecksOutcome = "passed" | "failed" | "none";

/** All checks passed, at least one failed, or none were reported. */
export function checksOutcome(report: CheckReport): ChecksOutcome {
  if (report.checks.length === 0) return "none";
  return report.checks.every((c) => c.passed) ? "passed" : "failed";
}

/** Where the checks came from, for people. */
export function checksSource(source: string): string {
  if (source === "command") return "check command";
  if (source === "github") return "GitHub checks";
  return source;
}

const OUTCOME_LABEL: Record<ChecksOutcome, string> = {
  passed: "Checks passed",
  failed: "Checks failing",
  none: "No checks reported",
};

function OutcomeBadge({ report }: { report: CheckReport }) {
  const outcome = checksOutcome(report);
  const failing = report.checks.filter((c) => !c.passed).length;
  return (
    <>
      <span className={`badge badge-checks-${outcome}`} data-testid="checks-outcome" data-outcome={outcome}>{OUTCOME_LABEL[outcome]}</span>
      {outcome === "failed" && <span> ({failing} of {report.checks.length})</span>}{" "}
      <span className="muted">source: {checksSource(report.source)}</span>
    </>
  );
}

/** One check: name, outcome, summary and the end of its output, open when it failed. */
function CheckItem({ check }: { check: Check }) {
  const tail = check.log_tail?.trimEnd() ?? "";
  const state = check.passed ? "passed" : "failed";
  const head = (
    <>
      <span className={`pill ${check.passed ? "ok" : "bad"}`}><span className="check-mark" aria-hidden="true" />{state}</span>{" "}
      <strong className="mono">{check.name}</strong>
      {check.summary && <span className="muted"> — {check.summary}</span>}
    </>
  );
  return (
    <li className={`check check-${state}`} data-testid="check" data-passed={check.passed}>
      {tail ? (
        <details open={!check.passed}>
          <summary>{head}</summary>
          {/* A scrollable region must be reachable by keyboard. */}
          <pre className="check-log" tabIndex={0} role="region" aria-label={`Log tail of ${check.name}`}>{tail}</pre>
        </details>
      ) : (
        <div>{head}</div>
      )}
    </li>
  );
}

/** The last check result of the PR head (the project's check command or GitHub's check runs)
 *  and the automatic fix rounds spent on failing checks. Nothing when there is neither. */
export function ChecksPanel({ checks, fixRounds }: { checks?: CheckReport | null; fixRounds?: number | null }) {
  const rounds = fixRounds ?? 0;
  if (!checks && rounds <= 0) return null;
  return (
    <section className="card checks" aria-labelledby="checks-h" data-testid="checks">
      <h2 id="checks-h">Checks</h2>
      {checks && <p><OutcomeBadge report={checks} /></p>}
      {rounds > 0 && <p data-testid="fix-rounds">Automatic fix rounds used: {rounds}</p>}
      {checks && checks.checks.length > 0 && (
        <ul className="check-list" aria-label="Check results">
          {checks.checks.map((c, i) => <CheckItem key={`${i}-${c.name}`} check={c} />)}
        </ul>
      )}
    </section>
  );
}

/** One line on the task sheet: the checks' outcome, fix rounds, and where the details are. */
export function ChecksSummary({ taskId, checks, fixRounds }: { taskId: string; checks?: CheckReport | null; fixRounds?: number | null }) {
  const rounds = fixRounds ?? 0;
  if (!checks && rounds <= 0) return null;
  return (
    <p data-testid="checks-summary">
      {checks && <OutcomeBadge report={checks} />}
      {rounds > 0 && <span>{checks ? " · " : ""}automatic fix rounds used: {rounds}</span>}{" "}
      <Link to={`/tasks/${taskId}/review`}>Check details</Link>
    </p>
  );
}
