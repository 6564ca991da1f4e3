import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import type { ChatLink, ChatLinkCode } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorBox, Loading } from "../../components/Feedback";
import { viaLabel } from "../../lib/via";
import { LinkCode } from "./LinkCode";

/** How often the list is read while a code waits to be sent from a chat. */
const POLL_MS = 5_000;

const linkKey = (l: ChatLink) => `${l.via}\n${l.chat_user_id}\n${l.created_at}`;

/** The link in `links` that was not there before (`before`: the keys of the links then). */
export function newLink(links: ChatLink[] | undefined, before: string[]): ChatLink | undefined {
  return links?.find((l) => !before.includes(linkKey(l)));
}

/** The signed-in user's Telegram and Slack accounts: button presses there act as them. Lists
 *  the links, makes a one-time code to add one, and unlinks. */
export function ChatAccounts() {
  const client = useQueryClient();
  const [code, setCode] = useState<ChatLinkCode | null>(null);
  const [before, setBefore] = useState<string[]>([]);
  const links = useQuery({
    queryKey: ["chat-links"],
    queryFn: () => api.get<ChatLink[]>("/api/v1/me/chat-links"),
    // The code is sent from the chat, and no live event says so: read the list again while a
    // code waits (unexpired, no new link yet).
    refetchInterval: (q) =>
      code && !newLink(q.state.data, before) && Date.parse(code.expires_at) > Date.now() ? POLL_MS : false,
  });
  const makeCode = useMutation({
    mutationFn: () => api.post<ChatLinkCode>("/api/v1/me/chat-links/code"),
    onSuccess: (c) => {
      setBefore((links.data ?? []).map(linkKey));
      setCode(c);
    },
  });
  const unlink = useMutation({
    mutationFn: (via: string) => api.delete(`/api/v1/me/chat-links/${encodeURIComponent(via)}`),
    onSuccess: () => {
      setCode(null);
      return client.invalidateQueries({ queryKey: ["chat-links"] });
    },
  });
  const linked = code ? newLink(links.data, before) : undefined;
  return (
    <section className="card" aria-labelledby="chat-accounts-h">
      <h2 id="chat-accounts-h">Chat accounts</h2>
      <p className="hint">
        Link your Telegram or Slack account and the buttons on Apiary's messages there act as you, with your access;
        the task's history says "via Telegram" or "via Slack".
      </p>
      {links.isPending && <Loading what="chat accounts" />}
      <ErrorBox error={links.error} />
      <ul className="chat-links" aria-label="Linked chat accounts">
        {links.data?.map((l) => (
          <li key={linkKey(l)}>
            <span>
              {viaLabel(l.via)}: {l.chat_user_name}, linked <time dateTime={l.created_at}>{new Date(l.created_at).toLocaleDateString()}</time>
            </span>{" "}
            <ConfirmButton
              label={`Unlink ${viaLabel(l.via)}`}
              question={`Unlink ${l.chat_user_name} on ${viaLabel(l.via)}? Its buttons stop acting as you.`}
              disabled={unlink.isPending}
              onConfirm={() => unlink.mutate(l.via)}
            />
          </li>
        ))}
        {links.data?.length === 0 && <li className="muted">No chat account linked.</li>}
      </ul>
      <ErrorBox error={unlink.error} />
      {linked && <p role="status">Linked as {linked.chat_user_name} on {viaLabel(linked.via)}.</p>}
      {code && !linked && <LinkCode code={code} />}
      <div className="actions">
        <button type="button" onClick={() => makeCode.mutate()} disabled={makeCode.isPending}>Link a chat account</button>
        <button type="button" onClick={() => void links.refetch()}>Refresh</button>
      </div>
      <ErrorBox error={makeCode.error} />
    </section>
  );
}
