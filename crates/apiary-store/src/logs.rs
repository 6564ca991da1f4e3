//! Agent log lines, numbered per task so readers can page and resume without repeats.

use crate::db::Store;
use crate::error::StoreResult;

/// What an appended batch became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppend {
    /// Sequence number of the batch's last line.
    pub last_seq: i64,
    /// The event that announces the batch (the live cursor).
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

impl Store {
    /// Appends a batch in order and records it in the event stream (kind `log`, so live
    /// readers resume from one cursor). One transaction, three statements whatever the size.
    pub async fn append_logs(&self, task_id: &str, lines: &[String]) -> StoreResult<LogAppend> {
        let mut tx = self.begin().await?;
        let row: Option<(String, i64)> = sqlx::query_as(&format!(
            "SELECT t.project_id, COALESCE((SELECT MAX(seq) FROM agent_logs WHERE task_id = $1), 0) \
             FROM tasks t WHERE t.id = $1{}",
            self.for_update()
        ))
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((project_id, last)) = row else {
            return Err(crate::StoreError::NotFound("task"));
        };
        let now = self.now();
        let mut seq = last;
        for chunk in lines.chunks(200) {
            let mut sql =
                String::from("INSERT INTO agent_logs (task_id, seq, line, created_at) VALUES ");
            for k in 0..chunk.len() {
                if k > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("($1, ${}, ${}, $2)", 3 + 2 * k, 4 + 2 * k));
            }
            let mut q = sqlx::query(&sql).bind(task_id).bind(now);
            for line in chunk {
                seq += 1;
                q = q.bind(seq).bind(line);
            }
            q.execute(&mut *tx).await?;
        }
        let (event_id,): (i64,) = sqlx::query_as(
            "INSERT INTO task_events (task_id, project_id, kind, actor_kind, message, created_at) \
             VALUES ($1, $2, 'log', 'box', $3, $4) RETURNING id",
        )
        .bind(task_id)
        .bind(&project_id)
        .bind(seq.to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LogAppend {
            last_seq: seq,
            event_id,
            project_id,
        })
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
