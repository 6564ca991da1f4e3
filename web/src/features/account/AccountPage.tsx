import type { User } from "../../api/types";
import { ChatAccounts } from "./ChatAccounts";

/** The signed-in user's own things: who they are and the chat accounts that act as them. */
export function AccountPage({ me }: { me: User }) {
  return (
    <section className="account" aria-labelledby="account-h">
      <h1 id="account-h">Account</h1>
      <p>
        {me.name} <span className="muted">{me.email}</span>
      </p>
      <ChatAccounts />
    </section>
  );
}
