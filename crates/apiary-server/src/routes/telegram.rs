//! Telegram: what people do in the chat where notifications arrive. Updates come by webhook
//! (Telegram's secret token checked on `X-Telegram-Bot-Api-Secret-Token` before anything is
//! read) or by long polling (`getUpdates`, one replica at a time under a lease). A button press
//! is answered (`answerCallbackQuery`) and its message edited to say who did what; "Ask for
//! revision" and "Request changes" ask for the words with a ForceReply; a private `/start
//! <code>` links the Telegram account to an Apiary user.

use std::time::Duration;

use apiary_core::chat::{ChatAction, Via};
use apiary_core::notify::escape_md2;
use apiary_orchestrator::chat::{ChatError, Telegram, TELEGRAM_WEBHOOK_SECRET};
use apiary_store::ChatPrompt;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::auth::{constant_time_eq, Caller};
use crate::chat;
use crate::error::{ApiError, ApiResult};
use crate::wire::ErrorBody;
use crate::AppState;

/// The updates Apiary asks Telegram for.
pub const ALLOWED_UPDATES: [&str; 2] = ["message", "callback_query"];
/// How long one `getUpdates` waits for an update (Telegram's long poll).
const POLL_WAIT_S: u64 = 25;
/// The lease one polling replica holds.
const POLL_LEASE: &str = "telegram_poll";

/// Takes one update from Telegram's webhook.
#[utoipa::path(post, path = "/api/v1/telegram/webhook", tag = "chat",
    request_body(content = String, description = "A Telegram Update (JSON), with X-Telegram-Bot-Api-Secret-Token"),
    responses((status = 200, description = "taken"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "telegram.updates is not webhook"), (status = 503, body = ErrorBody, description = "no bot token is set")))]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let s = state.store.settings().await?;
    if !(s.telegram.enabled && s.telegram.updates == "webhook") {
        return Err(ApiError::not_found(
            "Telegram webhook (telegram.updates is not webhook)",
        ));
    }
    let expected = state
        .store
        .setting_secret(TELEGRAM_WEBHOOK_SECRET)
        .await?
        .unwrap_or_default();
    let sent = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::unauthorized(
            "X-Telegram-Bot-Api-Secret-Token does not match the secret Apiary registered",
        ));
    }
    let update: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("body: not a JSON update: {e}")))?;
    let bot = Telegram::configured(&state.orch, &s).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "telegram_not_configured",
            e.to_string(),
        )
    })?;
    // Taken once the secret matched: an error is logged, not answered with a 5xx that would
    // make Telegram send the update again (a second question, a second reply).
    if let Err(e) = handle_update(&state, &bot, &update).await {
        tracing::warn!(error = %e.message, "a Telegram update was not handled");
    }
    Ok(StatusCode::OK)
}

/// Registers where Telegram sends updates: Apiary's webhook under `base_url` (with a fresh
/// secret token) for `webhook`, none for `polling` and `off` (Telegram refuses `getUpdates`
/// while a webhook is set). Called when an admin changes how Apiary hears Telegram.
pub async fn register(
    state: &AppState,
    bot: &Telegram,
    updates: &str,
    base_url: &str,
) -> Result<(), ChatError> {
    if updates != "webhook" {
        bot.call("deleteWebhook", &json!({ "drop_pending_updates": false }))
            .await?;
        return Ok(());
    }
    let url = base_url.trim_end_matches('/');
    let secret = apiary_store::new_token("");
    bot.call(
        "setWebhook",
        &json!({
            "url": format!("{url}/api/v1/telegram/webhook"),
            "secret_token": secret,
            "allowed_updates": ALLOWED_UPDATES,
        }),
    )
    .await?;
    state
        .store
        .set_setting_secret(TELEGRAM_WEBHOOK_SECRET, Some(&secret))
        .await
        .map_err(|e| ChatError::Unreachable {
            service: "the database",
            detail: e.to_string(),
        })
}

