//! The callback API (box → Apiary). A box authenticates with the callback token minted for it
//! at provisioning; the token is bound to one task and one box and dies at teardown. A token
//! used on another task answers 403; an unknown or revoked one 401. A box only moves its own
//! task, and only along the box rows of the table.

use apiary_core::{AgentStatus, Prompts};
use apiary_store::{Actor, TaskWrites, TransitionRequest};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::wire::{ErrorBody, ProjectOut, ReviewCommentOut, TaskOut};
use crate::AppState;

pub use apiary_core::callback::{
    ErrorIn, LogsIn, PrIn, SpecIn, StatusIn, MAX_LOG_LINES, MAX_LOG_LINE_BYTES,
};

/// A box, authenticated by its callback token.
pub struct BoxCaller {
    pub task_id: String,
    pub box_id: String,
}

impl FromRequestParts<AppState> for BoxCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("send the box's callback token as a bearer token")
            })?;
        let (task_id, box_id) = state
            .store
            .callback_token_task(token.trim())
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked callback token"))?;
        let per_s = state.limits.config.callbacks_per_s;
        if let Err(wait) = state.limits.hit(&format!("callback:{task_id}"), per_s) {
            return Err(ApiError::rate_limited(
                format!("this box sent more than {per_s} requests in a second; slow down"),
                wait,
            ));
        }
        Ok(BoxCaller { task_id, box_id })
    }
}

impl BoxCaller {
    /// Refuses a token of another task.
    fn own(&self, id: &str) -> ApiResult<()> {
        if self.task_id != id {
            return Err(ApiError::forbidden(
                "this callback token belongs to another task",
            ));
        }
        Ok(())
    }

    fn actor(&self) -> Actor {
        Actor::Box(if self.box_id.is_empty() {
            self.task_id.clone()
        } else {
            self.box_id.clone()
        })
    }
}

/// The prompts the box should use; a kind is absent when neither the project nor the global
/// settings set it (the box then uses its built-in default).
#[derive(Serialize, ToSchema, Default)]
pub struct ResolvedPrompts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revise: Option<String>,
}

/// Project override → global default → none; blank values fall through.
pub fn resolve_prompts(project: &Prompts, global: &Prompts) -> ResolvedPrompts {
    let pick = |p: &str, g: &str| {
        [p, g]
            .into_iter()
            .find(|v| !v.trim().is_empty())
            .map(str::to_string)
    };
    ResolvedPrompts {
        spec: pick(&project.spec, &global.spec),
        implement: pick(&project.implement, &global.implement),
        changes: pick(&project.changes, &global.changes),
        revise: pick(&project.revise, &global.revise),
    }
}

/// What a box reads about its task.
#[derive(Serialize, ToSchema)]
pub struct BoxTaskOut {
    pub task: TaskOut,
    pub project: ProjectOut,
    pub prompts: ResolvedPrompts,
    pub spec: Option<String>,
    /// Feedback for a spec revision, when one was asked for.
    pub feedback: Option<String>,
    /// The approver's note.
    pub note: Option<String>,
    /// The review comments of the current round.
    pub review_comments: Vec<ReviewCommentOut>,
    pub round: i64,
}

