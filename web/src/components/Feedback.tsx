import { ApiError } from "../api/client";

/** A request that failed: the API's own message, never a blank panel. A refused value's
 *  message names its field; one that does not is prefixed with it. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  let message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  const field = error instanceof ApiError ? error.body.field : undefined;
  if (typeof field === "string" && field && !message.includes(field)) message = `${field}: ${message}`;
  return (
    <div className="error" role="alert">
      {message}
    </div>
  );
}

/** A placeholder of fixed height while data loads (no layout shift when it arrives). */
export function Loading({ what }: { what: string }) {
  return (
    <div className="loading" aria-busy="true">
      Loading {what}…
    </div>
  );
}
