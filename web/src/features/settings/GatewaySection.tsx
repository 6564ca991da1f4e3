import type { GatewaySettings, Price } from "../../api/types";
import { parseEnv } from "../../lib/env";
import { SecretField } from "./SecretField";

/** The providers the gateway forwards to: name in the API, name for people. */
export const PROVIDERS = [["anthropic", "Anthropic"], ["openai", "OpenAI"], ["gemini", "Gemini"]] as const;
export type Provider = (typeof PROVIDERS)[number][0];

const PRESET_ORDER = ["claude-code", "codex", "aider", "opencode", "gemini"];
const PRICE_COLUMNS = [["input", "Input"], ["output", "Output"], ["cache_read", "Cache read"], ["cache_write", "Cache write"]] as const;

/** The model gateway's part of the settings form: provider keys and base URLs, the model of
 *  each preset, budgets and the stall guard, the agents' environment and the price table. The
 *  page owns the values and sends them with the rest of the settings. */
export function GatewaySection({ gateway, stallS, envText, version, onChange, onStallS, onEnvText, onKey }: {
  gateway: GatewaySettings;
  stallS: number;
  envText: string;
  /** Bumped after a save, so the key fields start over at "keep". */
  version: number;
  onChange: (p: Partial<GatewaySettings>) => void;
  onStallS: (s: number) => void;
  onEnvText: (text: string) => void;
  onKey: (provider: Provider, v: string | null | undefined) => void;
}) {
  const g = gateway;
  const presets = [...PRESET_ORDER.filter((p) => p in g.models), ...Object.keys(g.models).filter((p) => !PRESET_ORDER.includes(p)).sort()];
  const envError = parseEnv(envText).error;
  const setPrice = (i: number, p: Partial<Price>) => onChange({ prices: g.prices.map((x, k) => (k === i ? { ...x, ...p } : x)) });
  return (
    <fieldset className="card">
      <legend>Model gateway</legend>
      <p className="hint">Agents reach the models through Apiary, which adds the provider key, meters the tokens and enforces the budgets.</p>
      <h3>Providers</h3>
      {PROVIDERS.map(([p, name]) => (
        <div key={p} className="provider">
          <SecretField key={`${p}-${version}`} label={`${name} API key`} set={g.keys[p].set} onChange={(v) => onKey(p, v)} />
          <label>{name} base URL
            <input value={g.base_urls[p] ?? ""} placeholder="blank: the public API" onChange={(e) => onChange({ base_urls: { ...g.base_urls, [p]: e.target.value } })} />
          </label>
        </div>
      ))}
      <p className="hint">An OpenAI-compatible server goes under OpenAI.</p>
      <h3>Models</h3>
      {presets.map((p) => (
        <label key={p}>Model for {p}
          <input className="mono" value={g.models[p]} placeholder="the built-in default" onChange={(e) => onChange({ models: { ...g.models, [p]: e.target.value } })} />
        </label>
      ))}
      <h3>Budgets and stall guard</h3>
      <label>Per-task budget ($, 0 = no limit)
        <input type="number" min={0} step="any" value={g.task_budget_usd} onChange={(e) => onChange({ task_budget_usd: Number(e.target.value) })} />
      </label>
      <label>Monthly budget per project ($, 0 = no limit)
        <input type="number" min={0} step="any" value={g.project_month_budget_usd} onChange={(e) => onChange({ project_month_budget_usd: Number(e.target.value) })} />
      </label>
      <label>Stall repeats (the same model request this many times in a row stops the agent; 0 = off)
        <input type="number" min={0} max={1000} value={g.stall_repeats} onChange={(e) => onChange({ stall_repeats: Number(e.target.value) })} />
      </label>
      <label>Stall timeout (s): no model request and no log line this long stops the agent
        <input type="number" min={1} value={stallS} onChange={(e) => onStallS(Number(e.target.value))} />
      </label>
      <h3>Agent environment</h3>
      <label>Agent environment (one NAME=value a line, for every agent)
        <textarea className="mono" rows={3} value={envText} onChange={(e) => onEnvText(e.target.value)}
          aria-invalid={envError !== null} aria-describedby={envError ? "gateway-env-error" : undefined} />
      </label>
      {envError && <p id="gateway-env-error" className="warn">{envError}</p>}
      <h3>Prices</h3>
      <p className="hint">Dollars per million tokens. A model name matches exactly or as a prefix; * prices every other model.</p>
      <table className="price-table">
        <thead>
          <tr>
            <th scope="col">Model</th>
            {PRICE_COLUMNS.map(([k, name]) => <th key={k} scope="col">{name}</th>)}
            <td />
          </tr>
        </thead>
        <tbody>
          {g.prices.map((p, i) => (
            <tr key={i}>
              <td><input className="mono" aria-label={`Price row ${i + 1}: model`} value={p.model} onChange={(e) => setPrice(i, { model: e.target.value })} /></td>
              {PRICE_COLUMNS.map(([k, name]) => (
                <td key={k}>
                  <input type="number" min={0} step="any" aria-label={`Price row ${i + 1}: ${name.toLowerCase()} ($ per million tokens)`}
                    value={p[k] ?? 0} onChange={(e) => setPrice(i, { [k]: Number(e.target.value) })} />
                </td>
              ))}
              <td><button type="button" aria-label={`Remove price row ${i + 1}`} onClick={() => onChange({ prices: g.prices.filter((_, k) => k !== i) })}>Remove</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" onClick={() => onChange({ prices: [...g.prices, { model: "", input: 0, output: 0, cache_read: 0, cache_write: 0 }] })}>Add price</button>
    </fieldset>
  );
}