/// The task, its project, the resolved prompts, the spec and the pending review comments.
#[utoipa::path(get, path = "/api/v1/agent/tasks/{id}", tag = "callback",
    responses((status = 200, body = BoxTaskOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_box_task(
    State(state): State<AppState>,
    caller: BoxCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<BoxTaskOut>> {
    caller.own(&id)?;
    let task = state.store.get_task(&id).await?;
    let project = state.store.get_project(&task.project_id).await?;
    let global = state.store.settings().await?.prompts;
    let prompts = resolve_prompts(&project.agent.prompts, &global);
    let review_comments = state
        .store
        .review_comments(&id, task.round)
        .await?
        .into_iter()
        .map(ReviewCommentOut::from)
        .collect();
    Ok(Json(BoxTaskOut {
        spec: task.spec.clone(),
        feedback: task.spec_feedback.clone(),
        note: task.approve_note.clone(),
        round: task.round,
        review_comments,
        prompts,
        project: ProjectOut::new(project, apiary_core::ProjectAccess::Read),
        task: task.into(),
    }))
}

/// What a callback answers: the task's status now and whether this call changed it.
#[derive(Serialize, ToSchema)]
pub struct CallbackOut {
    pub status: String,
    pub changed: bool,
}

async fn box_transition(
    state: &AppState,
    caller: &BoxCaller,
    id: &str,
    to: AgentStatus,
    writes: TaskWrites,
    message: Option<String>,
    error: Option<String>,
) -> ApiResult<Json<CallbackOut>> {
    caller.own(id)?;
    let mut req = TransitionRequest::new(id, to, caller.actor()).with_writes(writes);
    req.message = message;
    req.error = error;
    let outcome = state.orch.transition(req).await?;
    Ok(Json(CallbackOut {
        status: outcome.to.as_str().into(),
        changed: outcome.changed,
    }))
}

/// Reports progress (e.g. `speccing` once the box is up).
#[utoipa::path(post, path = "/api/v1/agent/tasks/{id}/status", request_body = StatusIn, tag = "callback",
    responses((status = 200, body = CallbackOut), (status = 409, body = ErrorBody)))]
pub async fn post_status(
    State(state): State<AppState>,
    caller: BoxCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusIn>,
) -> ApiResult<Json<CallbackOut>> {
    let (to, message) = body.validate()?;
    box_transition(
        &state,
        &caller,
        &id,
        to,
        TaskWrites::default(),
        message,
        None,
    )
    .await
}

/// Submits the spec: the task waits for a human at `spec_ready`.
#[utoipa::path(post, path = "/api/v1/agent/tasks/{id}/spec", request_body = SpecIn, tag = "callback",
    responses((status = 200, body = CallbackOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn post_spec(
    State(state): State<AppState>,
    caller: BoxCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SpecIn>,
) -> ApiResult<Json<CallbackOut>> {
    let writes = TaskWrites {
        spec: Some(body.validate()?),
        ..Default::default()
    };
    box_transition(
        &state,
        &caller,
        &id,
        AgentStatus::SpecReady,
        writes,
        None,
        None,
    )
    .await
}

/// Submits the pull request: the task waits for a human at `pr_ready`.
#[utoipa::path(post, path = "/api/v1/agent/tasks/{id}/pr", request_body = PrIn, tag = "callback",
    responses((status = 200, body = CallbackOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn post_pr(
    State(state): State<AppState>,
    caller: BoxCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PrIn>,
) -> ApiResult<Json<CallbackOut>> {
    caller.own(&id)?;
    let pr = body.validate()?;
    let task = state.store.get_task(&id).await?;
    let own = task
        .branch
        .unwrap_or_else(|| apiary_core::boot::branch_name(&task.id, &task.title));
    pr.check_branch(&own)?;
    let writes = TaskWrites {
        pr_url: Some(pr.pr_url),
        branch: Some(pr.branch),
        checks: pr
            .checks
            .as_ref()
            .map(|c| serde_json::to_string(c).unwrap_or_default()),
        // A head whose checks failed is not ready for review: no PR_READY, the fix round (or
        // CHECKS_FAILING) follows at once.
        quiet: pr.checks.as_ref().is_some_and(|c| !c.passed()),
        ..Default::default()
    };
    let answer = box_transition(
        &state,
        &caller,
        &id,
        AgentStatus::PrReady,
        writes,
        pr.message,
        None,
    )
    .await?;
    // The check command failed on this head: the failures go back to the box as a fix round
    // (or, once the rounds are spent, to people).
    if answer.changed {
        match pr.checks.filter(|c| !c.passed()) {
            Some(report) => {
                apiary_orchestrator::fix::checks_failed(&state.orch, &id, &report).await?;
            }
            // On GitHub, CI may have finished while the box was still at work: look once.
            None => apiary_orchestrator::github::recheck_soon(&state.orch, &id).await?,
        }
    }
    Ok(answer)
}

/// Reports a failure: the task ends `failed` with the error kept.
#[utoipa::path(post, path = "/api/v1/agent/tasks/{id}/error", request_body = ErrorIn, tag = "callback",
    responses((status = 200, body = CallbackOut), (status = 409, body = ErrorBody)))]
pub async fn post_error(
    State(state): State<AppState>,
    caller: BoxCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ErrorIn>,
) -> ApiResult<Json<CallbackOut>> {
    let error = body.validate()?;
    box_transition(
        &state,
        &caller,
        &id,
        AgentStatus::Failed,
        TaskWrites::default(),
        None,
        Some(error),
    )
    .await
}

/// What a stored batch became.
#[derive(Serialize, ToSchema)]
pub struct LogsOut {
    /// Sequence number of the batch's last line.
    pub last_seq: i64,
}

/// Appends a batch of the agent's output lines.
#[utoipa::path(post, path = "/api/v1/agent/tasks/{id}/logs", request_body = LogsIn, tag = "callback",
    responses((status = 200, body = LogsOut), (status = 413, body = ErrorBody)))]
pub async fn post_logs(
    State(state): State<AppState>,
    caller: BoxCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LogsIn>,
) -> ApiResult<Json<LogsOut>> {
    caller.own(&id)?;
    let done = state.store.append_logs(&id, body.validate()?).await?;
    state
        .orch
        .publish_log(&id, &done.project_id, done.event_id, done.last_seq);
    Ok(Json(LogsOut {
        last_seq: done.last_seq,
    }))
}
