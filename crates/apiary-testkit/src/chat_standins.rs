//! Local stand-ins of Telegram's Bot API and Slack's Web API, on loopback, for Apiary's chat
//! channels. They answer the way the services do (a sent Telegram message comes back as
//! Telegram renders MarkdownV2: plain text and entities), record every request, every answer
//! and every update or payload a test builds, and [`TelegramStandin::check_conformance`] /
//! [`SlackStandin::check_conformance`] validate all of them against the services' published
//! types (`scripts/check_telegram_requests.py`: PyPI aiogram's Bot API models;
//! `scripts/check_slack_requests.py`: JSON Schemas generated from npm @slack/web-api and
//! @slack/bolt by `make chat-schemas`), so the stand-ins cannot drift into fiction.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiary_core::notify::check_md2;
use axum::body::Bytes;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The bodies of the recorded requests to `method`, in order.
fn request_bodies(records: &[Value], method: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["kind"] == "request" && r["method"] == method)
        .map(|r| r["body"].clone())
        .collect()
}

fn run_checker(script: &str, records: &[Value], extra: &[PathBuf]) {
    assert!(!records.is_empty(), "nothing to check");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("records.json");
    std::fs::write(&log, serde_json::to_vec(records).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts")
                .join(script),
        )
        .arg(&log)
        .args(extra)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{script}: records that do not conform to the service's published types:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Telegram user pressing buttons and writing messages.
#[derive(Debug, Clone)]
pub struct TgUser {
    pub id: i64,
    pub first_name: String,
    pub username: String,
}

impl TgUser {
    pub fn new(id: i64, username: &str) -> TgUser {
        TgUser {
            id,
            first_name: username.to_string(),
            username: username.to_string(),
        }
    }

    fn json(&self) -> Value {
        json!({ "id": self.id, "is_bot": false, "first_name": self.first_name, "username": self.username, "language_code": "en" })
    }
}

#[derive(Default)]
struct TgState {
    records: Vec<Value>,
    updates: VecDeque<Value>,
    next_message: i64,
    next_update: i64,
    /// Messages as Telegram holds them, by (chat, message id).
    messages: Vec<Value>,
}

/// Telegram's Bot API for one bot.
#[derive(Clone)]
pub struct TelegramStandin {
    pub url: String,
    pub token: String,
    state: Arc<Mutex<TgState>>,
}

/// The bot itself, as Telegram describes it.
fn bot_user() -> Value {
    json!({ "id": 7012345678i64, "is_bot": true, "first_name": "Apiary", "username": "apiary_test_bot" })
}

/// How Telegram renders MarkdownV2: the text without markup, and the entities (offsets in
/// UTF-16 code units). Bold and links are what Apiary writes; a `tg://user?id=` link becomes
/// a text mention.
pub fn render_md2(md: &str) -> (String, Vec<Value>) {
    let chars: Vec<char> = md.chars().collect();
    let mut out = String::new();
    let mut at = 0usize; // UTF-16 offset of `out`'s end
    let mut entities = Vec::new();
    let mut bold_from: Option<usize> = None;
    let mut i = 0;
    let push = |out: &mut String, at: &mut usize, c: char| {
        out.push(c);
        *at += c.len_utf16();
    };
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                push(&mut out, &mut at, chars[i + 1]);
                i += 2;
            }
            '*' => {
                match bold_from.take() {
                    Some(from) => entities
                        .push(json!({ "type": "bold", "offset": from, "length": at - from })),
                    None => bold_from = Some(at),
                }
                i += 1;
            }
            '[' => {
                let from = at;
                i += 1;
                while i < chars.len() && chars[i] != ']' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    push(&mut out, &mut at, chars[i]);
                    i += 1;
                }
                i += 2; // "]("
                let mut url = String::new();
                while i < chars.len() && chars[i] != ')' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    url.push(chars[i]);
                    i += 1;
                }
                i += 1;
                match url.strip_prefix("tg://user?id=").and_then(|id| id.parse::<i64>().ok()) {
                    Some(id) => entities.push(json!({ "type": "text_mention", "offset": from, "length": at - from,
                        "user": { "id": id, "is_bot": false, "first_name": "user" } })),
                    None => entities.push(json!({ "type": "text_link", "offset": from, "length": at - from, "url": url })),
                }
            }
            c => {
                push(&mut out, &mut at, c);
                i += 1;
            }
        }
    }
    (out, entities)
}

