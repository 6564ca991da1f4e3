// How model usage reads: dollars, tokens, a budget, and a task's requests summed by phase and
// round (or a project's by model).
import type { Usage } from "../api/types";

/** Dollars as `$1.23` (`$0.0042` below a cent, so a cheap request is not shown as free). */
export function usd(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return "$0.00";
  if (n < 0.01) return `$${n.toFixed(4)}`;
  return `$${n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** A count of tokens with thousands separators. */
export function tokens(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** What was spent against the budget in force: `$0.42 of $10.00`; a budget of 0 is no limit. */
export function costOfBudget(cost: number, budget: number): string {
  return budget > 0 ? `${usd(cost)} of ${usd(budget)}` : `${usd(cost)} (no budget limit)`;
}

/** Where the spending stands: no limit, under it, at 80 % or more, or at the limit. */
export function budgetState(cost: number, budget: number): "none" | "ok" | "near" | "reached" {
  if (!(budget > 0)) return "none";
  if (cost >= budget) return "reached";
  return cost >= budget * 0.8 ? "near" : "ok";
}

/** One row of a breakdown: the sums of its groups and the models they used. */
export type UsageRow = {
  phase: string;
  round: number;
  models: string[];
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
};

function sum(rows: Map<string, UsageRow>, key: string, g: Usage, phase: string, round: number) {
  const r = rows.get(key) ?? { phase, round, models: [], requests: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 };
  if (g.model && !r.models.includes(g.model)) r.models.push(g.model);
  r.requests += g.requests;
  r.input_tokens += g.input_tokens;
  r.output_tokens += g.output_tokens;
  r.cost_usd += g.cost_usd;
  rows.set(key, r);
}

/** A task's groups (phase, round, model) summed by phase and round, in round order. */
export function byPhaseRound(groups: Usage[]): UsageRow[] {
  const rows = new Map<string, UsageRow>();
  for (const g of groups) sum(rows, `${g.round}\u0000${g.phase}`, g, g.phase, g.round);
  return [...rows.values()].sort((a, b) => a.round - b.round);
}

/** A project's groups summed by model. */
export function byModel(groups: Usage[]): UsageRow[] {
  const rows = new Map<string, UsageRow>();
  for (const g of groups) sum(rows, g.model, g, "", 0);
  return [...rows.values()].sort((a, b) => b.cost_usd - a.cost_usd);
}
