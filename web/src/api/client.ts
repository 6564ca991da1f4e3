// The one way the UI talks to Apiary: JSON over fetch, the session cookie, and the CSRF token
// on writes. Errors carry the API's own message so it can be shown as is.

let csrf: string | null = null;

/** Remembers the CSRF token from login or /me. */
export function setCsrf(token: string | null | undefined) {
  csrf = token ?? null;
}

/** An API refusal: status, code and the server's message. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public body: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  let resp: Response;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "offline", "Apiary cannot be reached. Check your connection.");
  }
  if (resp.status === 204) return undefined as T;
  const text = await resp.text();
  const json = text ? safeJson(text) : null;
  if (!resp.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(resp.status, err?.code ?? "error", err?.message ?? `Request failed (${resp.status})`, (err ?? {}) as Record<string, unknown>);
  }
  return json as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { error: { code: "bad_response", message: text.slice(0, 200) } };
  }
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body: unknown = {}) => request<T>("POST", path, body),
  patch: <T>(path: string, body: unknown) => request<T>("PATCH", path, body),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, body),
  delete: <T = void>(path: string) => request<T>("DELETE", path),
};
