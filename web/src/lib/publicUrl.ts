// Where outside services (GitHub, Telegram, Slack) reach Apiary: its public URL or, blank, the
// callback base.

/** `path` under Apiary's public URL (blank: the callback base); a placeholder before either is set. */
export function publicEndpoint(publicUrl: string, callbackBase: string, path: string): string {
  const base = (publicUrl.trim() || callbackBase.trim()).replace(/\/+$/, "");
  return `${base || "<public URL>"}${path}`;
}
