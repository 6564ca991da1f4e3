//! The agent loop over HTTP, with a test control plane standing in for the box.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiary_core::AgentStatus;
use apiary_store::{Actor, BoxAddress, BoxTokens, TransitionRequest};
use apiary_testkit::{Client, TestApp};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

/// A box control plane that records what it receives; it answers 503 while `down` is set.
#[derive(Clone, Default)]
pub struct ControlPlane {
    pub seen: Arc<Mutex<Vec<(String, String, Value)>>>,
    pub down: Arc<Mutex<bool>>,
}

impl ControlPlane {
    pub async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    if *me.down.lock().unwrap() {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    me.seen.lock().unwrap().push((
                        uri.path().to_string(),
                        auth,
                        serde_json::from_str(&body).unwrap_or(Value::Null),
                    ));
                    StatusCode::ACCEPTED
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }
}

/// Orchestration on and the project's agent enabled, so hand-offs are accepted.
pub async fn agent_on(admin: &Client, pid: &str) {
    let (status, body) = admin
        .patch(
            "/api/v1/settings",
            json!({ "agent_orchestration_enabled": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "enabled": true } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A project and a task handed to the agent, provisioned by hand onto `control_url`.
pub async fn provisioned_task(
    app: &TestApp,
    admin: &Client,
    control_url: &str,
) -> (String, String, BoxTokens) {
    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap().to_string();
    // No repository here: on the github forge, marking merged records what the human did there.
    let (status, _) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "forge": "github" } }),
        )
        .await;
    assert_eq!(status, 200);
    agent_on(admin, &pid).await;
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Add a footer" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap().to_string();
    let (status, _) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    assert_eq!(status, 200);
    app.orch
        .transition(TransitionRequest::new(
            &tid,
            AgentStatus::Provisioning,
            Actor::System,
        ))
        .await
        .unwrap();
    let tokens = app
        .store
        .attach_box(
            &tid,
            &BoxAddress {
                box_id: format!("box-{tid}"),
                control_url: control_url.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (pid, tid, tokens)
}

/// Reads an SSE response until an event whose data contains `needle`.
async fn wait_for_event(resp: &mut reqwest::Response, buf: &mut String, needle: &str) -> String {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(at) = buf.find(needle) {
                let start = buf[..at].rfind("\n\n").map(|i| i + 2).unwrap_or(0);
                let end = buf[at..].find("\n\n").map(|i| at + i).unwrap_or(buf.len());
                let frame = buf[start..end].to_string();
                buf.drain(..end);
                return frame;
            }
            let chunk = resp.chunk().await.unwrap().expect("stream open");
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event with {needle} within 10 s; got {buf:?}"))
}

#[tokio::test]
async fn the_whole_loop_over_http_with_a_test_control_plane() {
    let app = TestApp::spawn().await;
    let worker = app.orch.worker().build();
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let cp_url = cp.start().await;
    let (_pid, tid, tokens) = provisioned_task(&app, &admin, &cp_url).await;
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    let cb = |p: &str| format!("/api/v1/agent/tasks/{tid}/{p}");

    // A live stream opened before the box reports.
    let mut sse = admin
        .http
        .get(format!("{}/api/v1/events?task={tid}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let mut buf = String::new();

    let (status, body) = bx
        .post(&cb("status"), json!({ "status": "speccing" }))
        .await;
    assert_eq!(
        (status, body["changed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = bx
        .post(
            &cb("spec"),
            json!({ "spec_markdown": "# Spec\nAdd a footer." }),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("spec_ready")),
        "{body}"
    );
    // A repeated callback is a no-op: 200, no second notification.
    let (status, body) = bx
        .post(
            &cb("spec"),
            json!({ "spec_markdown": "# Spec\nAdd a footer." }),
        )
        .await;
    assert_eq!((status, body["changed"].as_bool()), (200, Some(false)));
    let notify: Vec<_> = app
        .store
        .list_task_jobs(&tid)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "deliver")
        .collect();
    assert_eq!(notify.len(), 1);
    let frame = wait_for_event(&mut sse, &mut buf, "\"spec_ready\"").await;
    assert!(frame.contains("event: agent_update"), "{frame}");

    let (status, body) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({ "note": "keep it small" }),
        )
        .await;
    assert_eq!(
        (status, body["task"]["agent"]["status"].as_str()),
        (200, Some("spec_approved")),
        "{body}"
    );
    worker.drain().await.unwrap();
    {
        let seen = cp.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, "/implement/start");
        assert_eq!(seen[0].1, format!("Bearer {}", tokens.control_token));
        assert_eq!(seen[0].2["note"], "keep it small");
    }
    assert_eq!(
        app.store.get_task(&tid).await.unwrap().agent_status,
        AgentStatus::Implementing
    );

    let (status, body) = bx
        .post(&cb("pr"), json!({ "pr_url": "http://example.test/pr/1", "branch": format!("apiary/{tid}-add-a-footer") }))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pr_ready")),
        "{body}"
    );
    let comments = json!({ "comments": [
        { "body": "Use the brand colour", "path": "src/footer.css", "line": 3 },
        { "body": "Add a test" },
    ] });
    let (status, body) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/request-changes"),
            comments,
        )
        .await;
    assert_eq!(
        (status, body["task"]["agent"]["round"].as_i64()),
        (200, Some(2)),
        "{body}"
    );
    worker.drain().await.unwrap();
    {
        let seen = cp.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].0, "/changes/apply");
        let sent = seen[1].2["comments"].as_array().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0]["body"], "Use the brand colour");
        assert_eq!(sent[0]["path"], "src/footer.css");
        assert_eq!(sent[0]["line"], 3);
        assert_eq!(sent[0]["author"], "Admin");
    }
    let (status, view) = bx.get(&format!("/api/v1/agent/tasks/{tid}")).await;
    assert_eq!(status, 200);
    assert_eq!(view["round"], 2);
    assert_eq!(view["review_comments"].as_array().unwrap().len(), 2);
    assert_eq!(view["spec"], "# Spec\nAdd a footer.");
    assert_eq!(view["task"]["agent"]["status"], "implementing");

    let (status, _) = bx
        .post(&cb("pr"), json!({ "pr_url": "http://example.test/pr/1", "branch": format!("apiary/{tid}-add-a-footer") }))
        .await;
    assert_eq!(status, 200);
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/mark-merged"), json!({}))
        .await;
    assert_eq!(
        (status, body["task"]["agent"]["status"].as_str()),
        (200, Some("merged")),
        "{body}"
    );

    let (_, events) = admin.get(&format!("/api/v1/tasks/{tid}/events")).await;
    let trail: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["to_status"].as_str().unwrap().to_string(),
                e["actor_kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(&str, &str)> = vec![
        ("queued", "human"),
        ("provisioning", "system"),
        ("speccing", "box"),
        ("spec_ready", "box"),
        ("spec_approved", "human"),
        ("implementing", "system"),
        ("pr_ready", "box"),
        ("changes_requested", "human"),
        ("implementing", "system"),
        ("pr_ready", "box"),
        ("merged", "human"),
    ];
    assert_eq!(
        trail,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );

    // Reconnecting with Last-Event-ID replays exactly what came after it.
    let first_id: i64 = events[0]["id"].as_i64().unwrap();
    let mut again = admin
        .http
        .get(format!("{}/api/v1/events?task={tid}", app.base))
        .header("last-event-id", first_id.to_string())
        .send()
        .await
        .unwrap();
    let mut buf2 = String::new();
    let frame = wait_for_event(&mut again, &mut buf2, "\"merged\"").await;
    assert!(frame.contains("agent_update"));
    let replayed = buf2.len();
    let _ = replayed;
}

