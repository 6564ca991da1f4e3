//! What the watchdog reads (only non-terminal tasks and boxes not yet torn down, through the
//! partial indexes `tasks_active` and `tasks_live_boxes`) and the lease that lets one replica
//! at a time run a pass.

use apiary_core::AgentStatus;

use crate::db::{flag, Store};
use crate::error::StoreResult;

/// A task as the watchdog sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedTask {
    pub id: String,
    pub agent_status: AgentStatus,
    pub box_id: Option<String>,
    pub box_torn_down: bool,
    pub status_changed_at: i64,
}

struct WatchRow {
    id: String,
    agent_status: String,
    box_id: Option<String>,
    box_torn_down: i64,
    status_changed_at: i64,
}
from_row!(WatchRow {
    id,
    agent_status,
    box_id,
    box_torn_down,
    status_changed_at
});

impl From<WatchRow> for WatchedTask {
    fn from(r: WatchRow) -> Self {
        WatchedTask {
            id: r.id,
            agent_status: r.agent_status.parse().unwrap_or(AgentStatus::None),
            box_id: r.box_id,
            box_torn_down: flag(r.box_torn_down),
            status_changed_at: r.status_changed_at,
        }
    }
}

impl Store {
    /// Agent-managed tasks that are not terminal (the `tasks_active` index).
    pub async fn active_tasks(&self) -> StoreResult<Vec<WatchedTask>> {
        Ok(sqlx::query_as::<_, WatchRow>(
            "SELECT id, agent_status, box_id, box_torn_down, status_changed_at FROM tasks \
             WHERE agent_status NOT IN ('none', 'merged', 'cancelled')",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(WatchedTask::from)
        .collect())
    }

    /// Tasks whose box still exists although they no longer need it (the `tasks_live_boxes` index).
    pub async fn finished_tasks_with_boxes(&self) -> StoreResult<Vec<WatchedTask>> {
        Ok(sqlx::query_as::<_, WatchRow>(
            "SELECT id, agent_status, box_id, box_torn_down, status_changed_at FROM tasks \
             WHERE box_torn_down = 0 AND agent_status IN ('none', 'merged', 'cancelled')",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(WatchedTask::from)
        .collect())
    }

    /// The box id each task with a live box holds (to tell orphans at the provider).
    pub async fn live_box_ids(&self) -> StoreResult<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, box_id FROM tasks WHERE box_torn_down = 0 AND box_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes (or renews) the lease `name` for `holder` until now + `ttl_ms`; `false` while
    /// another holder's lease is still valid.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        let now = self.now();
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE leases.holder = excluded.holder OR leases.until_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease back early (end of a pass).
    pub async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
