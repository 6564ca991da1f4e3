//! The chat services Apiary talks to as a bot: Telegram's Bot API and Slack's Web API (their
//! base URLs come from the settings, so a local stand-in can take their place), and the
//! buttons a notification carries for what the task's state allows.

use std::time::Duration;

use apiary_core::chat::ChatAction;
use apiary_core::notify::Message;
use serde_json::{json, Value};

use crate::Orchestrator;

/// The settings secret holding Telegram's bot token.
pub const TELEGRAM_BOT_TOKEN: &str = "telegram.bot_token";
/// The secret Telegram echoes in `X-Telegram-Bot-Api-Secret-Token` on webhook calls.
pub const TELEGRAM_WEBHOOK_SECRET: &str = "telegram.webhook_secret";
/// The settings secret holding Slack's bot token (`xoxb-…`).
pub const SLACK_BOT_TOKEN: &str = "slack.bot_token";
/// The settings secret that signs Slack's requests to Apiary.
pub const SLACK_SIGNING_SECRET: &str = "slack.signing_secret";

/// Why a call to a chat service did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The settings lack what the call needs (a token); trying again will not help.
    #[error("{0}")]
    NotConfigured(String),
    /// The service could not be reached, or failed on its side.
    #[error("{service} unreachable: {detail}")]
    Unreachable {
        service: &'static str,
        detail: String,
    },
    /// The service refused the request.
    #[error("{service} refused {method}: {description}")]
    Refused {
        service: &'static str,
        method: String,
        status: u16,
        description: String,
        /// The same request may pass later (rate limited, a server error).
        passing: bool,
    },
}

impl ChatError {
    /// The same call may succeed later.
    pub fn passing(&self) -> bool {
        match self {
            ChatError::NotConfigured(_) => false,
            ChatError::Unreachable { .. } => true,
            ChatError::Refused { passing, .. } => *passing,
        }
    }
}

/// One client for every chat call (connections are reused); 10 s per call, as every
/// notification channel (a long poll sets its own).
fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client")
        })
        .clone()
}

/// The bot token stored under `secret` (`service` names it in the error).
async fn bot_token(orch: &Orchestrator, secret: &str, service: &str) -> Result<String, ChatError> {
    orch.store
        .setting_secret(secret)
        .await
        .map_err(|e| ChatError::Unreachable {
            service: "the database",
            detail: e.to_string(),
        })?
        .ok_or_else(|| ChatError::NotConfigured(format!("no {service} bot token is set")))
}

/// Telegram's Bot API, as the configured bot.
pub struct Telegram {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Telegram {
    /// The bot the settings `s` (as the caller read them) configure.
    pub async fn configured(
        orch: &Orchestrator,
        s: &apiary_core::Settings,
    ) -> Result<Telegram, ChatError> {
        let token = bot_token(orch, TELEGRAM_BOT_TOKEN, "Telegram").await?;
        Ok(Telegram::new(&s.telegram.api_base, &token))
    }