impl TelegramStandin {
    /// Starts the Bot API for the bot with `token`.
    pub async fn start(token: &str) -> TelegramStandin {
        let state = Arc::new(Mutex::new(TgState {
            next_message: 100,
            next_update: 500_000,
            ..Default::default()
        }));
        let (st, tok) = (state.clone(), token.to_string());
        let app = axum::Router::new().route(
            "/{bot}/{method}",
            axum::routing::post(
                move |UrlPath((bot, method)): UrlPath<(String, String)>, Json(body): Json<Value>| {
                    let (st, tok) = (st.clone(), tok.clone());
                    async move {
                        if bot != format!("bot{tok}") {
                            return (StatusCode::UNAUTHORIZED, Json(json!({ "ok": false, "error_code": 401, "description": "Unauthorized" })));
                        }
                        if method == "getUpdates" {
                            // A long poll, shortened: up to a second for an update.
                            for _ in 0..20 {
                                if !st.lock().unwrap().updates.is_empty() {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                        let (status, answer) = Self::answer(&st, &method, &body);
                        let mut s = st.lock().unwrap();
                        s.records.push(json!({ "kind": "request", "method": method, "body": body }));
                        s.records.push(json!({ "kind": "answer", "method": method, "body": answer }));
                        (status, Json(answer))
                    }
                },
            ),
        );
        TelegramStandin {
            url: serve(app).await,
            token: token.to_string(),
            state,
        }
    }

    fn answer(st: &Mutex<TgState>, method: &str, body: &Value) -> (StatusCode, Value) {
        let refuse = |d: String| {
            (
                StatusCode::BAD_REQUEST,
                json!({ "ok": false, "error_code": 400, "description": format!("Bad Request: {d}") }),
            )
        };
        let mut s = st.lock().unwrap();
        match method {
            "sendMessage" | "editMessageText" => {
                let raw = body["text"].as_str().unwrap_or_default();
                let (text, entities) = if body["parse_mode"] == "MarkdownV2" {
                    if let Err(at) = check_md2(raw) {
                        return refuse(format!(
                            "can't parse entities: character at byte offset {at}"
                        ));
                    }
                    render_md2(raw)
                } else {
                    let entities = body["entities"].as_array().cloned().unwrap_or_default();
                    (raw.to_string(), entities)
                };
                if text.is_empty() {
                    return refuse("message text is empty".into());
                }
                let chat_id = body["chat_id"]
                    .as_i64()
                    .or_else(|| body["chat_id"].as_str().and_then(|c| c.parse().ok()));
                let Some(chat_id) = chat_id else {
                    return refuse("chat not found".into());
                };
                let chat = if chat_id < 0 {
                    json!({ "id": chat_id, "type": "supergroup", "title": "Reviewers" })
                } else {
                    json!({ "id": chat_id, "type": "private", "first_name": "someone" })
                };
                let id =
                    if method == "editMessageText" {
                        let id = body["message_id"].as_i64().unwrap_or_default();
                        if !s.messages.iter().any(|m| {
                            m["message_id"] == json!(id) && m["chat"]["id"] == json!(chat_id)
                        }) {
                            return refuse("message to edit not found".into());
                        }
                        id
                    } else {
                        s.next_message += 1;
                        s.next_message
                    };
                let mut m = json!({ "message_id": id, "from": bot_user(), "chat": chat, "date": 1_764_000_000, "text": text });
                if method == "editMessageText" {
                    m["edit_date"] = json!(1_764_000_100);
                }
                if !entities.is_empty() {
                    m["entities"] = json!(entities);
                }
                if body["reply_markup"]["inline_keyboard"].is_array() {
                    m["reply_markup"] = body["reply_markup"].clone();
                }
                if let Some(to) = body["reply_parameters"]["message_id"].as_i64() {
                    if let Some(orig) = s
                        .messages
                        .iter()
                        .find(|o| o["message_id"] == json!(to) && o["chat"]["id"] == json!(chat_id))
                    {
                        m["reply_to_message"] = orig.clone();
                    }
                }
                s.messages.retain(|o| {
                    !(o["message_id"] == json!(id) && o["chat"]["id"] == json!(chat_id))
                });
                s.messages.push(m.clone());
                (StatusCode::OK, json!({ "ok": true, "result": m }))
            }
            "answerCallbackQuery" | "setWebhook" | "deleteWebhook" => {
                (StatusCode::OK, json!({ "ok": true, "result": true }))
            }
            "getUpdates" => {
                let updates: Vec<Value> = s.updates.drain(..).collect();
                (StatusCode::OK, json!({ "ok": true, "result": updates }))
            }
            "getMe" => (StatusCode::OK, json!({ "ok": true, "result": bot_user() })),
            other => (
                StatusCode::NOT_FOUND,
                json!({ "ok": false, "error_code": 404, "description": format!("Not Found: method {other} not found") }),
            ),
        }
    }

    /// The bodies of every call to `method`, in order.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        request_bodies(&self.state.lock().unwrap().records, method)
    }

    /// The messages as Telegram holds them now (sent, and edited in place), oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut m = self.state.lock().unwrap().messages.clone();
        m.sort_by_key(|m| m["message_id"].as_i64());
        m
    }

    /// Waits until a message satisfies `pred`, and returns it.
    pub async fn wait_message(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            if let Some(m) = self.messages().into_iter().rev().find(|m| pred(m)) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no Telegram message {what}; messages: {:#}",
            json!(self.messages())
        );
    }

    fn update(&self, kind: &str, body: Value) -> Value {
        let mut s = self.state.lock().unwrap();
        s.next_update += 1;
        let update = json!({ "update_id": s.next_update, kind: body });
        s.records.push(json!({ "kind": "update", "body": update }));
        update
    }

    /// The update Telegram sends when `from` presses the button whose data is `data` under
    /// `message`.
    pub fn press(&self, message: &Value, from: &TgUser, data: &str) -> Value {
        let id = format!("{}{}", from.id, message["message_id"]);
        self.update(
            "callback_query",
            json!({ "id": id, "from": from.json(), "message": message, "chat_instance": "-2793815934557612817", "data": data }),
        )
    }

    /// The update for `from` writing `text` in reply to `to`.
    pub fn reply(&self, to: &Value, from: &TgUser, text: &str) -> Value {
        let id = {
            let mut s = self.state.lock().unwrap();
            s.next_message += 1;
            s.next_message
        };
        let m = json!({ "message_id": id, "from": from.json(), "chat": to["chat"], "date": 1_764_000_200, "text": text, "reply_to_message": to });
        self.update("message", m)
    }

    /// The update for `from` writing `text` to the bot in a private chat.
    pub fn private_text(&self, from: &TgUser, text: &str) -> Value {
        let id = {
            let mut s = self.state.lock().unwrap();
            s.next_message += 1;
            s.next_message
        };
        let chat = json!({ "id": from.id, "type": "private", "first_name": from.first_name, "username": from.username });
        let mut m = json!({ "message_id": id, "from": from.json(), "chat": chat, "date": 1_764_000_200, "text": text });
        if let Some(cmd) = text
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with('/'))
        {
            m["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": cmd.encode_utf16().count() }]);
        }
        self.update("message", m)
    }

    /// Queues an update for the next `getUpdates`.
    pub fn queue(&self, update: Value) {
        self.state.lock().unwrap().updates.push_back(update);
    }

    /// Validates every request, answer and update against aiogram's Bot API models; panics
    /// naming each one that does not conform.
    pub fn check_conformance(&self) -> usize {
        let records = self.state.lock().unwrap().records.clone();
        run_checker("check_telegram_requests.py", &records, &[]);
        records.len()
    }
}

