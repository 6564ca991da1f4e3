import { useQuery } from "@tanstack/react-query";
import { api } from "../../api/client";
import type { Project, Task, User } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { Link } from "../../lib/router";
import { AgentLog } from "./AgentLog";
import { AgentPanel } from "./AgentPanel";
import { AuditTrail } from "./AuditTrail";
import { Comments } from "./Comments";
import { GithubIssue } from "./GithubIssue";
import { SpecView } from "./SpecView";

/** Everything about one task: its agent, spec, log, history and comments. `embedded` (in the
 *  board's side sheet) leaves out the link back to the board, which is right behind it. */
export function TaskSheet({ taskId, me, embedded = false }: { taskId: string; me: User; embedded?: boolean }) {
  const task = useQuery({ queryKey: ["task", taskId], queryFn: () => api.get<Task>(`/api/v1/tasks/${taskId}`) });
  const project = useQuery({
    queryKey: ["project", task.data?.project_id],
    queryFn: () => api.get<Project>(`/api/v1/projects/${task.data!.project_id}`),
    enabled: !!task.data,
  });
  if (task.isPending) return <Loading what="task" />;
  if (task.error) return <ErrorBox error={task.error} />;
  const t = task.data!;
  const canWrite = project.data?.access === "write" && me.role !== "agent";
  return (
    <article className="sheet" aria-labelledby="task-h">
      {!embedded && (
        <p>
          <Link to={`/projects/${t.project_id}`}>← {project.data?.name ?? "Board"}</Link>
        </p>
      )}
      <h1 id="task-h">{t.title}</h1>
      <GithubIssue issue={t.agent.github_issue} description={t.description} />
      {t.description && <p className="description">{t.description}</p>}
      <AgentPanel task={t} canWrite={canWrite} />
      <SpecView task={t} />
      <AgentLog taskId={t.id} />
      <AuditTrail taskId={t.id} />
      <Comments taskId={t.id} canWrite={canWrite} />
    </article>
  );
}