/// Polls Telegram for updates while the settings say `polling`, on whichever replica holds
/// the lease; runs for the life of the server.
pub async fn poll(state: AppState) {
    let holder = apiary_store::new_token("poller-");
    let mut offset: Option<i64> = None;
    loop {
        let wait = match poll_once(&state, &holder, &mut offset).await {
            Ok(true) => continue,
            Ok(false) => Duration::from_secs(2),
            Err(e) => {
                tracing::warn!(error = %e, "Telegram polling");
                Duration::from_secs(5)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// One `getUpdates` and its updates; `false` when polling is off or another replica polls.
async fn poll_once(
    state: &AppState,
    holder: &str,
    offset: &mut Option<i64>,
) -> Result<bool, String> {
    let s = state.store.settings().await.map_err(|e| e.to_string())?;
    if !(s.telegram.enabled && s.telegram.updates == "polling") {
        return Ok(false);
    }
    let lease_ms = (POLL_WAIT_S as i64 + 35) * 1000;
    if !state
        .store
        .try_lease(POLL_LEASE, holder, lease_ms)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(false);
    }
    let bot = Telegram::configured(&state.orch, &s)
        .await
        .map_err(|e| e.to_string())?;
    if offset.is_none() {
        *offset = state
            .store
            .telegram_poll_offset()
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut ask =
        json!({ "timeout": POLL_WAIT_S, "limit": 20, "allowed_updates": ALLOWED_UPDATES });
    if let Some(o) = offset {
        ask["offset"] = json!(o);
    }
    let updates = bot
        .call("getUpdates", &ask)
        .await
        .map_err(|e| e.to_string())?;
    for u in updates.as_array().into_iter().flatten() {
        if let Some(id) = u["update_id"].as_i64() {
            *offset = Some(id + 1);
            // Taken before it is acted on: at most once, as a webhook delivery would be.
            state
                .store
                .set_telegram_poll_offset(id + 1)
                .await
                .map_err(|e| e.to_string())?;
        }
        // Still ours: another replica must not take the same updates meanwhile.
        if !state
            .store
            .try_lease(POLL_LEASE, holder, lease_ms)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(false);
        }
        if let Err(e) = handle_update(state, &bot, u).await {
            tracing::warn!(error = %e.message, "a Telegram update was not handled");
        }
    }
    Ok(true)
}

/// Acts on one update: a button press, a reply to a prompt, or a link code in a private chat.
pub async fn handle_update(state: &AppState, bot: &Telegram, update: &Value) -> ApiResult<()> {
    // Telegram resends an update it thinks was not taken: each is acted on once.
    if let Some(id) = update["update_id"].as_i64() {
        if !state.store.accept_chat_update("telegram", id).await? {
            return Ok(());
        }
    }
    if update["callback_query"].is_object() {
        on_button(state, bot, &update["callback_query"]).await
    } else if update["message"].is_object() {
        on_message(state, bot, &update["message"]).await
    } else {
        Ok(())
    }
}

/// A Telegram user's id and the name Apiary shows for them.
fn person(from: &Value) -> (String, String) {
    let id = from["id"]
        .as_i64()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let name = match from["username"].as_str() {
        Some(u) => format!("@{u}"),
        None => from["first_name"].as_str().unwrap_or("someone").to_string(),
    };
    (id, name)
}

/// Calls the bot; a refusal is logged, not passed on (the person's action is already done or
/// refused in Apiary; telling them is best effort).
async fn tell(bot: &Telegram, method: &str, body: Value) -> Option<Value> {
    match bot.call(method, &body).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, method, "Telegram call failed");
            None
        }
    }
}