/// Where `make chat-schemas` puts Slack's generated JSON Schemas.
pub fn slack_schemas_dir() -> PathBuf {
    match std::env::var_os("APIARY_CHAT_SCHEMAS") {
        Some(d) => PathBuf::from(d).join("slack"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/chat-schemas/slack"),
    }
}

/// A Slack user in the workspace.
#[derive(Debug, Clone)]
pub struct SlackUser {
    pub id: String,
    pub name: String,
}

impl SlackUser {
    pub fn new(id: &str, name: &str) -> SlackUser {
        SlackUser {
            id: id.into(),
            name: name.into(),
        }
    }

    fn json(&self) -> Value {
        json!({ "id": self.id, "username": self.name, "name": self.name, "team_id": TEAM })
    }
}

const TEAM: &str = "T07QGZ9XY12";
const APP: &str = "A07QJ5D6E7F";
const BOT: &str = "B07QJ5G6H7I";

#[derive(Default)]
struct SlackState {
    records: Vec<Value>,
    /// Messages as Slack holds them (channel, message).
    messages: Vec<(String, Value)>,
    next_ts: u64,
}

/// Slack's Web API for one app, and the requests Slack makes to Apiary.
#[derive(Clone)]
pub struct SlackStandin {
    pub url: String,
    pub token: String,
    pub signing_secret: String,
    state: Arc<Mutex<SlackState>>,
}

impl SlackStandin {
    /// Starts the Web API for the app whose bot token is `token`.
    pub async fn start(token: &str, signing_secret: &str) -> SlackStandin {
        let state = Arc::new(Mutex::new(SlackState {
            next_ts: 1_764_000_000_000_100,
            ..Default::default()
        }));
        let (st, tok) = (state.clone(), token.to_string());
        let app = axum::Router::new().route(
            "/{method}",
            axum::routing::post(
                move |UrlPath(method): UrlPath<String>, headers: HeaderMap, body: Bytes| {
                    let (st, tok) = (st.clone(), tok.clone());
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let answer = if auth != format!("Bearer {tok}") {
                            json!({ "ok": false, "error": "invalid_auth" })
                        } else {
                            Self::answer(&st, &method, &body)
                        };
                        let mut s = st.lock().unwrap();
                        s.records
                            .push(json!({ "kind": "request", "method": method, "body": body }));
                        Json(answer)
                    }
                },
            ),
        );
        SlackStandin {
            url: serve(app).await,
            token: token.into(),
            signing_secret: signing_secret.into(),
            state,
        }
    }

    fn answer(st: &Mutex<SlackState>, method: &str, body: &Value) -> Value {
        let mut s = st.lock().unwrap();
        let channel = body["channel"].as_str().unwrap_or_default().to_string();
        match method {
            "chat.postMessage" => {
                if channel.is_empty()
                    || body["text"].as_str().unwrap_or_default().is_empty()
                        && !body["blocks"].is_array()
                {
                    return json!({ "ok": false, "error": "no_text" });
                }
                s.next_ts += 1;
                let ts = format!("{}.{:06}", s.next_ts / 1_000_000, s.next_ts % 1_000_000);
                let message = json!({ "type": "message", "user": "U07QJ8B0T01", "bot_id": BOT, "app_id": APP, "team": TEAM,
                    "ts": ts, "text": body["text"], "blocks": body["blocks"] });
                s.messages.push((channel.clone(), message.clone()));
                json!({ "ok": true, "channel": channel, "ts": ts, "message": message })
            }
            "chat.update" => {
                let ts = body["ts"].as_str().unwrap_or_default().to_string();
                let Some((_, m)) = s
                    .messages
                    .iter_mut()
                    .find(|(c, m)| *c == channel && m["ts"] == json!(ts))
                else {
                    return json!({ "ok": false, "error": "message_not_found" });
                };
                m["text"] = body["text"].clone();
                m["blocks"] = body["blocks"].clone();
                m["edited"] = json!({ "user": "U07QJ8B0T01", "ts": ts });
                json!({ "ok": true, "channel": channel, "ts": ts, "text": body["text"] })
            }
            "chat.postEphemeral" => {
                s.next_ts += 1;
                json!({ "ok": true, "message_ts": format!("{}.{:06}", s.next_ts / 1_000_000, s.next_ts % 1_000_000) })
            }
            "views.open" => {
                if body["trigger_id"].as_str().unwrap_or_default().is_empty() {
                    return json!({ "ok": false, "error": "invalid_trigger_id" });
                }
                let mut view = body["view"].clone();
                view["id"] = json!("V07QK2L3M4N");
                json!({ "ok": true, "view": view })
            }
            _ => json!({ "ok": false, "error": "unknown_method" }),
        }
    }

    /// The bodies of every call to `method`, in order.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        request_bodies(&self.state.lock().unwrap().records, method)
    }

    /// The messages in the channel as Slack holds them now (edits applied), oldest first.
    pub fn messages(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Waits until a channel message satisfies `pred`; (channel, message).
    pub async fn wait_message(&self, what: &str, pred: impl Fn(&Value) -> bool) -> (String, Value) {
        for _ in 0..200 {
            if let Some(m) = self.messages().into_iter().rev().find(|(_, m)| pred(m)) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no Slack message {what}; messages: {:?}", self.messages());
    }

    fn record_payload(&self, kind: &str, body: &Value) {
        self.state
            .lock()
            .unwrap()
            .records
            .push(json!({ "kind": "payload", "type": kind, "body": body }));
    }

    /// The `block_actions` payload Slack sends when `user` presses the button `action_id` of
    /// `message` in `channel`.
    pub fn press(
        &self,
        channel: &str,
        message: &Value,
        user: &SlackUser,
        action_id: &str,
    ) -> Value {
        let button = message["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .find(|e| e["action_id"] == action_id)
            .unwrap_or_else(|| panic!("no button {action_id} in {message}"));
        let mut action = button.clone();
        action["block_id"] = json!("apiary_actions");
        action["action_ts"] = json!("1764000021.604187");
        let payload = json!({
            "type": "block_actions", "user": user.json(), "api_app_id": APP, "token": "verification-token",
            "container": { "type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": false },
            "trigger_id": "8091736354417.7830291145680.5d2c9a6f0e3b14c7a8f1e2d3c4b5a697",
            "team": { "id": TEAM, "domain": "apiary-test" }, "is_enterprise_install": false,
            "channel": { "id": channel, "name": "apiary" }, "message": message, "state": { "values": {} },
            "response_url": "https://hooks.slack.com/actions/T07QGZ9XY12/1/x", "actions": [action],
        });
        self.record_payload("block_actions", &payload);
        payload
    }

    /// The `view_submission` payload when `user` submits the modal Apiary opened last with
    /// `text` in its input.
    pub fn submit(&self, user: &SlackUser, text: &str) -> Value {
        let opened = self.calls("views.open").pop().expect("a modal was opened");
        let mut view = opened["view"].clone();
        let input = view["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["type"] == "input")
            .cloned()
            .expect("the modal has an input");
        let (block, action) = (
            input["block_id"].as_str().unwrap(),
            input["element"]["action_id"].as_str().unwrap(),
        );
        view["id"] = json!("V07QK2L3M4N");
        view["team_id"] = json!(TEAM);
        view["state"] = json!({ "values": { block: { action: { "type": "plain_text_input", "value": text } } } });
        view["hash"] = json!("1764000030.kR7mQ2pZ");
        view["root_view_id"] = json!("V07QK2L3M4N");
        view["previous_view_id"] = Value::Null;
        view["app_id"] = json!(APP);
        view["external_id"] = json!("");
        view["app_installed_team_id"] = json!(TEAM);
        view["bot_id"] = json!(BOT);
        view["clear_on_close"] = json!(false);
        view["notify_on_close"] = json!(false);
        let payload = json!({
            "type": "view_submission", "team": { "id": TEAM, "domain": "apiary-test" }, "user": user.json(),
            "api_app_id": APP, "token": "verification-token", "trigger_id": "8091741125523.7830291145680.0f1e2d3c4b5a6978",
            "view": view, "response_urls": [], "is_enterprise_install": false,
        });
        self.record_payload("view_submission", &payload);
        payload
    }

    /// The form of the slash command `/apiary <text>` typed by `user`.
    pub fn command(&self, user: &SlackUser, text: &str) -> Vec<(String, String)> {
        let fields = json!({
            "token": "verification-token", "team_id": TEAM, "team_domain": "apiary-test", "channel_id": "C07QH3B8K2M",
            "channel_name": "apiary", "user_id": user.id, "user_name": user.name, "command": "/apiary", "text": text,
            "api_app_id": APP, "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T07QGZ9XY12/1/x", "trigger_id": "8091744467214.7830291145680.a1b2",
        });
        self.record_payload("slash_command", &fields);
        fields
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    }

    /// The headers Slack signs a request to Apiary with, sent at `ts` (seconds).
    pub fn signed(&self, body: &str, ts: i64) -> reqwest::header::HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.signing_secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-slack-request-timestamp", ts.to_string().parse().unwrap());
        h.insert(
            "x-slack-signature",
            format!("v0={}", hex::encode(mac.finalize().into_bytes()))
                .parse()
                .unwrap(),
        );
        h.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        h
    }

    /// Validates every request Apiary made and every payload a test built against the
    /// schemas generated from Slack's SDK types; panics naming each one that does not conform.
    pub fn check_conformance(&self) -> usize {
        let records = self.state.lock().unwrap().records.clone();
        run_checker("check_slack_requests.py", &records, &[slack_schemas_dir()]);
        records.len()
    }
}
