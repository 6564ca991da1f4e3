//! Acting from chat: a linked chat user's button press or reply runs the same route function
//! as the HTTP API, with the same authorization, as the Apiary user the chat account is
//! linked to; the audit trail records the chat. What the person is told comes back as a line.

use apiary_core::chat::{ChatAction, Via};
use apiary_store::{Task, User};
use axum::extract::{Path, State};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::agent;
use crate::routes::tasks::writable_task;
use crate::AppState;

/// What an unlinked chat user is told; nothing is done for them.
pub fn not_linked(via: Via) -> String {
    let how = match via {
        Via::Telegram => "send it to this bot in a private chat",
        Via::Slack => "type /apiary link <code>",
    };
    format!(
        "This {} account is not linked to an Apiary user, so nothing was done. In Apiary, open \
         Account → Chat accounts, get a code and {how}.",
        via.label()
    )
}

/// The Apiary user a chat account acts as.
pub async fn linked(
    state: &AppState,
    via: Via,
    chat_user_id: &str,
) -> Result<Option<User>, ApiError> {
    Ok(state.store.chat_user(via, chat_user_id).await?)
}

/// The line a refused action tells the person.
fn refusal(e: ApiError, task: Option<&Task>) -> String {
    match (e.code, task) {
        ("invalid_transition", Some(t)) => moved_on(t),
        ("not_found", _) => "That task is gone, or you cannot see it in Apiary.".into(),
        _ => format!("Nothing changed: {}.", e.message.trim_end_matches('.')),
    }
}

fn moved_on(task: &Task) -> String {
    format!(
        "Nothing changed: the task has moved on; it is now {}.",
        task.agent_status
    )
}

/// Checks, without acting, that `caller` may do `action` on `task_id` from the button of audit
/// event `event_id` (used before asking for words): the task is writable for them, and it has
/// not moved on since the button was made.
pub async fn may_act(
    state: &AppState,
    caller: &Caller,
    action: ChatAction,
    task_id: &str,
    event_id: Option<i64>,
) -> Result<Task, String> {
    if caller.user.role == apiary_core::Role::Agent {
        return Err("The Agent user cannot act as a reviewer.".into());
    }
    let task = writable_task(state, caller, task_id)
        .await
        .map_err(|e| refusal(e, None))?;
    let stale = match event_id {
        Some(ev) => state
            .store
            .moved_on_since(task_id, ev)
            .await
            .map_err(|e| refusal(e.into(), None))?,
        None => false,
    };
    if stale || task.agent_status != action.from_status() {
        return Err(moved_on(&task));
    }
    Ok(task)
}

/// Does `action` on `task_id` as `caller` (through the HTTP API's own route function), with
/// `text` as the feedback or review comment when the action needs words. `Ok` with the task
/// as it now is, or the line that says why nothing changed.
pub async fn perform(
    state: &AppState,
    caller: Caller,
    action: ChatAction,
    task_id: &str,
    text: Option<String>,
) -> Result<Task, String> {
    may_act(state, &caller, action, task_id, caller.chat_event()).await?;
    let text = text.unwrap_or_default();
    if action.needs_text() && text.trim().is_empty() {
        return Err("Nothing changed: the reply was empty.".into());
    }
    let (s, id) = (State(state.clone()), Path(task_id.to_string()));
    let result = match action {
        ChatAction::Approve => {
            agent::approve_spec(s, caller, id, ApiJson(agent::ApproveIn::default())).await
        }
        ChatAction::Revise => {
            agent::revise_spec(s, caller, id, ApiJson(agent::ReviseIn { feedback: text })).await
        }
        ChatAction::Merge => agent::mark_merged(s, caller, id).await,
        ChatAction::RequestChanges => {
            let comments = vec![agent::ReviewCommentIn {
                body: text,
                path: None,
                line: None,
            }];
            agent::request_changes(s, caller, id, ApiJson(agent::RequestChangesIn { comments }))
                .await
        }
        ChatAction::Retry => agent::retry(s, caller, id).await,
        ChatAction::Cancel => agent::cancel(s, caller, id).await,
    };
    let now = state.store.get_task(task_id).await.ok();
    match result {
        Ok(out) if out.changed => now.ok_or_else(|| "That task is gone.".into()),
        // Someone else did it first: the task already has that status.
        Ok(_) => Err(now
            .as_ref()
            .map(moved_on)
            .unwrap_or_else(|| "That task is gone.".into())),
        Err(e) => Err(refusal(e, now.as_ref())),
    }
}

/// Links the chat account that sent `code`; the line to answer with. `unlink` says how to undo.
pub async fn link(
    state: &AppState,
    via: Via,
    chat_user_id: &str,
    chat_user_name: &str,
    code: &str,
    unlink: &str,
) -> Result<String, ApiError> {
    Ok(
        match state
            .store
            .redeem_chat_link_code(code, via, chat_user_id, chat_user_name)
            .await?
        {
            Some(user) => format!(
                "Linked: this {} account now acts as {} in Apiary, with their rights. {unlink} undoes it.",
                via.label(),
                user.name
            ),
            None => "That code is unknown or has expired; get a new one in Apiary (Account → Chat accounts).".to_string(),
        },
    )
}

/// Unlinks the chat account; the line to answer with.
pub async fn unlink(state: &AppState, via: Via, chat_user_id: &str) -> Result<String, ApiError> {
    Ok(match linked(state, via, chat_user_id).await? {
        Some(u) => {
            state.store.unlink_chat(&u.id, via).await?;
            format!(
                "Unlinked: this {} account no longer acts as {} in Apiary.",
                via.label(),
                u.name
            )
        }
        None => format!("This {} account is not linked.", via.label()),
    })
}

/// The line a chat message gains once acted on: "Approved by Ann via Telegram".
pub fn done_line(action: ChatAction, user: &User, via: Via) -> String {
    format!("{} by {} via {}", action.done(), user.name, via.label())
}

/// The link code in a chat message: `/start CODE`, `/link CODE`, `link CODE` or the code alone.
pub fn link_code(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    let first = words.next()?;
    let first = first.split('@').next().unwrap_or(first);
    let code = match first {
        "/start" | "/link" | "link" => words.next()?,
        code if code.len() == 10 => code,
        _ => return None,
    };
    (words.next().is_none()
        && (4..=64).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_alphanumeric()))
    .then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_code_is_found_in_the_ways_people_send_it() {
        assert_eq!(link_code("/start ABCDEFGH23"), Some("ABCDEFGH23"));
        assert_eq!(
            link_code("/start@apiary_bot ABCDEFGH23"),
            Some("ABCDEFGH23")
        );
        assert_eq!(link_code("link abcdefgh23"), Some("abcdefgh23"));
        assert_eq!(link_code("ABCDEFGH23"), Some("ABCDEFGH23"));
        assert_eq!(link_code("/start"), None);
        assert_eq!(link_code("hello there"), None);
        assert_eq!(link_code("/link AB-CD"), None);
    }
}
