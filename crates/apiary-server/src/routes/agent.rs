//! Human agent actions and the agent log.

use apiary_core::{AgentStatus, Role};
use apiary_orchestrator::forge::{self, ForgeError};
use apiary_store::{Actor, NewReviewComment, TaskWrites, TransitionRequest};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::routes::tasks::{readable_task, writable_task};
use crate::wire::{rfc3339, ErrorBody, LogLineOut, LogPage, SpecRevisionOut, TransitionOut};
use crate::AppState;

/// Limits on what a reviewer sends the box.
const MAX_TEXT: usize = 20_000;
const MAX_REVIEW_COMMENTS: usize = 200;

/// `approve-spec` body.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproveIn {
    pub note: Option<String>,
}

/// `revise-spec` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviseIn {
    pub feedback: String,
}

/// One review comment, optionally anchored to a file line.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewCommentIn {
    pub body: String,
    pub path: Option<String>,
    pub line: Option<i64>,
}

/// `request-changes` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestChangesIn {
    pub comments: Vec<ReviewCommentIn>,
}

/// Runs a human action: reviewer check, write access, the transition (with what it carries),
/// publish after commit, and the task as it now is.
async fn act(
    state: &AppState,
    caller: &Caller,
    id: &str,
    to: AgentStatus,
    writes: TaskWrites,
    message: Option<String>,
) -> ApiResult<Json<TransitionOut>> {
    reviewer(caller)?;
    let task = writable_task(state, caller, id).await?;
    require_box_for_resume(state, &task, to).await?;
    let mut req =
        TransitionRequest::new(id, to, Actor::Human(caller.user.id.clone())).with_writes(writes);
    req.message = message;
    req.via = caller.via();
    req.after_event = caller.chat_event();
    let outcome = state.orch.transition(req).await?;
    Ok(Json(TransitionOut {
        task: state.store.get_task(id).await?.into(),
        changed: outcome.changed,
    }))
}

