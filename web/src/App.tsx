import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, setCsrf } from "./api/client";
import type { Me } from "./api/types";
import { ErrorBox, Loading } from "./components/Feedback";
import { AccountPage } from "./features/account/AccountPage";
import { Login } from "./features/auth/Login";
import { Board } from "./features/board/Board";
import { CodePage } from "./features/code/CodePage";
import { FleetPage } from "./features/fleet/FleetPage";
import { ProjectList } from "./features/projects/ProjectList";
import { ProjectAgentTab } from "./features/projects/ProjectAgentTab";
import { ReviewPage } from "./features/review/ReviewPage";
import { SettingsPage } from "./features/settings/SettingsPage";
import { TaskSheet } from "./features/task/TaskSheet";
import { useLiveEvents } from "./lib/live";
import { Link, match, navigate, usePath } from "./lib/router";

export function App() {
  const client = useQueryClient();
  const path = usePath();
  const me = useQuery({
    queryKey: ["me"],
    queryFn: async () => {
      const m = await api.get<Me>("/api/v1/me");
      setCsrf(m.csrf_token);
      return m;
    },
    retry: false,
  });
  const live = useLiveEvents(client, !!me.data);
  if (me.isPending) return <Loading what="Apiary" />;
  if (me.error) {
    if (me.error instanceof ApiError && me.error.status === 401) return <Login />;
    return <ErrorBox error={me.error} />;
  }
  const user = me.data!.user;
  const logout = async () => {
    await api.post("/api/v1/auth/logout");
    setCsrf(null);
    client.clear();
    navigate("/");
    void client.invalidateQueries({ queryKey: ["me"] });
  };
  let page;
  let m;
  if ((m = match("/projects/:id", path))) page = <Board projectId={m.id} me={user} />;
  else if ((m = match("/projects/:id/agent", path))) page = <ProjectAgentTab projectId={m.id} admin={user.role === "admin"} />;
  else if ((m = match("/tasks/:id/review", path))) page = <ReviewPage taskId={m.id} me={user} />;
  else if ((m = match("/tasks/:id/code", path))) page = <CodePage taskId={m.id} />;
  else if ((m = match("/tasks/:id", path))) page = <TaskSheet taskId={m.id} me={user} />;
  else if (path === "/settings") page = <SettingsPage />;
  else if (path === "/fleet") page = <FleetPage />;
  else if (path === "/account") page = <AccountPage me={user} />;
  else page = <ProjectList />;
  return (
    <div className="app">
      <header className="top">
        <Link to="/" className="brand">Apiary</Link>
        <nav aria-label="Main">
          <Link to="/">Projects</Link>
          {user.role === "admin" && <Link to="/settings">Settings</Link>}
          {user.role === "admin" && <Link to="/fleet">Fleet</Link>}
        </nav>
        <span className={`live live-${live}`} role="status" aria-live="polite" data-testid="live-state">
          {live === "offline" ? "Offline — reconnecting…" : live === "online" ? "Live" : "Connecting…"}
        </span>
        <span className="who">{user.name}</span>
        <Link to="/account">Account</Link>
        <button type="button" onClick={logout}>Sign out</button>
      </header>
      <main>{page}</main>
    </div>
  );
}
