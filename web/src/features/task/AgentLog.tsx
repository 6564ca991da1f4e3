import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "../../api/client";
import type { LogLine, LogPage } from "../../api/types";
import { ErrorBox } from "../../components/Feedback";
import { onLive } from "../../lib/live";

const PAGE = 200;

/** The box's output, live: follows the tail, pauses when scrolled up, pages back on demand. */
export function AgentLog({ taskId }: { taskId: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [hasOlder, setHasOlder] = useState(false);
  const [following, setFollowing] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const last = useRef(0);

  const fetchNew = useCallback(async () => {
    try {
      const page = await api.get<LogPage>(`/api/v1/tasks/${taskId}/agent/logs?after=${last.current}&limit=1000`);
      if (page.lines.length) {
        last.current = page.next_after;
        setLines((old) => [...old, ...page.lines]);
      }
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [taskId]);

  useEffect(() => {
    let stop = false;
    setLines([]);
    last.current = 0;
    api
      .get<LogPage>(`/api/v1/tasks/${taskId}/agent/logs?before=9223372036854775807&limit=${PAGE}`)
      .then((page) => {
        if (stop) return;
        setLines(page.lines);
        last.current = page.lines.length ? page.lines[page.lines.length - 1].seq : 0;
        setHasOlder((page.lines[0]?.seq ?? 1) > 1);
      })
      .catch(setError);
    const off = onLive((ev) => {
      if (ev.kind === "agent_log" && ev.task === taskId) void fetchNew();
    });
    return () => {
      stop = true;
      off();
    };
  }, [taskId, fetchNew]);

  useEffect(() => {
    if (following && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, following]);

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    setFollowing(el.scrollHeight - el.scrollTop - el.clientHeight < 24);
  };

  const older = async () => {
    const first = lines[0]?.seq;
    if (!first) return;
    try {
      const page = await api.get<LogPage>(`/api/v1/tasks/${taskId}/agent/logs?before=${first}&limit=${PAGE}`);
      setLines((old) => [...page.lines, ...old]);
      setHasOlder((page.lines[0]?.seq ?? 1) > 1);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <section className="card log" aria-labelledby="log-h">
      <h2 id="log-h">Agent log {!following && <span className="pill">paused — scroll down to follow</span>}</h2>
      {hasOlder && <button type="button" onClick={older}>Load older lines</button>}
      <div ref={box} className="log-lines" onScroll={onScroll} tabIndex={0} role="log" aria-label="Agent output" data-testid="agent-log">
        {lines.length === 0 && <div className="muted">No output yet.</div>}
        {lines.map((l) => (
          <div key={l.seq} className="log-line"><span className="seq">{l.seq}</span>{l.line}</div>
        ))}
      </div>
      <ErrorBox error={error} />
    </section>
  );
}
