//! The signed-in user's chat accounts: a one-time code to link one (sent to the Telegram bot
//! or with Slack's `/apiary link`), the accounts linked, and unlinking.

use apiary_core::chat::Via;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::wire::{rfc3339, ErrorBody};
use crate::AppState;

/// A chat account acting as the user.
#[derive(Serialize, ToSchema)]
pub struct ChatLinkOut {
    /// `telegram` or `slack`.
    pub via: String,
    pub chat_user_id: String,
    /// `@username` (or the first name) as the chat service gave it.
    pub chat_user_name: String,
    pub created_at: String,
}

/// A one-time link code and where to send it.
#[derive(Serialize, ToSchema)]
pub struct ChatLinkCodeOut {
    pub code: String,
    pub expires_at: String,
    /// `https://t.me/<bot>?start=<code>`, when Telegram buttons are on and the bot's username
    /// is set.
    pub telegram_url: Option<String>,
    /// What to type in Slack, when the Slack channel is on.
    pub slack_command: Option<String>,
}

/// The caller's chat accounts.
#[utoipa::path(get, path = "/api/v1/me/chat-links", tag = "auth",
    responses((status = 200, body = [ChatLinkOut]), (status = 401, body = ErrorBody)))]
pub async fn list_chat_links(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ChatLinkOut>>> {
    Ok(Json(
        state
            .store
            .chat_links(&caller.user.id)
            .await?
            .into_iter()
            .map(|l| ChatLinkOut {
                via: l.via,
                chat_user_id: l.chat_user_id,
                chat_user_name: l.chat_user_name,
                created_at: rfc3339(l.created_at),
            })
            .collect(),
    ))
}

/// A new one-time code (ten minutes; an earlier code stops working) that links the chat
/// account it is sent from to the caller.
#[utoipa::path(post, path = "/api/v1/me/chat-links/code", tag = "auth",
    responses((status = 200, body = ChatLinkCodeOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_chat_link_code(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ChatLinkCodeOut>> {
    // A person at the UI: not a personal token (a leaked one must not gain a chat account that
    // outlives it), not a chat account, not the Agent user.
    if !matches!(caller.credential, crate::auth::Credential::Session { .. })
        || caller.user.role == apiary_core::Role::Agent
    {
        return Err(ApiError::forbidden(
            "only a person signed in to Apiary links chat accounts",
        ));
    }
    let s = state.store.settings().await?;
    let (code, expires_at) = state.store.new_chat_link_code(&caller.user.id).await?;
    let telegram_url = (s.telegram.hears_updates() && !s.telegram.bot_username.is_empty())
        .then(|| format!("https://t.me/{}?start={code}", s.telegram.bot_username));
    let slack_command = s.slack.enabled.then(|| format!("/apiary link {code}"));
    Ok(Json(ChatLinkCodeOut {
        code,
        expires_at: rfc3339(expires_at),
        telegram_url,
        slack_command,
    }))
}

/// Unlinks the caller's account on one chat (`telegram` or `slack`).
#[utoipa::path(delete, path = "/api/v1/me/chat-links/{via}", tag = "auth",
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_chat_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(via): Path<String>,
) -> ApiResult<StatusCode> {
    let via = Via::parse(&via)
        .ok_or_else(|| ApiError::bad_request("via", "via must be telegram or slack"))?;
    if !state.store.unlink_chat(&caller.user.id, via).await? {
        return Err(ApiError::not_found("chat link"));
    }
    Ok(StatusCode::NO_CONTENT)
}