fn check_text(field: &str, v: &str, required: bool) -> ApiResult<()> {
    if required && v.trim().is_empty() {
        return Err(ApiError::bad_request(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if v.len() > MAX_TEXT {
        return Err(ApiError::bad_request(
            field,
            format!("{field} must be at most {MAX_TEXT} bytes"),
        ));
    }
    Ok(())
}

/// Approves the spec; the box is told to implement it.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/approve-spec", request_body = ApproveIn, tag = "agent",
    responses((status = 200, body = TransitionOut), (status = 409, body = ErrorBody)))]
pub async fn approve_spec(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ApproveIn>,
) -> ApiResult<Json<TransitionOut>> {
    if let Some(n) = &body.note {
        check_text("note", n, false)?;
    }
    let writes = TaskWrites {
        note: body.note.clone(),
        ..Default::default()
    };
    act(
        &state,
        &caller,
        &id,
        AgentStatus::SpecApproved,
        writes,
        body.note,
    )
    .await
}

/// Sends the spec back to the box with feedback.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/revise-spec", request_body = ReviseIn, tag = "agent",
    responses((status = 200, body = TransitionOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revise_spec(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReviseIn>,
) -> ApiResult<Json<TransitionOut>> {
    check_text("feedback", &body.feedback, true)?;
    let writes = TaskWrites {
        feedback: Some(body.feedback.clone()),
        ..Default::default()
    };
    act(
        &state,
        &caller,
        &id,
        AgentStatus::Speccing,
        writes,
        Some(body.feedback),
    )
    .await
}

/// Requests changes on the PR; the comments go to the box for the next round.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/request-changes", request_body = RequestChangesIn, tag = "agent",
    responses((status = 200, body = TransitionOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn request_changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RequestChangesIn>,
) -> ApiResult<Json<TransitionOut>> {
    if body.comments.is_empty() || body.comments.len() > MAX_REVIEW_COMMENTS {
        return Err(ApiError::bad_request(
            "comments",
            format!("comments must hold 1 to {MAX_REVIEW_COMMENTS} comments"),
        ));
    }
    let mut review = Vec::new();
    for c in body.comments {
        check_text("comments.body", &c.body, true)?;
        if c.path
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > 1000)
        {
            return Err(ApiError::bad_request(
                "comments.path",
                "comments.path must be 1 to 1000 bytes",
            ));
        }
        if c.line.is_some_and(|l| l < 1) {
            return Err(ApiError::bad_request(
                "comments.line",
                "comments.line must be 1 or more",
            ));
        }
        review.push(NewReviewComment {
            author_id: Some(caller.user.id.clone()),
            author_name: None,
            body: c.body,
            path: c.path,
            line: c.line,
        });
    }
    let n = review.len();
    let writes = TaskWrites {
        review_comments: review,
        ..Default::default()
    };
    act(
        &state,
        &caller,
        &id,
        AgentStatus::ChangesRequested,
        writes,
        Some(format!("{n} review comment(s)")),
    )
    .await
}

/// `message` body: a follow-up for the running agent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpIn {
    pub text: String,
}

/// Where a follow-up went.
#[derive(serde::Serialize, ToSchema)]
pub struct FollowUpOut {
    /// Messages waiting in the box for the agent's next turn, this one included.
    pub waiting: i64,
}

/// Sends the running agent a message it gets at its next turn (while the box works on the
/// spec or the implementation); it shows in the log and the audit trail.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/message", request_body = FollowUpIn, tag = "agent",
    responses((status = 202, body = FollowUpOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FollowUpIn>,
) -> ApiResult<(axum::http::StatusCode, Json<FollowUpOut>)> {
    reviewer(&caller)?;
    check_text("text", &body.text, true)?;
    let task = writable_task(&state, &caller, &id).await?;
    if !box_is_working(task.agent_status) || task.agent_status == AgentStatus::Provisioning {
        let mut e = ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "not_working",
            format!(
                "the agent is not working on the task (status {}): a message reaches it while it writes the spec or implements; review it instead",
                task.agent_status
            ),
        );
        e.extra = json!({ "current": task.agent_status });
        return Err(e);
    }
    let waiting = apiary_orchestrator::dispatch::send_follow_up(
        &state.orch,
        &task,
        &caller.user.name,
        &body.text,
    )
    .await
    .map_err(|m| ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "box_unreachable", m))?;
    state
        .store
        .record_follow_up(&task, &caller.user.id, &body.text)
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(FollowUpOut { waiting }),
    ))
}

/// Marks the PR merged; the box is torn down.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/mark-merged", tag = "agent",
    responses((status = 200, body = TransitionOut), (status = 409, body = ErrorBody)))]
pub async fn mark_merged(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TransitionOut>> {
    reviewer(&caller)?;
    let task = writable_task(&state, &caller, &id).await?;
    let project = state.store.get_project(&task.project_id).await?;
    // On the local forge the merge is real: the branch goes into the base branch first, and a
    // conflict refuses the action with nothing changed.
    if let (AgentStatus::PrReady, "local", Some(branch)) = (
        task.agent_status,
        project.agent.forge.as_str(),
        &task.branch,
    ) {
        let message = format!("Merge {branch}: {} (task {})", task.title, task.id);
        match forge::merge(
            &project.agent.repo_url,
            &project.agent.base_branch,
            branch,
            &message,
        )
        .await
        {
            Ok(_) => {}
            Err(ForgeError::Conflict(detail)) => {
                let mut e = ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "merge_conflict",
                    format!(
                        "{branch} does not merge cleanly into {}; nothing was changed",
                        project.agent.base_branch
                    ),
                );
                e.extra = json!({ "detail": detail });
                return Err(e);
            }
            Err(ForgeError::Git(m)) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_GATEWAY,
                    "merge_failed",
                    m,
                ));
            }
        }
    }
    act(
        &state,
        &caller,
        &id,
        AgentStatus::Merged,
        TaskWrites::default(),
        None,
    )
    .await
}

