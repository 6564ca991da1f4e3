import { STATUS_LABEL, type AgentStatus } from "../lib/agent";

/** The agent status as a coloured badge. */
export function StatusBadge({ status }: { status: string }) {
  const s = status as AgentStatus;
  return (
    <span className={`badge badge-${s}`} data-testid="agent-status" data-status={s}>
      {STATUS_LABEL[s] ?? status}
    </span>
  );
}