async fn answer(bot: &Telegram, query_id: &str, text: &str, alert: bool) {
    tell(
        bot,
        "answerCallbackQuery",
        json!({ "callback_query_id": query_id, "text": truncate(text, 200), "show_alert": alert }),
    )
    .await;
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

async fn on_button(state: &AppState, bot: &Telegram, q: &Value) -> ApiResult<()> {
    let query_id = q["id"].as_str().unwrap_or_default();
    let (chat_user_id, _) = person(&q["from"]);
    let Some((action, task_id, event_id)) = q["data"].as_str().and_then(ChatAction::parse_button)
    else {
        answer(bot, query_id, "This button is not one of Apiary's.", true).await;
        return Ok(());
    };
    let Some(user) = chat::linked(state, Via::Telegram, &chat_user_id).await? else {
        answer(bot, query_id, &chat::not_linked(Via::Telegram), true).await;
        return Ok(());
    };
    let message = &q["message"];
    // Telegram passes on what a client sends as `data`: only a button this message carries
    // is taken, so a press always names the notification it edits.
    let offered = message["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .any(|b| b["callback_data"] == q["data"]);
    if !offered {
        answer(
            bot,
            query_id,
            "This button is not one of this message's.",
            true,
        )
        .await;
        return Ok(());
    }
    let caller = Caller::from_chat(user.clone(), Via::Telegram, Some(event_id));
    if action.needs_text() {
        let task = match chat::may_act(state, &caller, action, task_id, Some(event_id)).await {
            Ok(t) => t,
            Err(why) => {
                answer(bot, query_id, &why, true).await;
                return Ok(());
            }
        };
        let what = match action {
            ChatAction::Revise => "what the spec should change",
            _ => "the changes you want",
        };
        let chat_id = message["chat"]["id"].clone();
        let mut ask = json!({
            "chat_id": chat_id,
            "text": format!(
                "[{}](tg://user?id={chat_user_id}), reply to this message with {} for *{}*\\.",
                escape_md2(&user.name),
                escape_md2(what),
                escape_md2(&task.title)
            ),
            "parse_mode": "MarkdownV2",
            "reply_markup": { "force_reply": true, "selective": true, "input_field_placeholder": "What should change?" },
        });
        if let Some(id) = message["message_id"]
            .as_i64()
            .filter(|_| message["date"] != json!(0))
        {
            ask["reply_parameters"] =
                json!({ "message_id": id, "allow_sending_without_reply": true });
        }
        let Some(sent) = tell(bot, "sendMessage", ask).await else {
            answer(
                bot,
                query_id,
                "Telegram did not take the question; try again.",
                true,
            )
            .await;
            return Ok(());
        };
        state
            .store
            .save_chat_prompt(
                Via::Telegram,
                &json_id(&sent["chat"]["id"]),
                &json_id(&sent["message_id"]),
                &ChatPrompt {
                    task_id: task_id.to_string(),
                    action,
                    event_id,
                    chat_user_id: chat_user_id.clone(),
                },
            )
            .await?;
        answer(
            bot,
            query_id,
            "Reply to my question with your words.",
            false,
        )
        .await;
        return Ok(());
    }
    match chat::perform(state, caller, action, task_id, None).await {
        Ok(_) => {
            let line = chat::done_line(action, &user, Via::Telegram);
            answer(bot, query_id, &line, false).await;
            mark_done(bot, message, &line).await;
        }
        Err(why) => answer(bot, query_id, &why, true).await,
    }
    Ok(())
}

/// An id Telegram sends as a number, as text.
fn json_id(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Edits a notification to say who did what: its text and formatting kept, the line added,
/// the action buttons taken away (the link to the task stays).
async fn mark_done(bot: &Telegram, message: &Value, line: &str) {
    let Some(text) = message["text"].as_str() else {
        return; // Too old for Telegram to hand back; the answer said it.
    };
    let links: Vec<Value> = message["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter(|b| b["url"].is_string())
        .collect();
    let mut edit = json!({
        "chat_id": message["chat"]["id"],
        "message_id": message["message_id"],
        "text": format!("{text}\n\n{line}"),
        "link_preview_options": { "is_disabled": true },
        "reply_markup": { "inline_keyboard": if links.is_empty() { vec![] } else { vec![links] } },
    });
    if message["entities"].is_array() {
        edit["entities"] = message["entities"].clone();
    }
    tell(bot, "editMessageText", edit).await;
}

async fn reply(bot: &Telegram, message: &Value, text: &str) {
    tell(
        bot,
        "sendMessage",
        json!({
            "chat_id": message["chat"]["id"],
            "text": truncate(text, 4000),
            "reply_parameters": { "message_id": message["message_id"], "allow_sending_without_reply": true },
        }),
    )
    .await;
}

async fn on_message(state: &AppState, bot: &Telegram, message: &Value) -> ApiResult<()> {
    let (chat_user_id, name) = person(&message["from"]);
    let text = message["text"].as_str().unwrap_or_default();
    let chat_id = json_id(&message["chat"]["id"]);
    let private = message["chat"]["type"] == "private";
    let asked = message["reply_to_message"]["message_id"]
        .as_i64()
        .map(|id| id.to_string());
    let prompt = match &asked {
        Some(asked) => {
            state
                .store
                .chat_prompt(Via::Telegram, &chat_id, asked)
                .await?
        }
        None => None,
    };
    if let (Some(asked), Some(prompt)) = (asked, prompt) {
        if prompt.chat_user_id != chat_user_id {
            return Ok(()); // Only who pressed the button answers its question.
        }
        let Some(user) = chat::linked(state, Via::Telegram, &chat_user_id).await? else {
            reply(bot, message, &chat::not_linked(Via::Telegram)).await;
            return Ok(());
        };
        if text.trim().is_empty() {
            reply(
                bot,
                message,
                "Reply with text, please; the question still waits.",
            )
            .await;
            return Ok(());
        }
        if !state
            .store
            .drop_chat_prompt(Via::Telegram, &chat_id, &asked)
            .await?
        {
            return Ok(()); // Another replica took this reply.
        }
        let caller = Caller::from_chat(user.clone(), Via::Telegram, Some(prompt.event_id));
        let said = match chat::perform(
            state,
            caller,
            prompt.action,
            &prompt.task_id,
            Some(text.to_string()),
        )
        .await
        {
            Ok(_) => format!("{}.", chat::done_line(prompt.action, &user, Via::Telegram)),
            Err(why) => why,
        };
        reply(bot, message, &said).await;
        return Ok(());
    }
    if !private {
        return Ok(());
    }
    let said = if text.split_whitespace().next() == Some("/unlink") {
        chat::unlink(state, Via::Telegram, &chat_user_id).await?
    } else if let Some(code) = chat::link_code(text) {
        chat::link(state, Via::Telegram, &chat_user_id, &name, code, "/unlink").await?
    } else {
        "Hello! I send Apiary's notifications. To act on them here, get a code in Apiary (Account → Chat accounts) and send it to me.".to_string()
    };
    reply(bot, message, &said).await;
    Ok(())
}
