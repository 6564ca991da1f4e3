//! Crash safety: `apiary serve` killed with SIGKILL mid-provisioning, mid-dispatch,
//! mid-notification and mid-teardown, and started again on the same data. Afterwards the task
//! ends where it should, no box is leaked past a watchdog pass, every notification was
//! delivered with one delivery id (receivers drop repeats by it), and no job is lost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiary_testkit::{bare_repo, BoxReaper, Client};
use serde_json::{json, Value};

use crate::{exe, write_script, AGENT};

const PASSWORD: &str = "crash test password";

pub(crate) struct Serve {
    child: Child,
}

/// Starts serve on `data` (its SQLite database, boxes and key), or on the PostgreSQL
/// database at `database_url` when the suite runs on PostgreSQL.
pub(crate) fn start(data: &Path, database_url: Option<&str>, port: u16, wrapper: &Path) -> Serve {
    let mut cmd = Command::new(exe());
    cmd.args([
        "serve",
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--site-bind",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(data);
    if let Some(url) = database_url {
        cmd.env("APIARY_DATABASE_URL", url);
    }
    let child = cmd
        .env("APIARY_ADMIN_EMAIL", "admin@example.test")
        .env("APIARY_ADMIN_PASSWORD", PASSWORD)
        .env("APIARY_JOB_LEASE_S", "2")
        .env("APIARY_BOX_AGENT_EXE", wrapper)
        .env("APIARY_LOG", "warn")
        .spawn()
        .expect("apiary serve starts");
    Serve { child }
}

impl Serve {
    pub(crate) fn kill9(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) async fn healthy(base: &str) {
    let start = Instant::now();
    while reqwest::get(format!("{base}/healthz"))
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status_of(c: &Client, tid: &str) -> Value {
    c.get(&format!("/api/v1/tasks/{tid}")).await.1
}

pub(crate) async fn wait_until(
    c: &Client,
    tid: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let t = status_of(c, tid).await;
        if ok(&t) {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "task never got {what}: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The admin of a serve started by [`start`], signed in.
pub(crate) async fn sign_in(base: &str) -> Client {
    let mut c = Client {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap(),
        base: base.to_string(),
        csrf: None,
        bearer: None,
    };
    let (status, body) = c
        .post(
            "/api/v1/auth/login",
            json!({ "email": "admin@example.test", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    c.csrf = Some(body["csrf_token"].as_str().unwrap().to_string());
    c
}

/// A fresh database of the suite's backend, and its URL when that is PostgreSQL (on SQLite a
/// serve keeps its own in its data folder). Keep the store: it owns the database.
pub(crate) async fn suite_database() -> (apiary_testkit::TestStore, Option<String>) {
    let db = apiary_testkit::test_store().await;
    let url = (db.store.backend() == apiary_store::Backend::Postgres).then(|| db.url.clone());
    (db, url)
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn boxes_alive(boxes: &Path) -> Vec<String> {
    std::fs::read_dir(boxes)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn serve_killed_at_each_step_recovers_without_loss_leaks_or_repeats() {
    // A fresh database of the suite's backend; on SQLite serve keeps its own in `data`.
    let (db, database_url) = suite_database().await;
    let database_url = database_url.as_deref();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let boxes = data.join("boxes");
    let _reaper = BoxReaper(boxes.clone());
    // Boxes start through a wrapper whose start-up delay the test controls.
    let delay = dir.path().join("delay");
    std::fs::write(&delay, "0").unwrap();
    let wrapper = dir.path().join("box-agent.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nsleep \"$(cat {})\"\nexec {} \"$@\"\n",
            delay.display(),
            exe().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A webhook receiver that is slow to answer (so a delivery can be caught in flight).
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let rec = got.clone();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let rec = rec.clone();
                async move {
                    let id = headers
                        .get("x-apiary-delivery")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    rec.lock()
                        .unwrap()
                        .push((id, body["event"].as_str().unwrap_or("").to_string()));
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = start(&data, database_url, port, &wrapper);
    healthy(&base).await;
    let admin = sign_in(&base).await;
    let (status, body) = admin
        .patch("/api/v1/settings", json!({ "agent_orchestration_enabled": true, "watchdog_interval_s": 1, "webhooks": [{ "url": hook_url, "secret": "s" }],
            // The test's repository sits beside the data folder.
            "local_repo_roots": [std::fs::canonicalize(dir.path()).unwrap()] }))
        .await;
    assert_eq!(status, 200, "{body}");
    let repo = bare_repo(dir.path());
    let command = write_script(dir.path(), "agent.sh", AGENT);
    let (_, p) = admin
        .post("/api/v1/projects", json!({ "name": "Crash" }))
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let (status, body) = admin
        .patch(&format!("/api/v1/projects/{pid}"), json!({ "agent": { "enabled": true, "repo_url": repo.display().to_string(), "preset": "script", "command": command,
            "prompts": { "changes": "Review:\n{% for c in comments %}- {{ c.body }}\n{% endfor %}" } } }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, t) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Survive" }),
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_string();

    // 1. Mid-provisioning: the box is still starting when serve dies.
    std::fs::write(&delay, "3").unwrap();
    admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    wait_until(&admin, &tid, "provisioning", |t| {
        t["agent"]["status"] == "provisioning"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    serve.kill9();
    std::fs::write(&delay, "0").unwrap();
    serve = start(&data, database_url, port, &wrapper);
    healthy(&base).await;
    let t = wait_until(&admin, &tid, "spec_ready", |t| {
        t["agent"]["status"] == "spec_ready"
    })
    .await;
    let live_box = t["agent"]["box_id"].as_str().unwrap().to_string();
    // The half-made box of the killed process is an orphan: a watchdog pass removes it.
    let start_wait = Instant::now();
    while boxes_alive(&boxes) != vec![live_box.clone()] {
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "orphan box not removed: {:?} (live {live_box})",
            boxes_alive(&boxes)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 2. Mid-dispatch: serve dies right after the approval.
    admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    serve.kill9();
    serve = start(&data, database_url, port, &wrapper);
    healthy(&base).await;
    wait_until(&admin, &tid, "pr_ready", |t| {
        t["agent"]["status"] == "pr_ready"
    })
    .await;

    // 3. Mid-notification: serve dies while the PR_READY webhook is being answered.
    let start_wait = Instant::now();
    while !got.lock().unwrap().iter().any(|(_, e)| e == "PR_READY") {
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "PR_READY never sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.kill9();
    serve = start(&data, database_url, port, &wrapper);
    healthy(&base).await;

    // 4. Mid-teardown: serve dies right after the merge.
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/mark-merged"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    serve.kill9();
    serve = start(&data, database_url, port, &wrapper);
    healthy(&base).await;
    let t = wait_until(&admin, &tid, "its box torn down", |t| {
        t["agent"]["box_torn_down"] == true
    })
    .await;
    assert_eq!(t["agent"]["status"], "merged");
    let start_wait = Instant::now();
    while !boxes_alive(&boxes).is_empty() {
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "boxes left: {:?}",
            boxes_alive(&boxes)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every notification arrived, each under one delivery id (a repeat after a crash carries
    // the same id): SPEC_READY, PR_READY and MERGED once each once repeats are dropped.
    let start_wait = Instant::now();
    loop {
        let events: Vec<String> = got.lock().unwrap().iter().map(|(_, e)| e.clone()).collect();
        if events.contains(&"MERGED".to_string()) {
            break;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "MERGED never sent: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut by_id: HashMap<String, String> = HashMap::new();
    for (id, event) in got.lock().unwrap().iter() {
        assert!(!id.is_empty());
        if let Some(previous) = by_id.insert(id.clone(), event.clone()) {
            assert_eq!(&previous, event, "one delivery id, one event");
        }
    }
    let mut distinct: Vec<String> = by_id.values().cloned().collect();
    distinct.sort();
    assert_eq!(distinct, vec!["MERGED", "PR_READY", "SPEC_READY"]);

    // No job lost: every job finishes (none left waiting or running, none dead).
    let store = match database_url {
        Some(_) => db.store.clone(),
        None => open_store(&data).await,
    };
    let start_wait = Instant::now();
    loop {
        let jobs = store.list_task_jobs(&tid).await.unwrap();
        if jobs.iter().all(|j| j.state == "done") {
            break;
        }
        let stuck: Vec<_> = jobs
            .iter()
            .filter(|j| j.state != "done")
            .map(|j| (j.id, j.kind.clone(), j.state.clone(), j.last_error.clone()))
            .collect();
        assert!(
            start_wait.elapsed() < Duration::from_secs(30),
            "jobs not finished: {stuck:?}"
        );
        assert!(
            stuck.iter().all(|(_, _, state, _)| state != "dead"),
            "a job died: {stuck:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    serve.kill9();
    let _: PathBuf = data;
}

async fn open_store(data: &Path) -> apiary_store::Store {
    let key = apiary_store::SecretKey::load_or_create(&data.join("secret.key")).unwrap();
    apiary_store::Store::connect(apiary_store::StoreOptions {
        url: apiary_store::StoreOptions::sqlite_url(data),
        secret_key: key,
        clock: Arc::new(apiary_core::SystemClock),
        max_connections: 2,
    })
    .await
    .unwrap()
}
