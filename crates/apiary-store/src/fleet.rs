//! The fleet at a glance (admins): every task that holds a box, waits parked or queued for
//! one, or failed lately, with its project and what it spent, in one read.

use crate::db::{flag, Store};
use crate::error::StoreResult;

/// A task as the fleet view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetTask {
    pub task_id: String,
    pub title: String,
    pub project_id: String,
    pub project_name: String,
    pub agent_status: String,
    pub box_id: Option<String>,
    /// The box is up (not torn down).
    pub box_live: bool,
    pub parked: bool,
    pub round: i64,
    pub attempt: i64,
    pub status_changed_at: i64,
    pub queued_at: Option<i64>,
    pub last_error: Option<String>,
    /// What the attempt spent through the model gateway, in millionths of a dollar.
    pub spent_micros: i64,
}

struct FleetRow {
    id: String,
    title: String,
    project_id: String,
    project_name: String,
    agent_status: String,
    box_id: Option<String>,
    box_torn_down: i64,
    parked: i64,
    round: i64,
    attempt: i64,
    status_changed_at: i64,
    queued_at: Option<i64>,
    last_error: Option<String>,
    gateway_spent_micros: i64,
}
from_row!(FleetRow {
    id,
    title,
    project_id,
    project_name,
    agent_status,
    box_id,
    box_torn_down,
    parked,
    round,
    attempt,
    status_changed_at,
    queued_at,
    last_error,
    gateway_spent_micros
});

impl Store {
    /// Tasks with a live box, parked, queued (in queue order), or failed since `failed_since`
    /// (newest first), at most 500 of each kind's sort.
    pub async fn fleet(&self, failed_since: i64) -> StoreResult<Vec<FleetTask>> {
        let rows = sqlx::query_as::<_, FleetRow>(
            "SELECT t.id, t.title, t.project_id, p.name AS project_name, t.agent_status, t.box_id, \
             t.box_torn_down, t.parked, t.round, t.attempt, t.status_changed_at, t.queued_at, \
             t.last_error, t.gateway_spent_micros FROM tasks t JOIN projects p ON p.id = t.project_id \
             WHERE t.box_torn_down = 0 OR t.parked = 1 OR t.agent_status = 'queued' \
             OR (t.agent_status = 'failed' AND t.status_changed_at >= $1) \
             ORDER BY CASE WHEN t.agent_status = 'queued' THEN t.queued_at ELSE -t.status_changed_at END, t.id \
             LIMIT 2000",
        )
        .bind(failed_since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| FleetTask {
                task_id: r.id,
                title: r.title,
                project_id: r.project_id,
                project_name: r.project_name,
                agent_status: r.agent_status,
                box_id: r.box_id,
                box_live: !flag(r.box_torn_down),
                parked: flag(r.parked),
                round: r.round,
                attempt: r.attempt,
                status_changed_at: r.status_changed_at,
                queued_at: r.queued_at,
                last_error: r.last_error,
                spent_micros: r.gateway_spent_micros,
            })
            .collect())
    }
}
