//! Notifications against real servers on loopback: a Telegram Bot API stand-in that checks the
//! MarkdownV2, a real SMTP server (aiosmtpd), and a webhook receiver that checks the signature.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiary_core::notify::check_md2;
use apiary_orchestrator::notify::webhook_signature;
use apiary_testkit::{Client, TestApp};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

use crate::agent_loop::{provisioned_task, ControlPlane};

#[derive(Clone, Default)]
struct Telegram {
    texts: Arc<Mutex<Vec<String>>>,
    reject: Arc<Mutex<bool>>,
}

async fn start_telegram(t: Telegram) -> String {
    let app = axum::Router::new().route(
        "/{bot}/sendMessage",
        post(move |axum::extract::Path(bot): axum::extract::Path<String>, Json(body): Json<Value>| {
            let t = t.clone();
            async move {
                assert_eq!(bot, "bot123:secret-token");
                assert_eq!(body["parse_mode"], "MarkdownV2");
                assert_eq!(body["chat_id"], "42");
                let text = body["text"].as_str().unwrap().to_string();
                if *t.reject.lock().unwrap() {
                    return (StatusCode::BAD_REQUEST, Json(json!({ "ok": false, "error_code": 400, "description": "Bad Request: chat not found" })));
                }
                if let Err(at) = check_md2(&text) {
                    return (StatusCode::BAD_REQUEST, Json(json!({ "ok": false, "error_code": 400, "description": format!("can't parse entities at byte {at}") })));
                }
                t.texts.lock().unwrap().push(text);
                (StatusCode::OK, Json(json!({ "ok": true, "result": {} })))
            }
        }),
    );
    serve(app).await
}

/// (signature header, body) of each call.
type Calls = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Hook {
    got: Calls,
}

