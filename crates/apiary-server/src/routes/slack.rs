//! Slack: what people do in the channel where notifications arrive. Slack signs every request
//! (`X-Slack-Signature`: `v0=` and the HMAC-SHA256 of `v0:<timestamp>:<body>` under the app's
//! signing secret); a request whose timestamp is more than five minutes off is a replay and is
//! refused. Buttons act at once, or open a modal for the words "Ask for revision" and
//! "Request changes" need; `/apiary link <code>` links the Slack account to an Apiary user.

use std::collections::HashMap;

use apiary_core::chat::{ChatAction, Via};
use apiary_core::notify::escape_mrkdwn;
use apiary_core::NotifyEvent;
use apiary_orchestrator::chat::{slack_blocks, Slack, SLACK_SIGNING_SECRET};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::auth::Caller;
use crate::chat;
use crate::error::{ApiError, ApiResult};
use crate::wire::ErrorBody;
use crate::AppState;

/// How far a request's timestamp may be from Apiary's clock.
pub const MAX_SKEW_S: i64 = 300;
/// The modal that asks for feedback.
const FEEDBACK_VIEW: &str = "apiary_feedback";

/// Whether `signature` is Slack's `v0=<hex>` signature of `body` sent at `timestamp`.
pub fn signature_ok(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(sig) = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Checks that the request is Slack's: signed with the signing secret, and fresh; the settings
/// it was checked under.
async fn verify(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<apiary_core::Settings> {
    let settings = state.store.settings().await?;
    if !settings.slack.enabled {
        return Err(ApiError::not_found(
            "Slack endpoint (the Slack channel is off)",
        ));
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let Some(secret) = state.store.setting_secret(SLACK_SIGNING_SECRET).await? else {
        return Err(ApiError::unauthorized(
            "no Slack signing secret is set in Apiary (slack.signing_secret); requests cannot be verified",
        ));
    };
    let timestamp = header("x-slack-request-timestamp");
    let Ok(sent_at) = timestamp.parse::<i64>() else {
        return Err(ApiError::unauthorized(
            "X-Slack-Request-Timestamp is missing",
        ));
    };
    if (state.store.now() / 1000).abs_diff(sent_at) > MAX_SKEW_S as u64 {
        return Err(ApiError::unauthorized(
            "X-Slack-Request-Timestamp is more than 5 minutes off: a replayed request, or a wrong clock",
        ));
    }
    if !signature_ok(
        secret.as_bytes(),
        &timestamp,
        body,
        &header("x-slack-signature"),
    ) {
        return Err(ApiError::unauthorized(
            "X-Slack-Signature does not match the signing secret",
        ));
    }
    Ok(settings)
}

fn form(body: &[u8]) -> ApiResult<HashMap<String, String>> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::bad_request("body", format!("body: not a form: {e}")))
}

fn slack_bot_error(e: apiary_orchestrator::chat::ChatError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "slack_not_configured",
        e.to_string(),
    )
}

/// Takes a button press or a modal's submission (Slack's Interactivity request URL).
#[utoipa::path(post, path = "/api/v1/slack/interactions", tag = "chat",
    request_body(content = String, description = "`payload=<JSON>`, form-encoded, signed in X-Slack-Signature", content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "taken; a modal's errors when its words were refused"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the Slack channel is off"), (status = 503, body = ErrorBody, description = "no Slack bot token is set")))]
pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let settings = verify(&state, &headers, &body).await?;
    let payload: Value = form(&body)?
        .get("payload")
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| ApiError::bad_request("payload", "payload must be Slack's JSON"))?;
    let bot = Slack::configured(&state.orch, &settings)
        .await
        .map_err(slack_bot_error)?;
    match payload["type"].as_str() {
        Some("block_actions") => {
            on_button(&state, &bot, &payload).await?;
            Ok(StatusCode::OK.into_response())
        }
        Some("view_submission") => on_submission(&state, &bot, &payload).await,
        _ => Ok(StatusCode::OK.into_response()),
    }
}