    /// A bot at `base` (`https://api.telegram.org`) with `token`.
    pub fn new(base: &str, token: &str) -> Telegram {
        Telegram {
            http: http(),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// Calls a Bot API method with a JSON body; its `result`.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ChatError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token);
        let mut req = self.http.post(&url).json(body);
        if let Some(wait) = body["timeout"].as_u64().filter(|_| method == "getUpdates") {
            req = req.timeout(Duration::from_secs(wait + 10));
        }
        let resp = req
            .send()
            .await
            // Never let the token (in the URL) reach a log.
            .map_err(|e| ChatError::Unreachable {
                service: "Telegram",
                detail: e.without_url().to_string(),
            })?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() && answer["ok"] == json!(true) {
            return Ok(answer["result"].clone());
        }
        Err(ChatError::Refused {
            service: "Telegram",
            method: method.to_string(),
            status: status.as_u16(),
            description: answer["description"]
                .as_str()
                .unwrap_or("no description")
                .chars()
                .take(500)
                .collect(),
            passing: status.is_server_error() || status.as_u16() == 429,
        })
    }
}

/// Slack's Web API, as the configured app's bot.
#[derive(Clone)]
pub struct Slack {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Slack {
    /// The bot the settings `s` (as the caller read them) configure.
    pub async fn configured(
        orch: &Orchestrator,
        s: &apiary_core::Settings,
    ) -> Result<Slack, ChatError> {
        let token = bot_token(orch, SLACK_BOT_TOKEN, "Slack").await?;
        Ok(Slack {
            http: http(),
            base: s.slack.api_base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Calls a Web API method with a JSON body; the whole answer (Slack answers 200 with
    /// `ok: false` for a refusal).
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ChatError> {
        let resp = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| ChatError::Unreachable {
                service: "Slack",
                detail: e.to_string(),
            })?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() && answer["ok"] == json!(true) {
            return Ok(answer);
        }
        Err(ChatError::Refused {
            service: "Slack",
            method: method.to_string(),
            status: status.as_u16(),
            description: answer["error"]
                .as_str()
                .unwrap_or("no error given")
                .chars()
                .take(500)
                .collect(),
            passing: status.is_server_error() || status.as_u16() == 429,
        })
    }
}

/// The inline keyboard of a Telegram notification: the actions the event allows (when Apiary
/// hears button presses) and a link to the task.
pub fn telegram_keyboard(msg: &Message, task_id: &str, event_id: i64, actions: bool) -> Value {
    let mut rows = Vec::new();
    let buttons: Vec<Value> = ChatAction::for_event(msg.event)
        .iter()
        .filter(|_| actions)
        .map(|a| json!({ "text": a.label(), "callback_data": a.button_data(task_id, event_id) }))
        .collect();
    if !buttons.is_empty() {
        rows.push(buttons);
    }
    rows.push(vec![json!({ "text": "Open", "url": msg.task_url })]);
    json!({ "inline_keyboard": rows })
}

/// The Block Kit blocks of a Slack notification: the text, then the actions the event allows
/// and a link to the task.
pub fn slack_blocks(msg: &Message, task_id: &str, event_id: i64) -> Value {
    let mut elements: Vec<Value> = ChatAction::for_event(msg.event)
        .iter()
        .map(|a| {
            let mut b = json!({
                "type": "button",
                "action_id": a.code(),
                "text": { "type": "plain_text", "text": a.label() },
                "value": format!("{task_id}:{event_id}"),
            });
            match a {
                ChatAction::Approve | ChatAction::Merge | ChatAction::Retry => {
                    b["style"] = json!("primary")
                }
                ChatAction::Cancel => b["style"] = json!("danger"),
                _ => {}
            }
            b
        })
        .collect();
    elements.push(json!({
        "type": "button",
        "action_id": "open",
        "text": { "type": "plain_text", "text": "Open" },
        "url": msg.task_url,
    }));
    json!([
        { "type": "section", "block_id": "apiary_text", "text": { "type": "mrkdwn", "text": msg.slack_mrkdwn() } },
        { "type": "actions", "block_id": "apiary_actions", "elements": elements },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiary_core::NotifyEvent;

    fn msg(event: NotifyEvent) -> Message {
        Message {
            event,
            task_title: "T".into(),
            project_name: "P".into(),
            task_url: "http://127.0.0.1:1/tasks/t1".into(),
            spec_url: None,
            pr_url: None,
            code_url: None,
            site_url: None,
            error: None,
        }
    }

    #[test]
    fn the_buttons_follow_the_event_and_are_left_out_when_apiary_cannot_hear_them() {
        let k = telegram_keyboard(&msg(NotifyEvent::SpecReady), "t1", 7, true);
        assert_eq!(k["inline_keyboard"][0][0]["callback_data"], "ap:t1:7");
        assert_eq!(k["inline_keyboard"][0][1]["text"], "Ask for revision");
        assert_eq!(
            k["inline_keyboard"][1][0]["url"],
            "http://127.0.0.1:1/tasks/t1"
        );
        let k = telegram_keyboard(&msg(NotifyEvent::SpecReady), "t1", 7, false);
        assert_eq!(k["inline_keyboard"].as_array().unwrap().len(), 1);
        let b = slack_blocks(&msg(NotifyEvent::Failed), "t1", 7);
        assert_eq!(b[1]["elements"][0]["value"], "t1:7");
        let el = &b[1]["elements"];
        assert_eq!(el[0]["action_id"], "rt");
        assert_eq!(el[1]["style"], "danger");
        assert_eq!(el[2]["action_id"], "open");
        let b = slack_blocks(&msg(NotifyEvent::Merged), "t1", 7);
        assert_eq!(b[1]["elements"].as_array().unwrap().len(), 1);
    }
}
