//! Tasks, their comments and their audit trail.

use apiary_store::{NewTask, Task, TaskPatch};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::json::ApiJson;
use crate::wire::{CommentIn, CommentOut, ErrorBody, TaskEventOut, TaskIn, TaskOut, TaskPatchIn};
use crate::AppState;

/// Loads a task the caller may see (404 otherwise).
pub async fn readable_task(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Task> {
    let task = state.store.get_task(id).await?;
    caller
        .readable_project(state, &task.project_id)
        .await
        .map_err(|_| crate::error::ApiError::not_found("task"))?;
    Ok(task)
}

/// Loads a task the caller may change (404 when invisible, 403 when read-only).
pub async fn writable_task(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Task> {
    let task = readable_task(state, caller, id).await?;
    caller.writable_project(state, &task.project_id).await?;
    Ok(task)
}

/// The tasks of a project.
#[utoipa::path(get, path = "/api/v1/projects/{id}/tasks", tag = "tasks",
    responses((status = 200, body = [TaskOut]), (status = 404, body = ErrorBody)))]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TaskOut>>> {
    caller.readable_project(&state, &id).await?;
    Ok(Json(
        state
            .store
            .list_tasks(&id)
            .await?
            .into_iter()
            .map(TaskOut::from)
            .collect(),
    ))
}

/// Creates a task; assigning it to the Agent user hands it over.
#[utoipa::path(post, path = "/api/v1/projects/{id}/tasks", request_body = TaskIn, tag = "tasks",
    responses((status = 201, body = TaskOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TaskIn>,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    caller.writable_project(&state, &id).await?;
    if let Some(a) = &body.assignee_id {
        if *a == state.store.agent_user().await?.id {
            crate::routes::agent::require_agent_on(&state, &id).await?;
        }
    }
    let (task, outcome) = state
        .store
        .create_task(
            &id,
            NewTask {
                title: body.title,
                description: body.description,
                status: body.status,
                assignee_id: body.assignee_id,
            },
            &caller.user,
        )
        .await?;
    if let Some(o) = outcome {
        state.orch.publish(&o);
    }
    Ok((StatusCode::CREATED, Json(task.into())))
}

/// One task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody)))]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(readable_task(&state, &caller, &id).await?.into()))
}

/// Edits the board fields. `agent_status` is not among them: only the transition function
/// writes it. Assigning to the Agent user hands the task over; unassigning cancels.
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", request_body = TaskPatchIn, tag = "tasks",
    responses((status = 200, body = TaskOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TaskPatchIn>,
) -> ApiResult<Json<TaskOut>> {
    let current = writable_task(&state, &caller, &id).await?;
    if let Some(Some(a)) = &body.assignee_id {
        let agent = state.store.agent_user().await?.id;
        if *a == agent
            && current.assignee_id.as_deref() != Some(agent.as_str())
            && crate::routes::agent::hand_off_queues(current.agent_status)
        {
            crate::routes::agent::require_agent_on(&state, &current.project_id).await?;
        }
    }
    let (task, outcome) = state
        .store
        .update_task(
            &id,
            TaskPatch {
                title: body.title,
                description: body.description,
                status: body.status,
                assignee_id: body.assignee_id,
            },
            &caller.user,
        )
        .await?;
    if let Some(o) = outcome {
        state.orch.publish(&o);
    }
    if body
        .status
        .is_some_and(|s| s != current.status && s == task.status)
    {
        let event = state
            .store
            .record_board_move(&task, current.status, &caller.user.id)
            .await?;
        state
            .orch
            .publish_update(&task.id, &task.project_id, event, task.agent_status);
    }
    Ok(Json(task.into()))
}

/// A task's comments, oldest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/comments", tag = "tasks", responses((status = 200, body = [CommentOut])))]
pub async fn list_comments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<CommentOut>>> {
    readable_task(&state, &caller, &id).await?;
    Ok(Json(
        state
            .store
            .list_comments(&id)
            .await?
            .into_iter()
            .map(CommentOut::from)
            .collect(),
    ))
}

/// Adds a comment (write access).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/comments", request_body = CommentIn, tag = "tasks",
    responses((status = 201, body = CommentOut), (status = 400, body = ErrorBody)))]
pub async fn create_comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommentIn>,
) -> ApiResult<(StatusCode, Json<CommentOut>)> {
    writable_task(&state, &caller, &id).await?;
    let c = state
        .store
        .create_comment(&id, &caller.user.id, &body.body)
        .await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// The task's audit trail: every transition with its actor.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", tag = "tasks", responses((status = 200, body = [TaskEventOut])))]
pub async fn list_task_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TaskEventOut>>> {
    readable_task(&state, &caller, &id).await?;
    Ok(Json(
        state
            .store
            .list_task_events(&id)
            .await?
            .into_iter()
            .map(TaskEventOut::from)
            .collect(),
    ))
}