/// One file of a box's workspace.
#[derive(serde::Serialize, serde::Deserialize, ToSchema)]
pub struct CodeEntryOut {
    /// Relative to the workspace.
    pub path: String,
    pub size: u64,
    /// `file` or `link` (links are listed, never read).
    pub kind: String,
    /// How it differs from the base: `branch` (committed on the box's branch), `uncommitted`,
    /// `added` (new, not committed), or null.
    pub change: Option<String>,
}

/// The workspace of the task's box as it is now.
#[derive(serde::Serialize, serde::Deserialize, ToSchema)]
pub struct CodeTreeOut {
    pub files: Vec<CodeEntryOut>,
    /// More files than listed (5000 at most).
    pub truncated: bool,
}

/// One file of the box's workspace.
#[derive(serde::Serialize, serde::Deserialize, ToSchema)]
pub struct CodeFileOut {
    pub path: String,
    /// The text (up to 1 MiB); null for a binary file.
    pub text: Option<String>,
    pub size: u64,
    pub truncated: bool,
    pub change: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct CodeFileQuery {
    /// Relative to the workspace.
    pub path: String,
}

/// Asks the task's box for `path` of its control plane (the code view, the preview's state); a
/// box that is not there says why.
async fn box_code<T: serde::de::DeserializeOwned>(
    state: &AppState,
    task: &apiary_store::Task,
    path: &str,
) -> ApiResult<T> {
    use axum::http::StatusCode;
    if task.parked {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "box_parked",
            "the box is parked — it resumes on your next action",
        ));
    }
    if task.box_torn_down || task.control_url.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_box",
            "the task has no box now (not started yet, or torn down)",
        ));
    }
    let (status, body) = apiary_orchestrator::dispatch::box_call(&state.orch, task, path, None)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "box_unreachable", e))?;
    if !(200..300).contains(&status) {
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("the box refused")
            .to_string();
        let status = match status {
            400 | 404 => StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            _ => StatusCode::BAD_GATEWAY,
        };
        return Err(ApiError::new(status, "box_refused", message));
    }
    serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "box_answer",
            format!("the box answered something unreadable: {e}"),
        )
    })
}

/// What the task's site preview is doing.
#[derive(serde::Serialize, serde::Deserialize, ToSchema)]
pub struct PreviewOut {
    /// `off` (none runs: the project sets none, or a round is working), `starting`, `ready`
    /// or `down`.
    pub state: String,
    /// Why it is down (it exited, or never answered its readiness path).
    pub detail: String,
}

/// The state of the task's site preview, from its box (the Site link says it).
#[utoipa::path(get, path = "/api/v1/tasks/{id}/agent/preview", tag = "agent",
    responses((status = 200, body = PreviewOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn get_preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PreviewOut>> {
    let task = readable_task(&state, &caller, &id).await?;
    box_code(&state, &task, "/preview").await.map(Json)
}

/// The files of the task's box's workspace, marked with how they differ from the base.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/agent/code/tree", tag = "agent",
    responses((status = 200, body = CodeTreeOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn code_tree(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CodeTreeOut>> {
    let task = readable_task(&state, &caller, &id).await?;
    box_code(&state, &task, "/code/tree").await.map(Json)
}

/// One file of the task's box's workspace, read-only (no link followed).
#[utoipa::path(get, path = "/api/v1/tasks/{id}/agent/code/file", tag = "agent", params(CodeFileQuery),
    responses((status = 200, body = CodeFileOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn code_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<CodeFileQuery>,
) -> ApiResult<Json<CodeFileOut>> {
    let task = readable_task(&state, &caller, &id).await?;
    if q.path.is_empty() || q.path.len() > 4096 {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_path",
            "path: 1 to 4096 characters, relative to the workspace",
        ));
    }
    let query: String =
        serde_urlencoded::to_string([("path", q.path.as_str())]).unwrap_or_default();
    box_code(&state, &task, &format!("/code/file?{query}"))
        .await
        .map(Json)
}

/// The change under review on the local forge.
#[derive(serde::Serialize, ToSchema)]
pub struct DiffOut {
    pub base: String,
    pub branch: String,
    /// Unified diff of base...branch.
    pub diff: String,
}

/// The diff `base...branch` of the task's PR on the local forge.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/agent/diff", tag = "agent",
    responses((status = 200, body = DiffOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn get_diff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DiffOut>> {
    let task = readable_task(&state, &caller, &id).await?;
    let project = state.store.get_project(&task.project_id).await?;
    let Some(branch) = task.branch.clone() else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "no_branch",
            "the box has not pushed a branch yet",
        ));
    };
    if project.agent.forge != "local" {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "not_local_forge",
            "the diff is on the project's forge",
        ));
    }
    let base = project.agent.base_branch.clone();
    let diff = forge::diff(&project.agent.repo_url, &base, &branch)
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "git_failed",
                e.to_string(),
            )
        })?;
    Ok(Json(DiffOut { base, branch, diff }))
}