/// Says something only the person sees, in the channel they acted in.
async fn whisper(bot: &Slack, channel: &str, user: &str, text: &str) {
    let body = json!({ "channel": channel, "user": user, "text": text });
    if let Err(e) = bot.call("chat.postEphemeral", &body).await {
        tracing::warn!(error = %e, "Slack call failed");
    }
}

/// Edits a notification to say who did what: its text kept, the buttons taken away.
async fn mark_done(bot: Slack, channel: &str, ts: &str, blocks: Vec<Value>, line: &str) {
    // The action buttons go; a link button (Open) stays.
    let mut blocks: Vec<Value> = blocks
        .into_iter()
        .filter_map(|mut b| {
            if b["type"] != "actions" {
                return Some(b);
            }
            let links: Vec<Value> = b["elements"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["url"].is_string())
                .cloned()
                .collect();
            b["elements"] = json!(links);
            (!links.is_empty()).then_some(b)
        })
        .collect();
    blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": escape_mrkdwn(line) }] }));
    let body = json!({ "channel": channel, "ts": ts, "text": line, "blocks": blocks });
    // Slack wants its answer within 3 s: the edit goes out after it.
    tokio::spawn(async move {
        if let Err(e) = bot.call("chat.update", &body).await {
            tracing::warn!(error = %e, "Slack call failed");
        }
    });
}

async fn on_button(state: &AppState, bot: &Slack, p: &Value) -> ApiResult<()> {
    let act = &p["actions"][0];
    let user_id = p["user"]["id"].as_str().unwrap_or_default();
    let channel = p["channel"]["id"]
        .as_str()
        .or(p["container"]["channel_id"].as_str())
        .unwrap_or_default();
    let ts = p["message"]["ts"]
        .as_str()
        .or(p["container"]["message_ts"].as_str())
        .unwrap_or_default();
    let Some(action) = act["action_id"].as_str().and_then(ChatAction::parse) else {
        return Ok(()); // "Open" (a link) and buttons that are not Apiary's.
    };
    let Some((task_id, event_id)) = act["value"]
        .as_str()
        .and_then(|v| v.split_once(':'))
        .and_then(|(t, e)| Some((t.to_string(), e.parse::<i64>().ok()?)))
    else {
        whisper(bot, channel, user_id, "This button is not one of Apiary's.").await;
        return Ok(());
    };
    let Some(user) = chat::linked(state, Via::Slack, user_id).await? else {
        whisper(bot, channel, user_id, &chat::not_linked(Via::Slack)).await;
        return Ok(());
    };
    let caller = Caller::from_chat(user.clone(), Via::Slack, Some(event_id));
    if action.needs_text() {
        let task = match chat::may_act(state, &caller, action, &task_id, Some(event_id)).await {
            Ok(t) => t,
            Err(why) => {
                whisper(bot, channel, user_id, &why).await;
                return Ok(());
            }
        };
        // Where the words go once submitted (Slack keeps at most 3000 characters here).
        let meta =
            json!({ "a": action.code(), "t": task_id, "e": event_id, "c": channel, "s": ts });
        let view = json!({
            "type": "modal",
            "callback_id": FEEDBACK_VIEW,
            "private_metadata": meta.to_string(),
            "title": { "type": "plain_text", "text": action.label() },
            "submit": { "type": "plain_text", "text": "Send" },
            "close": { "type": "plain_text", "text": "Cancel" },
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": format!("*{}*", escape_mrkdwn(&task.title)) } },
                { "type": "input", "block_id": "feedback", "label": { "type": "plain_text", "text": "What should change?" },
                  "element": { "type": "plain_text_input", "action_id": "text", "multiline": true, "max_length": 3000 } },
            ],
        });
        let trigger = p["trigger_id"].as_str().unwrap_or_default();
        if let Err(e) = bot
            .call(
                "views.open",
                &json!({ "trigger_id": trigger, "view": view }),
            )
            .await
        {
            whisper(
                bot,
                channel,
                user_id,
                &format!("Slack did not open the form: {e}"),
            )
            .await;
        }
        return Ok(());
    }
    match chat::perform(state, caller, action, &task_id, None).await {
        Ok(_) => {
            let blocks = p["message"]["blocks"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            mark_done(
                bot.clone(),
                channel,
                ts,
                blocks,
                &chat::done_line(action, &user, Via::Slack),
            )
            .await;
        }
        Err(why) => whisper(bot, channel, user_id, &why).await,
    }
    Ok(())
}

