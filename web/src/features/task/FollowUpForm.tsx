import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import type { FollowUpIn, FollowUpOut } from "../../api/types";
import { ErrorBox } from "../../components/Feedback";

/** A message for the agent while it writes the spec or implements: the box keeps it for the
 *  agent's next turn and logs it, so it shows in the agent log live. */
export function FollowUpForm({ taskId }: { taskId: string }) {
  const [text, setText] = useState("");
  const [sent, setSent] = useState(false);
  const send = useMutation({
    mutationFn: (body: FollowUpIn) => api.post<FollowUpOut>(`/api/v1/tasks/${taskId}/agent/message`, body),
    onSuccess: () => {
      setText("");
      setSent(true);
    },
  });
  return (
    <form
      className="follow-up"
      aria-labelledby={`follow-up-h-${taskId}`}
      onSubmit={(e) => {
        e.preventDefault();
        setSent(false);
        send.mutate({ text: text.trim() });
      }}
    >
      <h3 id={`follow-up-h-${taskId}`}>Message the agent</h3>
      <label>
        Your message for the agent
        <textarea value={text} onChange={(e) => { setText(e.target.value); setSent(false); }} rows={2} required />
      </label>
      <button type="submit" disabled={send.isPending || !text.trim()}>Send</button>
      <p role="status" className="muted">{sent ? "Sent: the agent gets it at its next turn." : ""}</p>
      <ErrorBox error={send.error} />
    </form>
  );
}
