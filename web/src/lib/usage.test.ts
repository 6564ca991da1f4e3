import { describe, expect, it } from "vitest";
import type { Usage } from "../api/types";
import { budgetState, byModel, byPhaseRound, costOfBudget, tokens, usd } from "./usage";

const g = (phase: string, round: number, model: string, cost: number, input = 1000, output = 100): Usage => ({
  phase, round, model, requests: 1, input_tokens: input, output_tokens: output, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: cost,
});

describe("usage display", () => {
  it("formats dollars, keeping sub-cent costs visible", () => {
    expect(usd(0)).toBe("$0.00");
    expect(usd(0.42)).toBe("$0.42");
    expect(usd(10)).toBe("$10.00");
    expect(usd(1234.5)).toBe("$1,234.50");
    expect(usd(0.0042)).toBe("$0.0042");
    expect(usd(Number.NaN)).toBe("$0.00");
  });

  it("shows the cost against the budget, a budget of 0 being no limit", () => {
    expect(costOfBudget(0.42, 10)).toBe("$0.42 of $10.00");
    expect(costOfBudget(3, 0)).toBe("$3.00 (no budget limit)");
    expect(budgetState(1, 0)).toBe("none");
    expect(budgetState(1, 10)).toBe("ok");
    expect(budgetState(8, 10)).toBe("near");
    expect(budgetState(10, 10)).toBe("reached");
  });

  it("groups thousands of tokens", () => {
    expect(tokens(0)).toBe("0");
    expect(tokens(1234567)).toBe("1,234,567");
  });

  it("sums a task's groups by phase and round, in round order", () => {
    const rows = byPhaseRound([
      g("implementing", 1, "claude-haiku-4-5", 0.5),
      g("speccing", 0, "claude-sonnet-4-5", 0.1),
      g("speccing", 0, "claude-haiku-4-5", 0.05, 500, 50),
      g("implementing", 0, "claude-sonnet-4-5", 0.25),
    ]);
    expect(rows.map((r) => [r.phase, r.round, r.models, r.requests, r.input_tokens, r.output_tokens])).toEqual([
      ["speccing", 0, ["claude-sonnet-4-5", "claude-haiku-4-5"], 2, 1500, 150],
      ["implementing", 0, ["claude-sonnet-4-5"], 1, 1000, 100],
      ["implementing", 1, ["claude-haiku-4-5"], 1, 1000, 100],
    ]);
    expect(rows[0].cost_usd).toBeCloseTo(0.15);
  });

  it("sums a project's groups by model, costliest first", () => {
    const rows = byModel([g("", 0, "a", 0.1), g("", 0, "b", 2), g("", 0, "a", 0.2)]);
    expect(rows.map((r) => [r.models[0], r.requests])).toEqual([["b", 1], ["a", 2]]);
  });
});
