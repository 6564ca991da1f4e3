//! A stand-in for Apiary's callback API: answers the task view with a fixed JSON (its status
//! follows the callbacks, as the real server's would) and records every callback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// One callback the box made: `status`, `spec`, `pr`, `error` or `logs`, with its body.
#[derive(Debug, Clone)]
pub struct Call {
    pub what: String,
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    token: Arc<Mutex<String>>,
    view: Arc<Mutex<Value>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

pub struct FakeApiary {
    pub url: String,
    shared: Shared,
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {token}"))
}

async fn task_view(State(s): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if !authorized(&headers, &s.token.lock().unwrap()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({})));
    }
    (StatusCode::OK, Json(s.view.lock().unwrap().clone()))
}

async fn callback(
    State(s): State<Shared>,
    Path((_, what)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers, &s.token.lock().unwrap()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({})));
    }
    let next = match what.as_str() {
        "status" => body["status"].as_str().map(str::to_string),
        "spec" => Some("spec_ready".into()),
        "pr" => Some("pr_ready".into()),
        "error" => Some("failed".into()),
        _ => None,
    };
    if let Some(status) = next {
        let mut view = s.view.lock().unwrap();
        view["task"]["agent"]["status"] = json!(status);
        if what == "spec" {
            view["spec"] = body["spec_markdown"].clone();
        }
    }
    s.calls.lock().unwrap().push(Call { what, body });
    (StatusCode::OK, Json(json!({ "ok": true })))
}

impl FakeApiary {
    /// Serves on 127.0.0.1:0 for the task in `view`, accepting only `token`.
    pub async fn start(token: &str, view: Value) -> Self {
        let shared = Shared {
            token: Arc::new(Mutex::new(token.to_string())),
            view: Arc::new(Mutex::new(view)),
            calls: Arc::default(),
        };
        let app = Router::new()
            .route("/api/v1/agent/tasks/{id}", get(task_view))
            .route("/api/v1/agent/tasks/{id}/{what}", post(callback))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeApiary { url, shared }
    }

    /// Revokes the box's token, as teardown does: every later call gets 401.
    pub fn revoke(&self) {
        *self.shared.token.lock().unwrap() = "revoked".into();
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Every log line the box sent, in order.
    pub fn log_lines(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.what == "logs")
            .flat_map(|c| c.body["lines"].as_array().unwrap().clone())
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    }

    /// Waits until `n` callbacks of kind `what` arrived; returns all calls then.
    pub async fn wait_for(&self, what: &str, n: usize, within: Duration) -> Vec<Call> {
        let started = Instant::now();
        loop {
            let calls = self.calls();
            if calls.iter().filter(|c| c.what == what).count() >= n {
                return calls;
            }
            assert!(
                started.elapsed() < within,
                "no {what} callback #{n} within {within:?}; calls: {calls:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