/// The words of a feedback modal: the action is done, or the modal shows why not.
async fn on_submission(state: &AppState, bot: &Slack, p: &Value) -> ApiResult<Response> {
    let view = &p["view"];
    if view["callback_id"] != FEEDBACK_VIEW {
        return Ok(StatusCode::OK.into_response());
    }
    let meta: Value = view["private_metadata"]
        .as_str()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    let refuse = |why: String| {
        Json(json!({ "response_action": "errors", "errors": { "feedback": why.chars().take(150).collect::<String>() } }))
            .into_response()
    };
    let (Some(action), Some(task_id), Some(event_id)) = (
        meta["a"].as_str().and_then(ChatAction::parse),
        meta["t"].as_str(),
        meta["e"].as_i64(),
    ) else {
        return Ok(refuse("This form is not one of Apiary's.".into()));
    };
    let user_id = p["user"]["id"].as_str().unwrap_or_default();
    let Some(user) = chat::linked(state, Via::Slack, user_id).await? else {
        return Ok(refuse(chat::not_linked(Via::Slack)));
    };
    let text = view["state"]["values"]["feedback"]["text"]["value"]
        .as_str()
        .map(str::to_string);
    let caller = Caller::from_chat(user.clone(), Via::Slack, Some(event_id));
    match chat::perform(state, caller, action, task_id, text).await {
        Ok(_) => {
            // The notification rendered again (the modal carried only where it is), its
            // action buttons then taken away like after any press.
            let event = match action {
                ChatAction::Revise => NotifyEvent::SpecReady,
                _ => NotifyEvent::PrReady,
            };
            let msg = apiary_orchestrator::notify::message(&state.orch, task_id, event).await?;
            let blocks = slack_blocks(&msg, task_id, event_id)
                .as_array()
                .cloned()
                .unwrap_or_default();
            mark_done(
                bot.clone(),
                meta["c"].as_str().unwrap_or_default(),
                meta["s"].as_str().unwrap_or_default(),
                blocks,
                &chat::done_line(action, &user, Via::Slack),
            )
            .await;
            Ok(StatusCode::OK.into_response())
        }
        Err(why) => Ok(refuse(why)),
    }
}

/// Takes the `/apiary` slash command: `link <code>`, `unlink`, or help.
#[utoipa::path(post, path = "/api/v1/slack/commands", tag = "chat",
    request_body(content = String, description = "Slack's slash command, form-encoded, signed in X-Slack-Signature", content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "an ephemeral answer"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the Slack channel is off")))]
pub async fn commands(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    verify(&state, &headers, &body).await?;
    let f = form(&body)?;
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    let user_id = get("user_id");
    let text = get("text").trim();
    let command = get("command");
    let said = if text == "unlink" {
        chat::unlink(&state, Via::Slack, user_id).await?
    } else if let Some(code) = chat::link_code(text) {
        let name = format!("@{}", get("user_name"));
        let undo = format!("`{command} unlink`");
        chat::link(&state, Via::Slack, user_id, &name, code, &undo).await?
    } else {
        format!(
            "`{command} link <code>` links your Slack account to your Apiary user (get the code in Apiary: Account → Chat accounts); `{command} unlink` undoes it."
        )
    };
    Ok(Json(json!({ "response_type": "ephemeral", "text": said })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secrets_signature_of_this_timestamp_and_body_passes() {
        // Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let ts = "1531420618";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(signature_ok(secret, ts, body, sig));
        assert!(!signature_ok(secret, "1531420619", body, sig));
        assert!(!signature_ok(b"another", ts, body, sig));
        assert!(!signature_ok(secret, ts, &body[1..], sig));
        assert!(!signature_ok(secret, ts, body, &sig[3..]));
    }
}
