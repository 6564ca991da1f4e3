import { useState } from "react";

/** A button that asks "are you sure?" in place before doing something destructive. `name` is
 *  its accessible name where the label alone is ambiguous (one Stop button per row). */
export function ConfirmButton({ label, question, onConfirm, disabled, name }: { label: string; question: string; onConfirm: () => void; disabled?: boolean; name?: string }) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" className="danger" aria-label={name} disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question}>
      <span>{question}</span>
      <button type="button" className="danger" autoFocus onClick={() => { setAsking(false); onConfirm(); }}>
        Yes, {label.toLowerCase()}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        No
      </button>
    </span>
  );
}
