import type { Settings, TelegramSettings } from "../../api/types";
import { publicEndpoint } from "../../lib/publicUrl";
import { SecretField } from "./SecretField";

/** How Apiary hears Telegram's button presses and replies: value in the API, text for people. */
export const TELEGRAM_UPDATES = [
  ["off", "Off — notifications only"],
  ["webhook", "Webhook — Telegram calls Apiary at its public URL"],
  ["polling", "Long polling — Apiary asks Telegram (no public URL needed)"],
] as const;

/** Where Telegram delivers updates in webhook mode. */
export function telegramWebhookUrl(publicUrl: string, callbackBase: string): string {
  return publicEndpoint(publicUrl, callbackBase, "/api/v1/telegram/webhook");
}

/** The Telegram part of the settings form: the notification channel and how Apiary hears the
 *  buttons pressed on its messages. The page owns the values. */
export function TelegramSection({ settings, version, onChange, onToken }: {
  settings: Settings;
  /** Bumped after a save, so the token field starts over at "keep". */
  version: number;
  onChange: (p: Partial<Settings>) => void;
  onToken: (v: string | null | undefined) => void;
}) {
  const t = settings.telegram;
  const set = (p: Partial<TelegramSettings>) => onChange({ telegram: { ...t, ...p } });
  return (
    <fieldset className="card">
      <legend>Telegram</legend>
      <label className="check"><input type="checkbox" checked={t.enabled} onChange={(e) => set({ enabled: e.target.checked })} /> Telegram on</label>
      <SecretField key={`telegram-token-${version}`} label="Telegram bot token" set={t.bot_token.set} onChange={onToken} />
      <label>Telegram chat id<input value={t.chat_id} onChange={(e) => set({ chat_id: e.target.value })} /></label>
      <label>Telegram API base<input value={t.api_base} onChange={(e) => set({ api_base: e.target.value })} /></label>
      <label>Telegram updates
        <select value={t.updates} onChange={(e) => set({ updates: e.target.value })} aria-describedby="telegram-updates-hint">
          {TELEGRAM_UPDATES.map(([v, text]) => <option key={v} value={v}>{text}</option>)}
        </select>
      </label>
      <p id="telegram-updates-hint" className="hint">
        With updates, notifications carry buttons (approve, merge, …) that act as the person pressing them, once they
        have linked their Telegram account on their Account page.
      </p>
      <label>Telegram bot username
        <input value={t.bot_username} maxLength={33} placeholder="apiary_bot" onChange={(e) => set({ bot_username: e.target.value })} aria-describedby="telegram-bot-hint" />
      </label>
      <p id="telegram-bot-hint" className="hint">The bot's @username, for the link users open.</p>
      {t.updates === "webhook" && (
        <p className="hint" data-testid="telegram-webhook-help">
          On save, Apiary asks Telegram to deliver updates to <code>{telegramWebhookUrl(settings.public_url, settings.callback_base_url)}</code>,
          which Telegram must reach over HTTPS.
        </p>
      )}
    </fieldset>
  );
}