async fn start_hook(h: Hook) -> String {
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let h = h.clone();
            async move {
                let sig = headers
                    .get("x-apiary-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                h.got.lock().unwrap().push((sig, body.to_vec()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    format!("{}/hook", serve(app).await)
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A real SMTP server (aiosmtpd, installed by `make test`) writing to a maildir.
struct Smtp {
    child: std::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Smtp {
    async fn start() -> Smtp {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("mail"))
            .spawn()
            .expect("python3 runs");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "aiosmtpd did not start (make test installs it: pip install aiosmtpd)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Smtp {
            child,
            port,
            maildir,
        }
    }

    fn messages(&self) -> Vec<String> {
        read_dir_texts(&self.maildir.path().join("mail").join("new"))
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_dir_texts(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

const TITLE: &str = "Fix (parens) in _underscores_ v1.2.";

async fn configure_channels(admin: &Client, telegram: &str, smtp_port: u16, hook: &str) {
    let (status, body) = admin
        .patch(
            "/api/v1/settings",
            json!({
                "telegram": { "enabled": true, "bot_token": "123:secret-token", "chat_id": "42", "api_base": telegram },
                "email": { "enabled": true, "host": "127.0.0.1", "port": smtp_port, "tls": "none", "from": "apiary@example.test", "to": ["reviewer@example.test"] },
                "webhooks": [{ "url": hook, "secret": "hook-secret" }],
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["webhooks"][0]["secret"], json!({ "set": true }));
    assert!(!body.to_string().contains("secret-token"));
}

/// Hands a task over and has its (test) box submit a spec: SPEC_READY goes out.
async fn spec_ready(app: &TestApp, admin: &Client) -> String {
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (_, tid, tokens) = provisioned_task(app, admin, &url).await;
    admin
        .patch(&format!("/api/v1/tasks/{tid}"), json!({ "title": TITLE }))
        .await;
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    bx.post(
        &format!("/api/v1/agent/tasks/{tid}/status"),
        json!({ "status": "speccing" }),
    )
    .await;
    let (status, _) = bx
        .post(
            &format!("/api/v1/agent/tasks/{tid}/spec"),
            json!({ "spec_markdown": "# Spec" }),
        )
        .await;
    assert_eq!(status, 200);
    tid
}

#[tokio::test]
async fn a_spec_with_reserved_characters_arrives_intact_on_telegram_email_and_webhook() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let tg = Telegram::default();
    let hook = Hook::default();
    let smtp = Smtp::start().await;
    configure_channels(
        &admin,
        &start_telegram(tg.clone()).await,
        smtp.port,
        &start_hook(hook.clone()).await,
    )
    .await;
    let tid = spec_ready(&app, &admin).await;
    app.worker.drain().await.unwrap();

    let texts = tg.texts.lock().unwrap().clone();
    assert_eq!(texts.len(), 1, "one Telegram message");
    assert!(
        texts[0].contains("Fix \\(parens\\) in \\_underscores\\_ v1\\.2\\."),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains(&format!("/tasks/{tid}")));

    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "one email");
    assert!(mails[0].contains(TITLE), "{}", mails[0]);
    assert!(mails[0].contains("reviewer@example.test"));

    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one webhook call");
    let (sig, body) = &got[0];
    assert_eq!(
        sig,
        &webhook_signature("hook-secret", body),
        "the signature verifies"
    );
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["event"], "SPEC_READY");
    assert_eq!(payload["task"]["title"], TITLE);
    assert!(app.store.notification_errors(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_telegram_400_is_logged_once_with_its_body_and_the_other_channels_still_deliver() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let tg = Telegram::default();
    *tg.reject.lock().unwrap() = true;
    let hook = Hook::default();
    let smtp = Smtp::start().await;
    configure_channels(
        &admin,
        &start_telegram(tg.clone()).await,
        smtp.port,
        &start_hook(hook.clone()).await,
    )
    .await;
    let tid = spec_ready(&app, &admin).await;
    assert_eq!(
        app.store.get_task(&tid).await.unwrap().agent_status,
        apiary_core::AgentStatus::SpecReady,
        "the transition stands"
    );
    app.worker.drain().await.unwrap();
    app.worker.drain().await.unwrap();
    let (status, errors) = admin.get("/api/v1/notifications/errors").await;
    assert_eq!(status, 200);
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["channel"], "telegram");
    assert_eq!(errors[0]["status_code"], 400);
    assert!(errors[0]["body"]
        .as_str()
        .unwrap()
        .contains("chat not found"));
    assert!(
        !errors[0].to_string().contains("secret-token"),
        "the bot token never reaches the log"
    );
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(hook.got.lock().unwrap().len(), 1);
    let (member, _) = app.member("m@example.test").await;
    assert_eq!(member.get("/api/v1/notifications/errors").await.0, 403);
}

#[tokio::test]
async fn notifications_off_queue_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    admin
        .patch(
            "/api/v1/settings",
            json!({ "notifications_enabled": false }),
        )
        .await;
    let tid = spec_ready(&app, &admin).await;
    let jobs = app.store.list_task_jobs(&tid).await.unwrap();
    assert!(jobs.iter().all(|j| j.kind != "deliver"), "{jobs:?}");
}

#[tokio::test]
async fn prompts_show_their_source_render_the_task_and_bad_templates_are_refused_by_line() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (pid, tid, _) = provisioned_task(&app, &admin, &url).await;
    admin
        .patch(
            "/api/v1/settings",
            json!({ "prompts": { "implement": "GLOBAL {{ task.title }}" } }),
        )
        .await;
    admin
        .patch(&format!("/api/v1/projects/{pid}"), json!({ "agent": { "prompts": { "spec": "PROJECT {{ task.title }} on {{ branch }}", "implement": " " } } }))
        .await;
    let (status, prompts) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/prompts"))
        .await;
    assert_eq!(status, 200);
    let by_kind = |k: &str| {
        prompts
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["kind"] == k)
            .unwrap()
            .clone()
    };
    assert_eq!(by_kind("spec")["source"], "project");
    assert!(by_kind("spec")["rendered"]
        .as_str()
        .unwrap()
        .starts_with("PROJECT Add a footer on apiary/"));
    assert_eq!(by_kind("implement")["source"], "global");
    assert_eq!(by_kind("implement")["rendered"], "GLOBAL Add a footer");
    assert_eq!(by_kind("changes")["source"], "built_in");
    assert!(by_kind("changes")["rendered"]
        .as_str()
        .unwrap()
        .contains("Add a footer"));

    let (status, err) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "prompts": { "spec": "ok\n{% bogus %}" } } }),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "prompts.spec");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("line 2"),
        "{err}"
    );
    let (status, err) = admin
        .patch(
            "/api/v1/settings",
            json!({ "prompts": { "changes": "{{ x" } }),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("prompts.changes")),
        "{err}"
    );
}

#[tokio::test]
async fn links_in_notifications_use_the_public_url_falling_back_to_the_callback_base() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let hook = Hook::default();
    let url = start_hook(hook.clone()).await;
    let (status, body) = admin
        .patch(
            "/api/v1/settings",
            json!({
                "webhooks": [{ "url": url, "secret": "s" }],
                "callback_base_url": "http://10.0.0.5:7878",
                "public_url": "https://apiary.example.com/",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["public_url"], "https://apiary.example.com/");
    let (status, body) = admin
        .patch(
            "/api/v1/settings",
            json!({ "public_url": "apiary.example.com" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "public_url");

    let links = |i: usize| {
        let got = hook.got.lock().unwrap().clone();
        let payload: Value = serde_json::from_slice(&got[i].1).unwrap();
        payload["links"].clone()
    };
    let first = spec_ready(&app, &admin).await;
    app.worker.drain().await.unwrap();
    assert_eq!(
        links(0)["task"],
        format!("https://apiary.example.com/tasks/{first}")
    );
    assert_eq!(
        links(0)["spec"],
        format!("https://apiary.example.com/tasks/{first}#spec")
    );

    // Blank: the callback base, as before.
    let (status, _) = admin
        .patch("/api/v1/settings", json!({ "public_url": "" }))
        .await;
    assert_eq!(status, 200);
    let second = spec_ready(&app, &admin).await;
    app.worker.drain().await.unwrap();
    assert_eq!(
        links(1)["task"],
        format!("http://10.0.0.5:7878/tasks/{second}")
    );
}
