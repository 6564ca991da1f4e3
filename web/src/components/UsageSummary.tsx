import type { UsageReport } from "../api/types";
import { budgetState, byModel, byPhaseRound, costOfBudget, tokens, usd } from "../lib/usage";

const STATE_NOTE = { none: "", ok: "", near: "80 % of the budget used", reached: "budget reached" } as const;

/** What a task or a project spent on models: cost against the budget, tokens, and a small
 *  breakdown (a task's by phase and round, a project's by model). */
export function UsageSummary({ report, by, label }: { report: UsageReport; by: "phase" | "model"; label: string }) {
  const t = report.total;
  const state = budgetState(t.cost_usd, report.budget_usd);
  const rows = by === "phase" ? byPhaseRound(report.groups) : byModel(report.groups);
  return (
    <div className="usage">
      <p className="usage-cost" data-testid="usage-cost">
        <strong>{costOfBudget(t.cost_usd, report.budget_usd)}</strong>
        {STATE_NOTE[state] && <span className={`pill ${state === "reached" ? "bad" : "warn"}`}>{STATE_NOTE[state]}</span>}
      </p>
      {report.budget_usd > 0 && (
        <meter min={0} max={report.budget_usd} low={report.budget_usd * 0.8} high={report.budget_usd * 0.99} optimum={0}
          value={Math.min(t.cost_usd, report.budget_usd)} aria-label={`${label}: budget used`} />
      )}
      <p className="muted" data-testid="usage-tokens">
        {t.requests === 0
          ? "No model requests yet."
          : `${tokens(t.input_tokens)} input and ${tokens(t.output_tokens)} output tokens in ${tokens(t.requests)} request${t.requests === 1 ? "" : "s"}`
            + (t.cache_read_tokens || t.cache_write_tokens ? ` (cache: ${tokens(t.cache_read_tokens)} read, ${tokens(t.cache_write_tokens)} written)` : "")}
      </p>
      {rows.length > 0 && (
        <table className="usage-table">
          <caption>{by === "phase" ? "By phase and round" : "By model"}</caption>
          <thead>
            <tr>
              {by === "phase" ? <><th scope="col">Phase</th><th scope="col">Round</th></> : null}
              <th scope="col">{by === "phase" ? "Models" : "Model"}</th>
              <th scope="col" className="num">Requests</th>
              <th scope="col" className="num">Input</th>
              <th scope="col" className="num">Output</th>
              <th scope="col" className="num">Cost</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.round}-${r.phase}-${by === "model" ? r.models[0] : ""}`}>
                {by === "phase" ? <><td>{r.phase || "none"}</td><td>{r.round}</td></> : null}
                <td className="mono">{r.models.join(", ") || "unknown"}</td>
                <td className="num">{tokens(r.requests)}</td>
                <td className="num">{tokens(r.input_tokens)}</td>
                <td className="num">{tokens(r.output_tokens)}</td>
                <td className="num">{usd(r.cost_usd)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
