//! Acting from chat, against local stand-ins of Telegram's Bot API and Slack's Web API whose
//! requests, answers, updates and payloads are checked against the services' published types.
//! A linked chat user acts as their Apiary user, with exactly that user's rights; an unlinked
//! one, a read-only one and a stale button change nothing and are told why; forged requests
//! are refused.

use std::time::Duration;

use apiary_core::AgentStatus;
use apiary_testkit::chat_standins::{SlackStandin, SlackUser, TelegramStandin, TgUser};
use apiary_testkit::{Client, TestApp};
use serde_json::{json, Value};

use crate::agent_loop::{provisioned_task, ControlPlane};

const BOT_TOKEN: &str = "123456:test-bot-token";
const GROUP: i64 = -1001234567890;
const SLACK_CHANNEL: &str = "C07QH3B8K2M";

struct Chat {
    app: TestApp,
    admin: Client,
    tg: TelegramStandin,
    slack: SlackStandin,
    /// The secret Apiary registered with `setWebhook` (webhook mode).
    secret: Option<String>,
}

impl Chat {
    async fn start(telegram_updates: &str) -> Chat {
        let app = TestApp::spawn().await;
        let admin = app.admin().await;
        let tg = TelegramStandin::start(BOT_TOKEN).await;
        let slack = SlackStandin::start("xoxb-test-token", "slack-signing-secret").await;
        let (status, body) = admin
            .patch(
                "/api/v1/settings",
                json!({
                    "log_notifications": false,
                    "telegram": { "enabled": true, "bot_token": BOT_TOKEN, "chat_id": GROUP.to_string(), "api_base": tg.url,
                                  "updates": telegram_updates, "bot_username": "@apiary_test_bot" },
                    "slack": { "enabled": true, "bot_token": "xoxb-test-token", "signing_secret": "slack-signing-secret",
                               "channel": SLACK_CHANNEL, "api_base": slack.url },
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["telegram"]["bot_username"], "apiary_test_bot");
        assert_eq!(body["slack"]["signing_secret"], json!({ "set": true }));
        assert!(!body.to_string().contains("slack-signing-secret"));
        let secret = tg.calls("setWebhook").last().map(|c| {
            assert_eq!(
                c["url"],
                format!("{}/api/v1/telegram/webhook", app.base),
                "{c}"
            );
            c["secret_token"].as_str().unwrap().to_string()
        });
        Chat {
            app,
            admin,
            tg,
            slack,
            secret,
        }
    }

    /// Sends an update the way Telegram does in the configured mode; the webhook's status.
    async fn deliver(&self, update: Value) -> u16 {
        match &self.secret {
            Some(secret) => self.webhook(update, Some(secret)).await,
            None => {
                self.tg.queue(update);
                200
            }
        }
    }

    async fn webhook(&self, update: Value, secret: Option<&str>) -> u16 {
        let mut r = reqwest::Client::new()
            .post(format!("{}/api/v1/telegram/webhook", self.app.base))
            .json(&update);
        if let Some(s) = secret {
            r = r.header("x-telegram-bot-api-secret-token", s);
        }
        r.send().await.unwrap().status().as_u16()
    }

    /// A project member with `access`, and their Telegram account linked to them.
    async fn member(&self, pid: &str, email: &str, access: &str, tg: &TgUser) -> (Client, String) {
        let (client, user) = self.app.member(email).await;
        let (status, body) = self
            .admin
            .put(
                &format!("/api/v1/projects/{pid}/members/{}", user.id),
                json!({ "access": access }),
            )
            .await;
        assert_eq!(status, 204, "{body}");
        let code = link_code(&client, true).await;
        let status = self
            .deliver(self.tg.private_text(tg, &format!("/start {code}")))
            .await;
        assert_eq!(status, 200);
        self.tg
            .wait_message("confirming the link", |m| {
                m["chat"]["id"] == json!(tg.id)
                    && m["text"].as_str().is_some_and(|t| {
                        t.starts_with(&format!(
                            "Linked: this Telegram account now acts as {}",
                            user.name
                        ))
                    })
            })
            .await;
        (client, user.id)
    }

    async fn status(&self, tid: &str) -> AgentStatus {
        self.app.store.get_task(tid).await.unwrap().agent_status
    }

    async fn wait_status(&self, tid: &str, want: AgentStatus) {
        for _ in 0..200 {
            if self.status(tid).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "task {tid} did not reach {want}; it is {}",
            self.status(tid).await
        );
    }

    /// The last answer to a button press.
    async fn answered(&self, n: usize) -> Value {
        for _ in 0..200 {
            let calls = self.tg.calls("answerCallbackQuery");
            if calls.len() >= n {
                return calls[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("fewer than {n} callback answers");
    }
}

/// The admin's id (any signed-in user will do for a personal token).
async fn admin_id(c: &Chat) -> String {
    let (_, me) = c.admin.get("/api/v1/me").await;
    me["user"]["id"].as_str().unwrap().to_string()
}

/// A link code; the Telegram deep link is offered only while Apiary hears Telegram.
async fn link_code(client: &Client, telegram: bool) -> String {
    let (status, body) = client.post("/api/v1/me/chat-links/code", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let code = body["code"].as_str().unwrap().to_string();
    let deep_link = format!("https://t.me/apiary_test_bot?start={code}");
    assert_eq!(
        body["telegram_url"],
        if telegram {
            json!(deep_link)
        } else {
            Value::Null
        }
    );
    assert_eq!(body["slack_command"], format!("/apiary link {code}"));
    code
}

/// A task waiting at `spec_ready` with its box's callback client.
async fn spec_ready(c: &Chat) -> (String, String, Client) {
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (pid, tid, tokens) = provisioned_task(&c.app, &c.admin, &url).await;
    let bx = Client::with_bearer(&c.app.base, &tokens.callback_token);
    let (status, body) = bx
        .post(
            &format!("/api/v1/agent/tasks/{tid}/status"),
            json!({ "status": "speccing" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The box is in place (the provisioning job has nothing left to do): the worker runs
    // from here, delivering notifications and dispatching rounds to the control plane.
    c.app.start_worker();
    submit_spec(&bx, &tid, "# Spec\nA footer.").await;
    (pid, tid, bx)
}

async fn submit_spec(bx: &Client, tid: &str, spec: &str) {
    let (status, body) = bx
        .post(
            &format!("/api/v1/agent/tasks/{tid}/spec"),
            json!({ "spec_markdown": spec }),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("spec_ready")),
        "{body}"
    );
}

/// The button `label` of a Telegram message.
fn button(m: &Value, label: &str) -> String {
    m["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .find(|b| b["text"] == label)
        .and_then(|b| b["callback_data"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no button {label} on {m}"))
}

fn is_spec_ready(m: &Value) -> bool {
    m["chat"]["id"] == json!(GROUP)
        && m["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Spec ready for review"))
}

#[tokio::test]
async fn a_linked_telegram_user_approves_from_the_button_and_others_are_told_why_not() {
    let c = Chat::start("webhook").await;
    let (pid, tid, _bx) = spec_ready(&c).await;
    let (ann, ben, stranger) = (
        TgUser::new(5001, "ann"),
        TgUser::new(5002, "ben"),
        TgUser::new(5003, "eve"),
    );
    let (_, ann_id) = c.member(&pid, "ann@example.test", "write", &ann).await;
    c.member(&pid, "ben@example.test", "read", &ben).await;
    let note =
        c.tg.wait_message("SPEC_READY with buttons", is_spec_ready)
            .await;
    let approve = button(&note, "Approve");
    button(&note, "Ask for revision");
    assert!(note["entities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "text_link"));

    // Forged deliveries: no secret, a wrong one.
    let press = c.tg.press(&note, &ann, &approve);
    // Data a client made up (not a button of this message) is refused, whoever sends it.
    let made_up = c.tg.press(&note, &ann, &format!("ap:{tid}:999999999"));
    assert_eq!(c.webhook(made_up, c.secret.as_deref()).await, 200);
    let a = c.answered(1).await;
    assert_eq!(a["text"], "This button is not one of this message's.");
    // Only a person at the UI gets a link code: not a personal token.
    let (_, token) = c
        .app
        .store
        .create_api_token(&admin_id(&c).await, "ci")
        .await
        .unwrap();
    let (status, _) = Client::with_bearer(&c.app.base, &token)
        .post("/api/v1/me/chat-links/code", json!({}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(c.webhook(press.clone(), None).await, 401);
    assert_eq!(c.webhook(press.clone(), Some("not-the-secret")).await, 401);
    assert_eq!(c.status(&tid).await, AgentStatus::SpecReady);

    // An unlinked Telegram user, and a linked read-only member: nothing changes, they learn why.
    assert_eq!(c.deliver(c.tg.press(&note, &stranger, &approve)).await, 200);
    let a = c.answered(2).await;
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .contains("not linked to an Apiary user"),
        "{a}"
    );
    assert_eq!(a["show_alert"], true);
    assert_eq!(c.deliver(c.tg.press(&note, &ben, &approve)).await, 200);
    let a = c.answered(3).await;
    assert!(a["text"].as_str().unwrap().contains("read-only"), "{a}");
    assert_eq!(c.status(&tid).await, AgentStatus::SpecReady);

    // Ann approves: the transition, the answer, the message edited to say so.
    assert_eq!(c.deliver(press.clone()).await, 200);
    let a = c.answered(4).await;
    assert_eq!(a["text"], "Approved by ann via Telegram");
    // Telegram redelivers the same update (it took our answer for lost): taken once only.
    let answers = c.tg.calls("answerCallbackQuery").len();
    assert_eq!(c.deliver(press).await, 200);
    assert_eq!(c.tg.calls("answerCallbackQuery").len(), answers);
    assert_ne!(c.status(&tid).await, AgentStatus::SpecReady);
    let edited =
        c.tg.wait_message("edited after the approval", |m| {
            m["message_id"] == note["message_id"] && m["edit_date"].is_number()
        })
        .await;
    assert!(
        edited["text"]
            .as_str()
            .unwrap()
            .ends_with("\n\nApproved by ann via Telegram"),
        "{edited}"
    );
    assert_eq!(
        edited["entities"], note["entities"],
        "the formatting is kept"
    );
    let rows = edited["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap();
    assert_eq!(rows.len(), 1, "only the link to the task is left: {edited}");
    assert!(rows[0][0]["url"].is_string());

    // In the audit trail as Ann, via Telegram.
    let (_, events) = c.admin.get(&format!("/api/v1/tasks/{tid}/events")).await;
    let approved = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to_status"] == "spec_approved")
        .expect("the approval");
    assert_eq!(
        (approved["actor_id"].as_str(), approved["via"].as_str()),
        (Some(ann_id.as_str()), Some("telegram"))
    );

    // The same button again: the task moved on, nothing changes, the answer says where it is.
    assert_eq!(c.deliver(c.tg.press(&note, &ann, &approve)).await, 200);
    let a = c.answered(5).await;
    let text = a["text"].as_str().unwrap();
    assert!(
        text.starts_with("Nothing changed: the task has moved on; it is now"),
        "{a}"
    );
    assert!(
        text.contains("spec_approved") || text.contains("implementing"),
        "{a}"
    );
    let (_, after) = c.admin.get(&format!("/api/v1/tasks/{tid}/events")).await;
    let by_chat = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["via"] == "telegram")
        .count();
    assert_eq!(by_chat, 1, "one action from Telegram: {after}");

    // Unlinking in the UI ends it: the next press is refused.
    let (ann_client, _) = (c.app.login("ann@example.test", "member password").await, ());
    let (status, links) = ann_client.get("/api/v1/me/chat-links").await;
    assert_eq!(
        (
            status,
            links[0]["via"].as_str(),
            links[0]["chat_user_name"].as_str()
        ),
        (200, Some("telegram"), Some("@ann"))
    );
    let (status, _) = ann_client
        .send_raw(
            reqwest::Method::DELETE,
            "/api/v1/me/chat-links/telegram",
            "",
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(c.deliver(c.tg.press(&note, &ann, &approve)).await, 200);
    let a = c.answered(6).await;
    assert!(a["text"].as_str().unwrap().contains("not linked"), "{a}");
    // Leaving webhook mode drops the webhook with the token Telegram knows.
    let (status, body) = c
        .admin
        .patch(
            "/api/v1/settings",
            json!({ "telegram": { "updates": "off" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.tg.calls("deleteWebhook").len(), 1);
    assert_eq!(
        c.webhook(c.tg.press(&note, &ann, &approve), c.secret.as_deref())
            .await,
        404
    );
    c.tg.check_conformance();
}

#[tokio::test]
async fn ask_for_revision_takes_the_reply_as_feedback_and_an_old_button_never_approves_the_new_spec(
) {
    // Long polling: Apiary asks Telegram, nothing calls Apiary.
    let c = Chat::start("polling").await;
    assert!(c.secret.is_none());
    assert_eq!(
        c.tg.calls("deleteWebhook").len(),
        1,
        "a webhook would block getUpdates"
    );
    let (pid, tid, bx) = spec_ready(&c).await;
    let ann = TgUser::new(6001, "ann");
    c.member(&pid, "ann@example.test", "write", &ann).await;
    let first = c.tg.wait_message("SPEC_READY", is_spec_ready).await;

    c.deliver(c.tg.press(&first, &ann, &button(&first, "Ask for revision")))
        .await;
    let question =
        c.tg.wait_message("asking for the feedback", |m| {
            m["text"].as_str().is_some_and(|t| {
                t.contains("reply to this message with what the spec should change")
            })
        })
        .await;
    let asked =
        c.tg.calls("sendMessage")
            .into_iter()
            .find(|b| b["reply_markup"]["force_reply"] == true)
            .expect("a ForceReply");
    assert_eq!(asked["reply_markup"]["selective"], true);
    assert_eq!(
        c.status(&tid).await,
        AgentStatus::SpecReady,
        "nothing changes before the words arrive"
    );
    // Someone else's reply to the question is not taken as Ann's.
    c.deliver(c.tg.reply(&question, &TgUser::new(6002, "eve"), "ignore the spec"))
        .await;
    c.deliver(c.tg.reply(&question, &ann, "Use a dark footer, please."))
        .await;
    c.wait_status(&tid, AgentStatus::Speccing).await;
    c.tg.wait_message("confirming the revision", |m| {
        m["text"] == "Sent back for revision by ann via Telegram."
    })
    .await;

    // Revision 2 follows, with the feedback that asked for it.
    submit_spec(&bx, &tid, "# Spec\nA dark footer.").await;
    let (_, revs) = c
        .admin
        .get(&format!("/api/v1/tasks/{tid}/agent/spec-revisions"))
        .await;
    assert_eq!(revs.as_array().unwrap().len(), 2, "{revs}");
    assert_eq!(revs[1]["feedback"], "Use a dark footer, please.");
    let second =
        c.tg.wait_message("the second SPEC_READY", |m| {
            is_spec_ready(m) && m["message_id"] != first["message_id"]
        })
        .await;

    // The first message's Approve is for revision 1: it changes nothing.
    let n = c.tg.calls("answerCallbackQuery").len();
    c.deliver(c.tg.press(&first, &ann, &button(&first, "Approve")))
        .await;
    let a = c.answered(n + 1).await;
    assert_eq!(
        a["text"],
        "Nothing changed: the task has moved on; it is now spec_ready."
    );
    assert_eq!(c.status(&tid).await, AgentStatus::SpecReady);
    // A question asked on revision 2, answered after the approval: the reply changes nothing.
    c.deliver(c.tg.press(&second, &ann, &button(&second, "Ask for revision")))
        .await;
    let question2 =
        c.tg.wait_message("asking again", |m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.contains("reply to this message"))
                && m["message_id"] != question["message_id"]
        })
        .await;
    c.deliver(c.tg.press(&second, &ann, &button(&second, "Approve")))
        .await;
    c.wait_status(&tid, AgentStatus::Implementing).await;
    c.deliver(c.tg.reply(&question2, &ann, "Too late.")).await;
    c.tg.wait_message("refusing the late reply", |m| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Nothing changed: the task has moved on"))
    })
    .await;
    assert_eq!(c.status(&tid).await, AgentStatus::Implementing);
    c.tg.check_conformance();
}

/// Posts a signed form to a Slack endpoint of Apiary; (status, body).
async fn slack_post(
    c: &Chat,
    path: &str,
    body: &str,
    ts: i64,
    headers: Option<reqwest::header::HeaderMap>,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", c.app.base))
        .headers(headers.unwrap_or_else(|| c.slack.signed(body, ts)))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A form body, encoded as Slack encodes it.
fn form(fields: &[(String, String)]) -> String {
    reqwest::Url::parse_with_params("http://x.test/", fields)
        .unwrap()
        .query()
        .unwrap()
        .to_string()
}

async fn slack_press(c: &Chat, payload: &Value) -> (u16, Value) {
    let body = form(&[("payload".to_string(), payload.to_string())]);
    slack_post(c, "/api/v1/slack/interactions", &body, now_s(), None).await
}

#[tokio::test]
async fn slack_buttons_and_a_modal_act_as_the_linked_user_and_forged_requests_are_refused() {
    let c = Chat::start("off").await;
    let (pid, tid, bx) = spec_ready(&c).await;
    let (ann, eve) = (
        SlackUser::new("U07QH1A2B3C", "ann"),
        SlackUser::new("U07QH9Z9Z9Z", "eve"),
    );
    let (ann_client, user) = c.app.member("ann@example.test").await;
    c.admin
        .put(
            &format!("/api/v1/projects/{pid}/members/{}", user.id),
            json!({ "access": "write" }),
        )
        .await;

    // Forged: a wrong signature, a stale timestamp (correctly signed), no signature at all.
    let cmd = form(&c.slack.command(&ann, "link ABCDEFGH23"));
    let mut wrong = c.slack.signed(&cmd, now_s());
    wrong.insert("x-slack-signature", "v0=00ff".parse().unwrap());
    assert_eq!(
        slack_post(&c, "/api/v1/slack/commands", &cmd, 0, Some(wrong))
            .await
            .0,
        401
    );
    let (status, body) = slack_post(&c, "/api/v1/slack/commands", &cmd, now_s() - 400, None).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("5 minutes"),
        "{body}"
    );
    assert_eq!(
        slack_post(
            &c,
            "/api/v1/slack/commands",
            &cmd,
            0,
            Some(reqwest::header::HeaderMap::new())
        )
        .await
        .0,
        401
    );

    // Linking with the slash command.
    let code = link_code(&ann_client, false).await;
    let (status, body) = slack_post(
        &c,
        "/api/v1/slack/commands",
        &form(&c.slack.command(&ann, &format!("link {code}"))),
        now_s(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response_type"], "ephemeral");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("Linked: this Slack account now acts as ann"),
        "{body}"
    );

    let (channel, note) = c
        .slack
        .wait_message("SPEC_READY", |m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Spec ready"))
        })
        .await;
    assert_eq!(channel, SLACK_CHANNEL);
    // An unlinked Slack user is told, only them, and nothing changes.
    assert_eq!(
        slack_press(&c, &c.slack.press(&channel, &note, &eve, "ap"))
            .await
            .0,
        200
    );
    let told = c.slack.calls("chat.postEphemeral");
    assert_eq!(told.last().unwrap()["user"], eve.id.as_str());
    assert!(told.last().unwrap()["text"]
        .as_str()
        .unwrap()
        .contains("not linked"));
    // A linked member with read-only access is told so, and nothing changes.
    let rob = SlackUser::new("U07QH5R0B00", "rob");
    let (rob_client, rob_user) = c.app.member("rob@example.test").await;
    c.admin
        .put(
            &format!("/api/v1/projects/{pid}/members/{}", rob_user.id),
            json!({ "access": "read" }),
        )
        .await;
    let code = link_code(&rob_client, false).await;
    let (status, _) = slack_post(
        &c,
        "/api/v1/slack/commands",
        &form(&c.slack.command(&rob, &format!("link {code}"))),
        now_s(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        slack_press(&c, &c.slack.press(&channel, &note, &rob, "ap"))
            .await
            .0,
        200
    );
    let told = c.slack.calls("chat.postEphemeral");
    assert_eq!(told.last().unwrap()["user"], rob.id.as_str());
    assert!(
        told.last().unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{told:?}"
    );
    assert_eq!(c.status(&tid).await, AgentStatus::SpecReady);
    assert_eq!(c.status(&tid).await, AgentStatus::SpecReady);
    // A forged interaction.
    let payload = c.slack.press(&channel, &note, &ann, "ap");
    let body = form(&[("payload".to_string(), payload.to_string())]);
    let mut wrong = c.slack.signed(&body, now_s());
    wrong.insert("x-slack-signature", "v0=deadbeef".parse().unwrap());
    assert_eq!(
        slack_post(&c, "/api/v1/slack/interactions", &body, 0, Some(wrong))
            .await
            .0,
        401
    );
    assert_eq!(c.status(&tid).await, AgentStatus::SpecReady);

    // Ann approves with the button: done, and the message says so without its buttons.
    assert_eq!(slack_press(&c, &payload).await.0, 200);
    c.wait_status(&tid, AgentStatus::Implementing).await;
    let (_, done) = c
        .slack
        .wait_message("edited after the approval", |m| {
            m["ts"] == note["ts"] && m["edited"].is_object()
        })
        .await;
    let blocks = done["blocks"].as_array().unwrap();
    let buttons: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap())
        .collect();
    assert_eq!(buttons.len(), 1, "only the link to the task stays: {done}");
    assert!(buttons[0]["url"].is_string());
    assert_eq!(
        blocks.last().unwrap()["elements"][0]["text"],
        "Approved by ann via Slack"
    );
    let (_, events) = c.admin.get(&format!("/api/v1/tasks/{tid}/events")).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["to_status"] == "spec_approved" && e["via"] == "slack"),
        "{events}"
    );

    // The PR: "Request changes" opens a modal; its words become the review comment.
    let (status, body) = bx
        .post(&format!("/api/v1/agent/tasks/{tid}/pr"), json!({ "pr_url": "http://example.test/pr/1", "branch": format!("apiary/{tid}-add-a-footer") }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, pr) = c
        .slack
        .wait_message("PR_READY", |m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Pull request ready"))
        })
        .await;
    assert_eq!(
        slack_press(&c, &c.slack.press(&channel, &pr, &ann, "rc"))
            .await
            .0,
        200
    );
    let opened = c.slack.calls("views.open");
    assert_eq!(opened.len(), 1, "a modal for the words");
    assert_eq!(c.status(&tid).await, AgentStatus::PrReady);
    let (status, _) = slack_press(&c, &c.slack.submit(&ann, "Make the footer sticky.")).await;
    assert_eq!(status, 200);
    c.wait_status(&tid, AgentStatus::Implementing).await;
    let (_, view) = bx.get(&format!("/api/v1/agent/tasks/{tid}")).await;
    assert_eq!(
        view["review_comments"][0]["body"], "Make the footer sticky.",
        "{view}"
    );
    let (_, done) = c
        .slack
        .wait_message("edited after the request", |m| {
            m["ts"] == pr["ts"] && m["edited"].is_object()
        })
        .await;
    assert!(
        done["text"]
            .as_str()
            .unwrap()
            .starts_with("Changes requested by ann via Slack"),
        "{done}"
    );
    // The notification is rendered again: its text, a link to the task, no action buttons.
    let blocks = done["blocks"].as_array().unwrap();
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*Pull request ready for review*"),
        "{done}"
    );
    let buttons: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap())
        .collect();
    assert!(
        buttons.len() == 1 && buttons[0]["url"].is_string(),
        "{done}"
    );

    // A second submission of the same modal: the task moved on; the modal says why.
    let (status, body) = slack_press(&c, &c.slack.submit(&ann, "Again.")).await;
    assert_eq!(
        (status, body["response_action"].as_str()),
        (200, Some("errors")),
        "{body}"
    );
    assert!(
        body["errors"]["feedback"]
            .as_str()
            .unwrap()
            .contains("moved on"),
        "{body}"
    );
    c.slack.check_conformance();
}