/// Retries a failed task on a fresh box.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/retry", tag = "agent",
    responses((status = 200, body = TransitionOut), (status = 409, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TransitionOut>> {
    // Authorization first: a refused caller learns nothing about the task's state.
    reviewer(&caller)?;
    let task = writable_task(&state, &caller, &id).await?;
    if task.agent_status != AgentStatus::Failed {
        return Err(crate::error::ApiError::from(
            apiary_store::StoreError::InvalidTransition {
                from: task.agent_status,
                to: AgentStatus::Queued,
                actor: apiary_core::ActorKind::Human,
                allowed: apiary_core::allowed_targets(
                    task.agent_status,
                    apiary_core::ActorKind::Human,
                ),
            },
        ));
    }
    require_agent_on(&state, &task.project_id).await?;
    act(
        &state,
        &caller,
        &id,
        AgentStatus::Queued,
        TaskWrites::default(),
        Some("retry".into()),
    )
    .await
}

/// Stops the agent's work on the task; the box is torn down.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/cancel", tag = "agent",
    responses((status = 200, body = TransitionOut), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TransitionOut>> {
    act(
        &state,
        &caller,
        &id,
        AgentStatus::Cancelled,
        TaskWrites::default(),
        None,
    )
    .await
}

/// Whether the box is busy with the task (being made, writing the spec, implementing, or
/// about to be told to): a teardown then is refused.
fn box_is_working(status: AgentStatus) -> bool {
    matches!(
        status,
        AgentStatus::Provisioning
            | AgentStatus::Speccing
            | AgentStatus::SpecApproved
            | AgentStatus::Implementing
            | AgentStatus::ChangesRequested
    )
}

/// Destroys the task's box now and keeps its status (a box waiting on a human is parked);
/// refused (409 `box_working`) while the box works on the task.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/agent/teardown", tag = "agent",
    responses((status = 202, body = TransitionOut), (status = 409, body = ErrorBody)))]
pub async fn teardown(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(axum::http::StatusCode, Json<TransitionOut>)> {
    reviewer(&caller)?;
    let task = writable_task(&state, &caller, &id).await?;
    if box_is_working(task.agent_status) {
        // Taking the box away now would leave the task waiting out its phase budget.
        let mut e = ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "box_working",
            format!(
                "the box is working on the task (status {}); tear it down once it waits on you \
                 (spec_ready, pr_ready) or has failed, or cancel the task to stop it now",
                task.agent_status
            ),
        );
        e.extra = json!({ "current": task.agent_status });
        return Err(e);
    }
    state
        .store
        .enqueue(
            apiary_store::NewJob::new(
                "teardown",
                json!({ "task_id": task.id, "requested_by": caller.user.id }),
            )
            .for_task(&task.id),
        )
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(TransitionOut {
            task: task.into(),
            changed: false,
        }),
    ))
}

