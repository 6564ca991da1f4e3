import { describe, expect, it } from "vitest";
import { formatEnv, parseEnv } from "./env";

describe("agent environment lines", () => {
  it("reads NAME=value lines into an object and writes them back sorted", () => {
    const text = "NODE_OPTIONS=--max-old-space-size=4096\n\n# a comment\n  FOO = bar baz\r\nEMPTY=\n";
    const out = parseEnv(text);
    expect(out).toEqual({ env: { NODE_OPTIONS: "--max-old-space-size=4096", FOO: " bar baz", EMPTY: "" }, error: null });
    expect(formatEnv(out.env!)).toBe("EMPTY=\nFOO= bar baz\nNODE_OPTIONS=--max-old-space-size=4096");
    expect(parseEnv(formatEnv({ B: "2", A: "x=y" })).env).toEqual({ A: "x=y", B: "2" });
    expect(parseEnv("").env).toEqual({});
  });

  it("names the bad line", () => {
    expect(parseEnv("A=1\nnot a pair")).toEqual({ env: null, error: 'Line 2: "not a pair" is not NAME=value' });
    expect(parseEnv("1X=2").error).toMatch(/^Line 1: "1X" is not a variable name/);
    expect(parseEnv("MY-VAR=2").error).toMatch(/^Line 1: "MY-VAR" is not a variable name/);
    expect(parseEnv("=2").error).toMatch(/^Line 1: "" is not a variable name/);
    expect(parseEnv("A=1\nA=2").error).toBe("Line 2: A is set twice");
  });

  it("keeps names that are also object properties as plain entries", () => {
    const out = parseEnv("__proto__=x\nconstructor=y");
    expect(out.error).toBeNull();
    expect(Object.keys(out.env!)).toEqual(["__proto__", "constructor"]);
    expect(Object.getPrototypeOf(out.env)).toBe(Object.prototype);
  });
});
