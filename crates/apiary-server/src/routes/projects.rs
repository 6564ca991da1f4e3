//! Projects and their members.

use apiary_core::ProjectAccess;
use apiary_store::NewProject;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use apiary_store::ProjectSecret;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::wire::{ErrorBody, MemberIn, ProjectAgentPatch, ProjectIn, ProjectOut, ProjectPatchIn};
use crate::AppState;

/// The projects the caller can see.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", responses((status = 200, body = [ProjectOut])))]
pub async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ProjectOut>>> {
    let mut out = Vec::new();
    for p in state.store.list_projects_for(&caller.user).await? {
        let access = state
            .store
            .project_access(&p.id, &caller.user)
            .await?
            .unwrap_or(ProjectAccess::Read);
        out.push(ProjectOut::new(p, access));
    }
    Ok(Json(out))
}

/// Creates a project; the creator gets write access.
#[utoipa::path(post, path = "/api/v1/projects", request_body = ProjectIn, tag = "projects",
    responses((status = 201, body = ProjectOut), (status = 400, body = ErrorBody)))]
pub async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ProjectIn>,
) -> ApiResult<(StatusCode, Json<ProjectOut>)> {
    if caller.user.role == apiary_core::Role::Agent {
        return Err(ApiError::forbidden("the Agent user cannot create projects"));
    }
    let p = state
        .store
        .create_project(
            NewProject {
                name: body.name,
                description: body.description,
            },
            &caller.user,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ProjectOut::new(p, ProjectAccess::Write)),
    ))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    responses((status = 200, body = ProjectOut), (status = 404, body = ErrorBody)))]
pub async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ProjectOut>> {
    let (p, access) = caller.readable_project(&state, &id).await?;
    Ok(Json(ProjectOut::new(p, access)))
}

/// Changes a project and its agent settings (write access).
#[utoipa::path(patch, path = "/api/v1/projects/{id}", request_body = ProjectPatchIn, tag = "projects",
    responses((status = 200, body = ProjectOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProjectPatchIn>,
) -> ApiResult<Json<ProjectOut>> {
    let before = caller.writable_project(&state, &id).await?;
    if let Some(a) = &body.agent {
        check_host_fields(&state, &caller, &before, a).await?;
    }
    let writes = [
        (
            "agent.github_token",
            ProjectSecret::ForgeToken,
            body.github_token(),
        ),
        (
            "agent.github_webhook_secret",
            ProjectSecret::WebhookSecret,
            body.webhook_secret(),
        ),
    ];
    for (field, _, w) in &writes {
        if w.as_ref()
            .is_some_and(|t| t.as_ref().is_some_and(|t| t.len() > 4096))
        {
            return Err(ApiError::bad_request(
                field,
                format!("{field}: at most 4096 bytes"),
            ));
        }
    }
    let mut p = state.store.update_project(&id, body.into()).await?;
    for (_, which, w) in writes {
        if let Some(value) = w {
            state
                .store
                .set_project_secret(&id, which, value.as_deref())
                .await?;
            p = state.store.get_project(&id).await?;
        }
    }
    Ok(Json(ProjectOut::new(p, ProjectAccess::Write)))
}

/// The agent fields that are host-level power: the custom command, the box template and a
/// repository on this host. Only admins change them (403 naming the field); an admin's local
/// repository must be a git repository under an allowed root (400). A value sent unchanged
/// passes, so a form that sends every field works for members too.
async fn check_host_fields(
    state: &AppState,
    caller: &Caller,
    before: &apiary_store::Project,
    a: &ProjectAgentPatch,
) -> ApiResult<()> {
    let admin = caller.user.role == apiary_core::Role::Admin;
    let changed = |new: &Option<String>, old: &str| new.as_deref().is_some_and(|v| v != old);
    for (field, new, old) in [
        ("agent.command", &a.command, &before.agent.command),
        ("agent.template", &a.template, &before.agent.template),
        (
            "agent.check_command",
            &a.check_command,
            &before.agent.check_command,
        ),
        (
            "agent.preview_command",
            &a.preview_command,
            &before.agent.preview_command,
        ),
    ] {
        if !admin && changed(new, old) {
            return Err(ApiError::forbidden_field(
                field,
                format!("{field}: only admins may set it; choose a preset instead"),
            ));
        }
    }
    let Some(url) = a.repo_url.as_deref() else {
        return Ok(());
    };
    if url == before.agent.repo_url || url.is_empty() || crate::repos::is_remote(url) {
        return Ok(());
    }
    if !admin {
        return Err(ApiError::forbidden_field(
            "agent.repo_url",
            "agent.repo_url: only admins may point a project at a repository on this host; use a remote git URL",
        ));
    }
    let settings = state.store.settings().await?;
    let data = state.config.data_dir.as_deref();
    let roots = crate::repos::allowed_roots(data, &settings.local_repo_roots);
    crate::repos::check_local(url, data, &roots)
        .map_err(|m| ApiError::bad_request("agent.repo_url", m))?;
    Ok(())
}

/// Grants a user read or write access to a project (write access).
#[utoipa::path(put, path = "/api/v1/projects/{id}/members/{user_id}", request_body = MemberIn, tag = "projects",
    responses((status = 204), (status = 403, body = ErrorBody)))]
pub async fn put_project_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberIn>,
) -> ApiResult<StatusCode> {
    caller.writable_project(&state, &id).await?;
    state
        .store
        .set_project_member(&id, &user_id, body.access)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user from a project (write access).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/members/{user_id}", tag = "projects",
    responses((status = 204), (status = 403, body = ErrorBody)))]
pub async fn delete_project_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.writable_project(&state, &id).await?;
    state.store.remove_project_member(&id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
