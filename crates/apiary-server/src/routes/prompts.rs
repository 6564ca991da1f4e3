//! What the box will be told: the rendered prompts of a task with where each came from, and
//! the admins' log of failed notification deliveries.

use apiary_core::boot::branch_name;
use apiary_core::prompts::{
    self, CommentCtx, ProjectCtx, PromptContext, PromptKind, PromptSource, TaskCtx,
};
use apiary_store::Task;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::routes::tasks::readable_task;
use crate::wire::{rfc3339, ErrorBody};
use crate::AppState;

/// One prompt as the box will get it.
#[derive(Serialize, ToSchema)]
pub struct RenderedPrompt {
    /// `spec`, `revise`, `implement` or `changes`.
    pub kind: String,
    /// `project`, `global` or `built_in`.
    pub source: String,
    pub template: String,
    /// The template rendered over the task as it is now (absent when rendering failed).
    pub rendered: Option<String>,
    pub error: Option<String>,
}

/// The context templates render over, from a task as it is now.
pub async fn prompt_context(state: &AppState, task: &Task) -> ApiResult<PromptContext> {
    let project = state.store.get_project(&task.project_id).await?;
    let comments = state
        .store
        .review_comments(&task.id, task.round)
        .await?
        .into_iter()
        .map(|c| CommentCtx {
            author: c.author_name,
            body: c.body,
            path: c.path,
            line: c.line,
        })
        .collect();
    Ok(PromptContext {
        task: TaskCtx {
            id: task.id.clone(),
            title: task.title.clone(),
            description: task.description.clone(),
        },
        project: ProjectCtx { name: project.name },
        spec: task.spec.clone().unwrap_or_default(),
        feedback: task.spec_feedback.clone().unwrap_or_default(),
        note: task.approve_note.clone().unwrap_or_default(),
        comments,
        round: task.round,
        branch: task
            .branch
            .clone()
            .unwrap_or_else(|| branch_name(&task.id, &task.title)),
    })
}

/// The four prompts of a task, rendered, each with its source.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/agent/prompts", tag = "agent",
    responses((status = 200, body = [RenderedPrompt]), (status = 404, body = ErrorBody)))]
pub async fn list_prompts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<RenderedPrompt>>> {
    let task = readable_task(&state, &caller, &id).await?;
    let project = state.store.get_project(&task.project_id).await?;
    let global = state.store.settings().await?.prompts;
    let ctx = prompt_context(&state, &task).await?;
    let out = PromptKind::ALL
        .into_iter()
        .map(|kind| {
            let (template, source) = prompts::resolve(kind, &project.agent.prompts, &global);
            let rendered = prompts::render(template, &ctx);
            RenderedPrompt {
                kind: kind.as_str().into(),
                source: match source {
                    PromptSource::Project => "project",
                    PromptSource::Global => "global",
                    PromptSource::BuiltIn => "built_in",
                }
                .into(),
                template: template.to_string(),
                error: rendered.as_ref().err().cloned(),
                rendered: rendered.ok(),
            }
        })
        .collect();
    Ok(Json(out))
}

/// One failed delivery.
#[derive(Serialize, ToSchema)]
pub struct NotificationErrorOut {
    pub id: i64,
    pub channel: String,
    pub event: String,
    pub task_id: Option<String>,
    pub status_code: Option<i64>,
    /// The channel's answer (Telegram's error body, for instance).
    pub body: Option<String>,
    pub error: String,
    pub created_at: String,
}

/// The newest failed notification deliveries (admins).
#[utoipa::path(get, path = "/api/v1/notifications/errors", tag = "settings",
    responses((status = 200, body = [NotificationErrorOut]), (status = 403, body = ErrorBody)))]
pub async fn list_notification_errors(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<NotificationErrorOut>>> {
    caller.require_admin()?;
    Ok(Json(
        state
            .store
            .notification_errors(200)
            .await?
            .into_iter()
            .map(|e| NotificationErrorOut {
                id: e.id,
                channel: e.channel,
                event: e.event,
                task_id: e.task_id,
                status_code: e.status_code,
                body: e.body,
                error: e.error,
                created_at: rfc3339(e.created_at),
            })
            .collect(),
    ))
}

/// The prompts a project override falls back to, per kind.
#[derive(Serialize, ToSchema)]
pub struct PromptDefaults {
    /// The global defaults (blank when unset).
    pub global: crate::wire::PromptsIo,
    /// The box's built-in defaults.
    pub built_in: crate::wire::PromptsIo,
}

/// What a project's prompt overrides fall back to (any signed-in user; no secrets here).
#[utoipa::path(get, path = "/api/v1/prompts/defaults", tag = "agent", responses((status = 200, body = PromptDefaults)))]
pub async fn get_prompt_defaults(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<PromptDefaults>> {
    let b = |k| prompts::builtin(k).to_string();
    Ok(Json(PromptDefaults {
        global: state.store.settings().await?.prompts.into(),
        built_in: crate::wire::PromptsIo {
            spec: b(PromptKind::Spec),
            implement: b(PromptKind::Implement),
            changes: b(PromptKind::Changes),
            revise: b(PromptKind::Revise),
        },
    }))
}
