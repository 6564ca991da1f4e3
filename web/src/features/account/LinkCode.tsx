import { useEffect, useState } from "react";
import type { ChatLinkCode } from "../../api/types";

/** When a code stops working, for people: "Expires in 10 minutes", "Expired". */
export function expiryText(expiresAt: string, now: number): string {
  const minutes = Math.ceil((Date.parse(expiresAt) - now) / 60_000);
  if (!(minutes > 0)) return "Expired";
  return `Expires in ${minutes} minute${minutes === 1 ? "" : "s"}`;
}

/** The clock, read again every `everyMs`. */
function useNow(everyMs: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(id);
  }, [everyMs]);
  return now;
}

/** A one-time link code: large and copyable, when it expires, and how to send it from each chat
 *  that is set up (Telegram's link or `/start`, Slack's command); none: chat actions are off. */
export function LinkCode({ code }: { code: ChatLinkCode }) {
  const now = useNow(15_000);
  const [copied, setCopied] = useState(false);
  const expired = Date.parse(code.expires_at) <= now;
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(code.code);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  return (
    <section className="link-code-panel" aria-labelledby="link-code-h">
      <h3 id="link-code-h">Your link code</h3>
      <p className="link-code">
        <code data-testid="link-code">{code.code}</code>{" "}
        <button type="button" onClick={() => void copy()} disabled={expired}>Copy code</button>{" "}
        {copied && <span role="status">Copied.</span>}
      </p>
      <p className={expired ? "warn" : "hint"}>
        <time dateTime={code.expires_at}>{expiryText(code.expires_at, now)}</time>
        {expired ? ": make a new one." : " (it works once)."}
      </p>
      {!expired && (
        <ul className="link-steps">
          {code.telegram_url && (
            <li data-testid="link-telegram">
              Telegram: open <a href={code.telegram_url} target="_blank" rel="noreferrer">{code.telegram_url}</a> (or
              send <code>/start {code.code}</code> to the bot).
            </li>
          )}
          {code.slack_command && (
            <li data-testid="link-slack">Slack: type <code>{code.slack_command}</code> in Slack.</li>
          )}
          {!code.telegram_url && !code.slack_command && (
            <li data-testid="link-none">
              Chat actions are not configured: an admin sets up Telegram updates or Slack in the settings.
            </li>
          )}
        </ul>
      )}
    </section>
  );
}
