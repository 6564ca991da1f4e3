//! The OpenAPI document, generated from the handlers' annotations.

use crate::routes::{
    agent, auth, callback, chat_links, events, fleet, github, ops, projects, prompts, settings,
    slack, tasks, telegram, usage,
};

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
        chat_links::list_chat_links,
        chat_links::create_chat_link_code,
        chat_links::delete_chat_link,
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
        agent::approve_spec,
        agent::revise_spec,
        agent::request_changes,
        agent::mark_merged,
        agent::retry,
        agent::cancel,
        agent::teardown,
        agent::send_message,
        agent::list_spec_revisions,
        agent::get_diff,
        prompts::list_prompts,
        prompts::list_notification_errors,
        prompts::get_prompt_defaults,
        callback::get_box_task,
        callback::post_status,
        callback::post_spec,
        callback::post_pr,
        callback::post_error,
        callback::post_logs,
        events::stream_events,
        settings::get_settings,
        settings::update_settings,
        usage::get_task_usage,
        usage::get_project_usage,
        usage::get_project_gateway,
        usage::update_project_gateway,
        github::webhook,
        fleet::get_fleet,
        telegram::webhook,
        slack::interactions,
        slack::commands,
        ops::healthz,
        ops::metrics,
    )
)]
pub struct ApiDoc;
