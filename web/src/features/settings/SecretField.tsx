import { useState } from "react";

/** A write-only secret: shows whether one is set; "replace" types a new one, "clear" removes it.
 *  `onChange` gets `undefined` (keep), `null` (clear) or the new value. */
export function SecretField({ label, set, onChange }: { label: string; set: boolean; onChange: (v: string | null | undefined) => void }) {
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
      {mode === "replace" && (
        <input type="password" aria-label={`New ${label}`} autoComplete="off" value={value} onChange={(e) => { setValue(e.target.value); onChange(e.target.value || undefined); }} />
      )}
      {mode === "clear" && <span className="warn"> will be cleared on save</span>}
    </fieldset>
  );
}
