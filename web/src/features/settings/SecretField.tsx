import { useState } from "react";

/** A write-only secret: shows whether one is set; "replace" types a new one, "clear" removes it.
 *  `onChange` gets `undefined` (keep), `null` (clear) or the new value. `multiline` takes a
 *  value of several lines (a PEM key), which a password box would flatten. */
export function SecretField({ label, set, onChange, multiline }: { label: string; set: boolean; onChange: (v: string | null | undefined) => void; multiline?: boolean }) {
  const [mode, setMode] = useState<"keep" | "replace" | "clear">("keep");
  const [value, setValue] = useState("");
  const choose = (m: "keep" | "replace" | "clear") => {
    setMode(m);
    onChange(m === "clear" ? null : m === "replace" ? value || undefined : undefined);
  };
  return (
    <fieldset className="secret">
      <legend>{label}</legend>
      <span className="muted">{set ? "set" : "not set"}</span>{" "}
      {mode !== "replace" && <button type="button" onClick={() => choose("replace")}>{set ? "Replace" : "Set"}</button>}
      {set && mode !== "clear" && <button type="button" onClick={() => choose("clear")}>Clear</button>}
      {mode !== "keep" && <button type="button" onClick={() => choose("keep")}>Keep as is</button>}
      {mode === "replace" && !multiline && (
        <input type="password" aria-label={`New ${label}`} autoComplete="off" value={value} onChange={(e) => { setValue(e.target.value); onChange(e.target.value || undefined); }} />
      )}
      {mode === "replace" && multiline && (
        <textarea className="mono" rows={6} aria-label={`New ${label}`} autoComplete="off" spellCheck={false} value={value} onChange={(e) => { setValue(e.target.value); onChange(e.target.value || undefined); }} />
      )}
      {mode === "clear" && <span className="warn"> will be cleared on save</span>}
    </fieldset>
  );
}