#[tokio::test]
async fn approve_with_the_control_plane_down_keeps_spec_approved_with_the_error_then_succeeds_on_retry(
) {
    let app = TestApp::spawn().await;
    let worker = app.orch.worker().build();
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let cp_url = cp.start().await;
    let (_pid, tid, tokens) = provisioned_task(&app, &admin, &cp_url).await;
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    bx.post(
        &format!("/api/v1/agent/tasks/{tid}/status"),
        json!({ "status": "speccing" }),
    )
    .await;
    bx.post(
        &format!("/api/v1/agent/tasks/{tid}/spec"),
        json!({ "spec_markdown": "spec" }),
    )
    .await;
    *cp.down.lock().unwrap() = true;
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    worker.drain().await.unwrap();
    let t = app.store.get_task(&tid).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::SpecApproved);
    assert!(
        t.last_error.as_deref().unwrap_or("").contains("503"),
        "{:?}",
        t.last_error
    );
    *cp.down.lock().unwrap() = false;
    let job = app
        .store
        .list_task_jobs(&tid)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.kind == "dispatch_implement")
        .unwrap();
    assert_eq!(job.state, "pending");
    let wait = (job.run_at - app.store.now()).max(0) as u64 + 50;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    worker.drain().await.unwrap();
    let t = app.store.get_task(&tid).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::Implementing);
    assert_eq!(t.last_error, None);
    assert_eq!(cp.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_box_gets_prompts_resolved_project_then_global_with_blanks_falling_through() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (pid, tid, tokens) = provisioned_task(&app, &admin, &url).await;
    let (status, _) = admin
        .patch(
            "/api/v1/settings",
            json!({ "prompts": { "spec": "GLOBAL spec", "implement": "GLOBAL implement" } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "prompts": { "spec": "PROJECT spec", "implement": "   " } } }),
        )
        .await;
    assert_eq!(status, 200);
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    let (_, view) = bx.get(&format!("/api/v1/agent/tasks/{tid}")).await;
    assert_eq!(view["prompts"]["spec"], "PROJECT spec");
    assert_eq!(
        view["prompts"]["implement"], "GLOBAL implement",
        "a blank override falls through"
    );
    assert!(
        view["prompts"].get("changes").is_none(),
        "unset everywhere: omitted"
    );
}
