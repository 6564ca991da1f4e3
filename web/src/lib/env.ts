// The agent's plain environment as people edit it: one NAME=value a line. The server checks
// the names again (and refuses the ones Apiary sets itself); this only catches typing slips.

export type Env = Record<string, string>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The lines of an environment, sorted by name. */
export function formatEnv(env: Env): string {
  return Object.keys(env)
    .sort()
    .map((k) => `${k}=${env[k]}`)
    .join("\n");
}

/** NAME=value lines to an object; blank lines and `#` comments are skipped. The value is
 *  everything after the first `=`, kept as typed. A bad line gives an error naming it. */
export function parseEnv(text: string): { env: Env; error: null } | { env: null; error: string } {
  const env = new Map<string, string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    if (!line.trim() || line.trim().startsWith("#")) continue;
    const eq = line.indexOf("=");
    const name = eq < 0 ? line.trim() : line.slice(0, eq).trim();
    if (eq < 0) return { env: null, error: `Line ${i + 1}: "${name}" is not NAME=value` };
    if (!NAME.test(name)) return { env: null, error: `Line ${i + 1}: "${name}" is not a variable name (letters, digits and _, not starting with a digit)` };
    if (env.has(name)) return { env: null, error: `Line ${i + 1}: ${name} is set twice` };
    env.set(name, line.slice(eq + 1));
  }
  return { env: Object.fromEntries(env), error: null };
}
