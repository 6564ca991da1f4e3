import { ApiError } from "../api/client";

/** A request that failed: the API's own message, never a blank panel. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
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
