//! The fleet view (admins): boxes running, parked and queued against the cap, with task,
//! phase, age, provider and host, and the failures of the last 24 hours.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::wire::{rfc3339, ErrorBody};
use crate::AppState;

/// How far back failures are listed.
const FAILURES_MS: i64 = 24 * 3600 * 1000;

/// One task in the fleet view.
#[derive(Serialize, ToSchema, Clone)]
pub struct FleetTaskOut {
    pub task_id: String,
    pub title: String,
    pub project_id: String,
    pub project_name: String,
    /// The agent status: the phase the box is in.
    pub status: String,
    pub box_id: Option<String>,
    pub round: i64,
    pub attempt: i64,
    /// When the task entered its current status.
    pub since: String,
    /// When this attempt was queued.
    pub queued_at: Option<String>,
    /// 1-based place in the queue while queued.
    pub queue_position: Option<i64>,
    pub last_error: Option<String>,
    /// Spent through the model gateway in this attempt, in US dollars.
    pub spent_usd: f64,
}

/// The fleet at a glance.
#[derive(Serialize, ToSchema)]
pub struct FleetOut {
    /// `max_concurrent_boxes`.
    pub cap: u32,
    /// `local` or `remote`.
    pub provider: String,
    /// Where boxes run: `this host`, or the Box Host URL.
    pub host: String,
    /// Tasks whose box is up.
    pub running: Vec<FleetTaskOut>,
    /// Tasks waiting on a person with their box taken away (resumed on the next action).
    pub parked: Vec<FleetTaskOut>,
    /// Tasks waiting for a box, first in line first.
    pub queued: Vec<FleetTaskOut>,
    /// Tasks that failed in the last 24 hours, newest first (one whose box is still up for
    /// the grace period is in `running` too).
    pub failures: Vec<FleetTaskOut>,
}

/// Boxes running, parked and queued, and the last day's failures (admins).
#[utoipa::path(get, path = "/api/v1/fleet", tag = "settings",
    responses((status = 200, body = FleetOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_fleet(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<FleetOut>> {
    caller.require_admin()?;
    let s = state.store.settings().await?;
    let mut out = FleetOut {
        cap: s.max_concurrent_boxes,
        host: if s.box_provider == "remote" {
            s.box_host_url.clone()
        } else {
            "this host".into()
        },
        provider: s.box_provider,
        running: Vec::new(),
        parked: Vec::new(),
        queued: Vec::new(),
        failures: Vec::new(),
    };
    let tasks = state.store.fleet(state.store.now() - FAILURES_MS).await?;
    for t in tasks {
        let queued = t.agent_status == "queued";
        let wire = FleetTaskOut {
            queue_position: queued.then_some(out.queued.len() as i64 + 1),
            task_id: t.task_id,
            title: t.title,
            project_id: t.project_id,
            project_name: t.project_name,
            status: t.agent_status.clone(),
            box_id: t.box_id,
            round: t.round,
            attempt: t.attempt,
            since: rfc3339(t.status_changed_at),
            queued_at: t.queued_at.map(rfc3339),
            last_error: t.last_error,
            spent_usd: t.spent_micros as f64 / 1e6,
        };
        // A failed task's box lives on for the grace period: it is running and a failure.
        if t.agent_status == "failed" {
            out.failures.push(wire.clone());
        }
        if t.box_live {
            out.running.push(wire);
        } else if queued {
            out.queued.push(wire);
        } else if t.parked {
            out.parked.push(wire);
        }
    }
    Ok(Json(out))
}