/// Every spec the box submitted, with the feedback that asked for each.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/agent/spec-revisions", tag = "agent", responses((status = 200, body = [SpecRevisionOut])))]
pub async fn list_spec_revisions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SpecRevisionOut>>> {
    readable_task(&state, &caller, &id).await?;
    Ok(Json(
        state
            .store
            .spec_revisions(&id)
            .await?
            .into_iter()
            .map(SpecRevisionOut::from)
            .collect(),
    ))
}

/// Refuses the Agent user: it is never a reviewer.
fn reviewer(caller: &Caller) -> ApiResult<()> {
    if caller.user.role == Role::Agent {
        return Err(ApiError::forbidden(
            "the Agent user cannot act as a reviewer",
        ));
    }
    Ok(())
}

/// Refuses to queue work nothing would pick up: with the kill switch off or the project's
/// agent disabled a hand-off would wait in `queued` for ever (409 saying what is off).
pub async fn require_agent_on(state: &AppState, project_id: &str) -> ApiResult<()> {
    let settings = state.store.settings().await?;
    if !settings.agent_orchestration_enabled {
        let mut e = ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "orchestration_off",
            "agent orchestration is off (the agent_orchestration_enabled setting): nothing is provisioned, so the task would wait for ever; an admin turns it on in the settings",
        );
        e.extra = json!({ "field": "agent_orchestration_enabled" });
        return Err(e);
    }
    let project = state.store.get_project(project_id).await?;
    if !project.agent.enabled {
        let mut e = ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "agent_disabled",
            "the project's agent is disabled (agent.enabled): nothing is provisioned for it, so the task would wait for ever; enable it in the project's agent settings",
        );
        e.extra = json!({ "field": "agent.enabled" });
        return Err(e);
    }
    Ok(())
}

/// Whether a hand-off from `status` queues the task (rather than being a no-op or a 409).
pub fn hand_off_queues(status: AgentStatus) -> bool {
    matches!(
        status,
        AgentStatus::None | AgentStatus::Cancelled | AgentStatus::Merged | AgentStatus::Failed
    )
}

/// A parked task (its box taken away while it waited on a human) needs a fresh box for the
/// action that moves it to `to`: refused while the kill switch or the project's agent is off,
/// or while every box of `max_concurrent_boxes` is taken.
async fn require_box_for_resume(
    state: &AppState,
    task: &apiary_store::Task,
    to: AgentStatus,
) -> ApiResult<()> {
    let resumes = matches!(
        to,
        AgentStatus::SpecApproved | AgentStatus::Speccing | AgentStatus::ChangesRequested
    );
    if !resumes
        || !task.box_torn_down
        || !apiary_core::allowed_targets(task.agent_status, apiary_core::ActorKind::Human)
            .contains(&to)
    {
        return Ok(());
    }
    require_agent_on(state, &task.project_id).await?;
    let cap = state.store.settings().await?.max_concurrent_boxes;
    if state.store.live_box_count().await? >= i64::from(cap) {
        let mut e = ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "no_free_box",
            format!("this task's box was parked and all {cap} boxes (max_concurrent_boxes) are taken; try again when one is free"),
        );
        e.extra = json!({ "field": "max_concurrent_boxes" });
        return Err(e);
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
    let task = writable_task(&state, &caller, &id).await?;
    if hand_off_queues(task.agent_status) {
        require_agent_on(&state, &task.project_id).await?;
    }
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
    /// Instead, return the lines just before this sequence number (paging back from the tail;
    /// a large number gives the newest lines).
    pub before: Option<i64>,
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
    let lines = match q.before {
        Some(before) => state.store.list_logs_before(&id, before, limit).await?,
        None => state.store.list_logs(&id, q.after, limit).await?,
    };
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
