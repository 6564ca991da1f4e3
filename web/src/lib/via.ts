// The chats a person can act from (Telegram, Slack), as the API names them and as people read them.

const VIA_LABEL: Record<string, string> = { telegram: "Telegram", slack: "Slack" };

/** A chat's name for people (`telegram` → Telegram); an unknown one shows as is. */
export function viaLabel(via: string): string {
  return VIA_LABEL[via] ?? via;
}
