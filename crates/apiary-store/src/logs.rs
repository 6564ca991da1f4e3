//! Agent log lines, numbered per task so readers can page and resume without repeats.

use crate::db::Store;
use crate::error::StoreResult;

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

impl Store {
    /// Appends a batch in order and records it in the event stream (kind `log`, so live
    /// readers resume from one cursor); returns (last sequence number, event id).
    pub async fn append_logs(&self, task_id: &str, lines: &[String]) -> StoreResult<(i64, i64)> {
        let mut tx = self.begin().await?;
        let task = self.lock_task(&mut tx, task_id).await?;
        let (last,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM agent_logs WHERE task_id = $1")
                .bind(task_id)
                .fetch_one(&mut *tx)
                .await?;
        let now = self.now();
        let mut seq = last;
        for line in lines {
            seq += 1;
            sqlx::query(
                "INSERT INTO agent_logs (task_id, seq, line, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(task_id)
            .bind(seq)
            .bind(line)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let (event_id,): (i64,) = sqlx::query_as(
            "INSERT INTO task_events (task_id, project_id, kind, actor_kind, message, created_at) \
             VALUES ($1, $2, 'log', 'box', $3, $4) RETURNING id",
        )
        .bind(task_id)
        .bind(&task.project_id)
        .bind(seq.to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((seq, event_id))
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
