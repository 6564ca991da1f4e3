import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, setCsrf } from "../../api/client";
import { ErrorBox } from "../../components/Feedback";

/** Sign-in with email and password. */
export function Login() {
  const client = useQueryClient();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const out = await api.post<{ csrf_token: string }>("/api/v1/auth/login", { email, password });
      setCsrf(out.csrf_token);
      await client.invalidateQueries({ queryKey: ["me"] });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="login card" onSubmit={submit} aria-label="Sign in">
      <h1>Apiary</h1>
      <label>
        Email
        <input type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required />
      </label>
      <label>
        Password
        <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
      </label>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
    </form>
  );
}
