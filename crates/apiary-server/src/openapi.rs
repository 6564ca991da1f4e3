//! The OpenAPI document, generated from the handlers' annotations.

use crate::routes::{agent, auth, ops, projects, tasks};

/// Every documented route of the user API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Apiary",
        description = "Hand software tasks to AI coding agents."
    ),
    paths(
        auth::login,
        auth::logout,
        auth::get_me,
        auth::list_users,
        projects::list_projects,
        projects::create_project,
        projects::get_project,
        projects::update_project,
        projects::put_project_member,
        projects::delete_project_member,
        tasks::list_tasks,
        tasks::create_task,
        tasks::get_task,
        tasks::update_task,
        tasks::list_comments,
        tasks::create_comment,
        tasks::list_task_events,
        agent::handoff,
        agent::list_logs,
        ops::healthz,
        ops::metrics,
    )
)]
pub struct ApiDoc;
