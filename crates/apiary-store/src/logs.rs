//! Agent log lines, numbered per task so readers can page and resume without repeats.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::db::Store;
use crate::error::{StoreError, StoreResult};

/// What an appended batch became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppend {
    /// Sequence number of the batch's last line.
    pub last_seq: i64,
    /// The event that announces the batch (the live cursor). Batches of one task written in
    /// the same group commit share it; it carries the task's last line of that group. 0 when
    /// nothing was stored (every line was past the task's cap): nothing to announce.
    pub event_id: i64,
    pub project_id: String,
}

/// One stored line of a box's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub seq: i64,
    pub line: String,
    pub created_at: i64,
}
from_row!(LogLine {
    seq,
    line,
    created_at
});

/// A batch waiting for the next group commit, and where its answer goes.
struct PendingBatch {
    task_id: String,
    lines: Vec<String>,
    reply: oneshot::Sender<StoreResult<LogAppend>>,
}

/// Log batches waiting to be written. Many boxes post at once and SQLite has one writer, so
/// batches are written together: one transaction (one commit) holds every batch that arrived
/// while the previous one was being written. A batch is acknowledged only after that commit.
#[derive(Default)]
pub(crate) struct LogQueue {
    inner: Mutex<LogQueueState>,
    /// Rung for every new batch; the writer waits on it when the queue is empty.
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct LogQueueState {
    pending: Vec<PendingBatch>,
    /// The writer thread runs (started by the first batch).
    started: bool,
}

/// Lets a writer that panicked hand over: the waiting batches are answered with an error
/// (dropped replies) and the next batch starts a new writer.
struct WriterGuard<'a>(&'a LogQueue);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        let mut q = self.0.inner.lock().unwrap_or_else(|e| e.into_inner());
        q.started = false;
        q.pending.clear();
    }
}

/// Most lines one group commit writes (the rest wait for the next one).
const GROUP_MAX_LINES: usize = 5_000;

