//! The audit trail: one row per transition or notable action, never updated.

use crate::db::Store;
use crate::error::StoreResult;

/// One audit event. Its id orders events and doubles as the live event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    pub id: i64,
    pub task_id: String,
    pub project_id: String,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub message: Option<String>,
    /// The chat a human acted from (`telegram`, `slack`); none for the web and the API.
    pub via: Option<String>,
    pub created_at: i64,
}
from_row!(TaskEvent {
    id,
    task_id,
    project_id,
    kind,
    from_status,
    to_status,
    actor_kind,
    actor_id,
    message,
    via,
    created_at
});

const EVENT_COLS: &str = "id, task_id, project_id, kind, from_status, to_status, actor_kind, actor_id, message, via, created_at";

impl Store {
    /// A task's audit trail (without log batches), oldest first.
    pub async fn list_task_events(&self, task_id: &str) -> StoreResult<Vec<TaskEvent>> {
        Ok(sqlx::query_as::<_, TaskEvent>(&format!(
            "SELECT {EVENT_COLS} FROM task_events WHERE task_id = $1 AND kind <> 'log' ORDER BY id"
        ))
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every event after `after_id`, oldest first, at most `limit` (for catching up a live stream).
    pub async fn events_after(&self, after_id: i64, limit: i64) -> StoreResult<Vec<TaskEvent>> {
        Ok(sqlx::query_as::<_, TaskEvent>(&format!(
            "SELECT {EVENT_COLS} FROM task_events WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest event id (0 when there is none): where a new live stream starts.
    pub async fn latest_event_id(&self) -> StoreResult<i64> {
        let (id,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM task_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }

    /// Records a reviewer's follow-up message to the running agent in the audit trail.
    pub async fn record_follow_up(
        &self,
        task: &crate::tasks::Task,
        user_id: &str,
        text: &str,
    ) -> StoreResult<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO task_events (task_id, project_id, kind, actor_kind, actor_id, message, created_at) \
             VALUES ($1, $2, 'message', 'human', $3, $4, $5) RETURNING id",
        )
        .bind(&task.id)
        .bind(&task.project_id)
        .bind(user_id)
        .bind(text)
        .bind(self.now())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Records a person moving a task's card to another column (the audit trail, and the
    /// live event that moves it on everyone's board).
    pub async fn record_board_move(
        &self,
        task: &crate::tasks::Task,
        from: apiary_core::BoardStatus,
        user_id: &str,
    ) -> StoreResult<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO task_events (task_id, project_id, kind, from_status, to_status, actor_kind, actor_id, created_at) \
             VALUES ($1, $2, 'board', $3, $4, 'human', $5, $6) RETURNING id",
        )
        .bind(&task.id)
        .bind(&task.project_id)
        .bind(from.as_str())
        .bind(task.status.as_str())
        .bind(user_id)
        .bind(self.now())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }
}
