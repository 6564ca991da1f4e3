//! Human agent actions and the agent log.

use apiary_core::Role;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::tasks::{readable_task, writable_task};
use crate::wire::{rfc3339, ErrorBody, LogLineOut, LogPage, TransitionOut};
use crate::AppState;

/// Refuses the Agent user: it is never a reviewer.
fn reviewer(caller: &Caller) -> ApiResult<()> {
    if caller.user.role == Role::Agent {
        return Err(ApiError::forbidden(
            "the Agent user cannot act as a reviewer",
        ));
    }
    Ok(())
}

/// Hands the task to the agent (the same path as assigning it to the Agent user).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/handoff", tag = "agent",
    responses((status = 200, body = TransitionOut), (status = 409, body = ErrorBody)))]
pub async fn handoff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TransitionOut>> {
    reviewer(&caller)?;
    writable_task(&state, &caller, &id).await?;
    let outcome = state.store.hand_off(&id, &caller.user).await?;
    state.orch.publish(&outcome);
    Ok(Json(TransitionOut {
        task: state.store.get_task(&id).await?.into(),
        changed: outcome.changed,
    }))
}

/// Paging through the agent log.
#[derive(Deserialize, IntoParams)]
pub struct LogQuery {
    /// Return lines after this sequence number (0 for the start).
    #[serde(default)]
    pub after: i64,
    /// At most this many lines (1 to 1000, default 200).
    pub limit: Option<i64>,
}

/// The box's output, in order.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/agent/logs", tag = "agent", params(LogQuery),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody)))]
pub async fn list_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<LogPage>> {
    readable_task(&state, &caller, &id).await?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    if q.after < 0 {
        return Err(ApiError::bad_request("after", "after must be 0 or more"));
    }
    let lines = state.store.list_logs(&id, q.after, limit).await?;
    let next_after = lines.last().map(|l| l.seq).unwrap_or(q.after);
    Ok(Json(LogPage {
        lines: lines
            .into_iter()
            .map(|l| LogLineOut {
                seq: l.seq,
                line: l.line,
                created_at: rfc3339(l.created_at),
            })
            .collect(),
        next_after,
    }))
}