impl Store {
    /// Appends a batch in order and records it in the event stream (kind `log`, so live
    /// readers resume from one cursor). The batch is written in a group commit with the
    /// batches other boxes posted meanwhile; it is stored once it returns, never partly.
    pub async fn append_logs(&self, task_id: &str, lines: Vec<String>) -> StoreResult<LogAppend> {
        if lines.is_empty() {
            return Err(StoreError::invalid(
                "lines",
                "a batch holds at least one line",
            ));
        }
        // PostgreSQL refuses NUL in text; a box's output may hold one. Kept visible instead.
        let lines = lines
            .into_iter()
            .map(|l| {
                if l.contains('\0') {
                    l.replace('\0', "\u{fffd}")
                } else {
                    l
                }
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        let start_writer = {
            let mut q = self.logs.inner.lock().expect("log queue lock");
            q.pending.push(PendingBatch {
                task_id: task_id.to_string(),
                lines,
                reply,
            });
            !std::mem::replace(&mut q.started, true)
        };
        if start_writer {
            if let Err(e) = self.start_log_writer() {
                // Nobody will write what is queued: answer it (dropped replies) and let the
                // next batch try again.
                let mut q = self.logs.inner.lock().expect("log queue lock");
                q.started = false;
                q.pending.clear();
                return Err(e);
            }
        }
        self.logs.wake.notify_one();
        answer
            .await
            .map_err(|_| StoreError::Group("the log writer stopped".into()))?
    }

    /// The writer gets a thread of its own (with a one-thread runtime), so its round trips to
    /// the database never queue behind the HTTP server's tasks; a caller that goes away cannot
    /// strand the others' batches either.
    fn start_log_writer(&self) -> StoreResult<()> {
        let store = self.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Group(format!("cannot start the log writer: {e}")))?;
        std::thread::Builder::new()
            .name("apiary-log-writer".into())
            .spawn(move || runtime.block_on(store.run_log_writer()))
            .map_err(|e| StoreError::Group(format!("cannot start the log writer: {e}")))?;
        Ok(())
    }

    /// Writes groups while batches are waiting, then sleeps until the next one arrives.
    async fn run_log_writer(self) {
        let _guard = WriterGuard(&self.logs);
        loop {
            let group = {
                let mut q = self.logs.inner.lock().expect("log queue lock");
                let mut lines = 0;
                let take = q
                    .pending
                    .iter()
                    .take_while(|b| {
                        lines += b.lines.len();
                        lines <= GROUP_MAX_LINES
                    })
                    .count()
                    .max(1)
                    .min(q.pending.len());
                q.pending.drain(..take).collect::<Vec<_>>()
            };
            if group.is_empty() {
                self.logs.wake.notified().await;
                continue;
            }
            match self.write_log_group(&group).await {
                Ok(results) => {
                    for (batch, result) in group.into_iter().zip(results) {
                        let _ = batch.reply.send(result);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    tracing::error!(error = %message, batches = group.len(), "log group commit failed");
                    for batch in group {
                        let _ = batch.reply.send(Err(StoreError::Group(message.clone())));
                    }
                }
            }
        }
    }

    /// One transaction for the whole group, seven round trips whatever its size: read the log
    /// cap, lock the tasks and read their last sequence numbers and stored bytes, insert every
    /// line (up to each task's cap, then one marker line, then nothing), keep the tasks' bytes,
    /// insert one `log` event per task that got lines (the cursor for live readers, at the
    /// task's last line), commit. Rows travel as one JSON
    /// array per statement: SQLite looks `$N` parameters up by a linear scan, so binding
    /// hundreds of them costs more than parsing the JSON.
    async fn write_log_group(
        &self,
        group: &[PendingBatch],
    ) -> StoreResult<Vec<StoreResult<LogAppend>>> {
        let mut ids: Vec<&str> = group.iter().map(|b| b.task_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.begin_events().await?;
        let cap = crate::settings::read_settings(&mut tx)
            .await?
            .task_log_bytes as i64;
        // task id → (project id, last seq, bytes stored); locked in id order on PostgreSQL.
        let sql = format!(
            "SELECT t.id, t.project_id, COALESCE((SELECT MAX(l.seq) FROM agent_logs l WHERE l.task_id = t.id), 0), t.log_bytes \
             FROM tasks t WHERE t.id IN (SELECT value ->> 0 FROM {}) ORDER BY t.id{}",
            self.json_rows("$1"),
            self.for_update()
        );
        let ids_json = serde_json::to_string(&ids.iter().map(|id| [id]).collect::<Vec<_>>())
            .map_err(|e| StoreError::Group(e.to_string()))?;
        let mut tasks: HashMap<String, (String, i64, i64)> =
            sqlx::query_as::<_, (String, String, i64, i64)>(&sql)
                .bind(ids_json)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(id, project, last, bytes)| (id, (project, last, bytes)))
                .collect();
        let before: HashMap<String, i64> = tasks.iter().map(|(id, t)| (id.clone(), t.1)).collect();
        let now = self.now();
        let size = if cap >= 1024 * 1024 {
            format!("{} MB", cap / (1024 * 1024))
        } else {
            format!("{} KB", cap / 1024)
        };
        let marker = format!("log limit of {size} reached; further lines dropped");
        let mut rows: Vec<(&str, i64, &str)> = Vec::new();
        let mut results = Vec::with_capacity(group.len());
        for batch in group {
            let Some((_, last, bytes)) = tasks.get_mut(&batch.task_id) else {
                results.push(Err(StoreError::NotFound("task")));
                continue;
            };
            for line in &batch.lines {
                // Past the cap the marker is stored (and counted, so the count stays past
                // it): exactly one marker, then nothing.
                if *bytes > cap {
                    break;
                }
                let line = if *bytes + line.len() as i64 > cap {
                    *bytes = (*bytes + marker.len() as i64).max(cap + 1);
                    marker.as_str()
                } else {
                    *bytes += line.len() as i64;
                    line.as_str()
                };
                *last += 1;
                rows.push((&batch.task_id, *last, line));
            }
            results.push(Ok(*last));
        }
        if !rows.is_empty() {
            let rows_json =
                serde_json::to_string(&rows).map_err(|e| StoreError::Group(e.to_string()))?;
            sqlx::query(&format!(
                "INSERT INTO agent_logs (task_id, seq, line, created_at) \
                 SELECT value ->> 0, CAST(value ->> 1 AS BIGINT), value ->> 2, $1 FROM {}",
                self.json_rows("$2")
            ))
            .bind(now)
            .bind(rows_json)
            .execute(&mut *tx)
            .await?;
        }
        // One event per task that got lines, carrying its last sequence number.
        let written: Vec<(&str, &str, String)> = ids
            .iter()
            .filter_map(|id| {
                tasks
                    .get(*id)
                    .filter(|(_, last, _)| before.get(*id) != Some(last))
                    .map(|(project, last, _)| (*id, project.as_str(), last.to_string()))
            })
            .collect();
        if !written.is_empty() {
            let bytes: Vec<(&str, String)> = written
                .iter()
                .map(|(id, _, _)| (*id, tasks[*id].2.to_string()))
                .collect();
            let bytes_json =
                serde_json::to_string(&bytes).map_err(|e| StoreError::Group(e.to_string()))?;
            sqlx::query(&format!(
                "UPDATE tasks SET log_bytes = CAST(value ->> 1 AS BIGINT) FROM {} \
                 WHERE tasks.id = value ->> 0",
                self.json_rows("$1")
            ))
            .bind(bytes_json)
            .execute(&mut *tx)
            .await?;
        }
        let mut events: HashMap<String, i64> = HashMap::new();
        if !written.is_empty() {
            let events_json =
                serde_json::to_string(&written).map_err(|e| StoreError::Group(e.to_string()))?;
            let sql = format!(
                "INSERT INTO task_events (task_id, project_id, kind, actor_kind, message, created_at) \
                 SELECT value ->> 0, value ->> 1, 'log', 'box', value ->> 2, $1 FROM {} \
                 RETURNING id, task_id",
                self.json_rows("$2")
            );
            for (event_id, task) in sqlx::query_as::<_, (i64, String)>(&sql)
                .bind(now)
                .bind(events_json)
                .fetch_all(&mut *tx)
                .await?
            {
                events.insert(task, event_id);
            }
        }
        tx.commit().await?;
        Ok(group
            .iter()
            .zip(results)
            .map(|(batch, r)| {
                r.map(|last_seq| LogAppend {
                    last_seq,
                    event_id: events.get(&batch.task_id).copied().unwrap_or(0),
                    project_id: tasks[&batch.task_id].0.clone(),
                })
            })
            .collect())
    }

    /// Lines after `after`, oldest first, at most `limit`.
    pub async fn list_logs(
        &self,
        task_id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<LogLine>> {
        Ok(sqlx::query_as::<_, LogLine>(
            "SELECT seq, line, created_at FROM agent_logs WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(task_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The `limit` lines just before `before`, oldest first (paging back from the tail).
    pub async fn list_logs_before(
        &self,
        task_id: &str,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<LogLine>> {
        let mut lines = sqlx::query_as::<_, LogLine>(
            "SELECT seq, line, created_at FROM agent_logs WHERE task_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(task_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        lines.reverse();
        Ok(lines)
    }
}
