//! The callback API client (box → Apiary, DESIGN §3). Callbacks are idempotent on the server,
//! so they are retried with backoff on connection errors, 429 and 5xx for up to ~30 s. A 409 on
//! a spec or PR can be a race with the server's own transition (it moves the task to
//! `implementing` right after the control plane answered), so those are retried for ~5 s too;
//! a 409 that persists comes back as [`Conflict`]. Every answer feeds the box's [`Liveness`]:
//! a 401 or 404 means Apiary no longer knows the box (never retried).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};

use crate::orphan::Liveness;

/// How long a callback is retried.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// How long a 409 on a spec or PR is retried.
const CONFLICT_FOR: Duration = Duration::from_secs(5);

/// Apiary refused a transition (409) and kept refusing: the task moved on without the box.
#[derive(Debug)]
pub struct Conflict(pub String);

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Conflict {}

/// Talks to Apiary for one task with the box's callback token.
#[derive(Clone)]
pub struct Callback {
    http: reqwest::Client,
    base: String,
    token: String,
    live: Arc<Liveness>,
}

impl Callback {
    pub fn new(base: &str, task: &str, token: &str) -> Result<Self> {
        Ok(Callback {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("building the HTTP client")?,
            base: format!("{base}/api/v1/agent/tasks/{task}"),
            token: token.to_string(),
            live: Arc::default(),
        })
    }

    /// What the answers so far tell about Apiary.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.live.clone()
    }

    /// Asks Apiary once whether it still knows the box (the answer feeds [`Liveness`]).
    pub async fn ping(&self) {
        let resp = self
            .http
            .get(&self.base)
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(resp) = resp {
            self.heard(resp.status(), "/");
        }
    }

    /// Records what an answer says about Apiary.
    fn heard(&self, status: reqwest::StatusCode, what: &str) {
        match status.as_u16() {
            401 | 404 => self.live.disown(format!(
                "Apiary answered {status} to {what}: it no longer knows this box"
            )),
            s if s < 500 => self.live.touch(),
            _ => {}
        }
    }

    async fn send(&self, path: &str, body: Option<&Value>, retry_conflicts: bool) -> Result<Value> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        let url = format!("{}{path}", self.base);
        let what = if path.is_empty() { "/" } else { path };
        loop {
            let req = match body {
                Some(b) => self.http.post(&url).json(b),
                None => self.http.get(&url),
            };
            let mut pause = wait;
            let outcome = match req.bearer_auth(&self.token).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    self.heard(status, what);
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    let message = format!("Apiary answered {status} to {what}: {text}");
                    match status.as_u16() {
                        409 if retry_conflicts && started.elapsed() < CONFLICT_FOR => {}
                        409 => return Err(Conflict(message).into()),
                        401 | 404 => return Err(anyhow!(message)),
                        429 => {
                            pause = Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 10));
                        }
                        s if s >= 500 => {}
                        _ => return Err(anyhow!(message)),
                    }
                    anyhow!(message)
                }
                Err(e) => anyhow!("Apiary is unreachable ({what}): {e}"),
            };
            if started.elapsed() + pause > RETRY_FOR {
                return Err(outcome);
            }
            tracing::debug!(error = %outcome, "retrying a callback");
            tokio::time::sleep(pause).await;
            wait = (wait * 2).min(Duration::from_secs(3));
        }
    }

    /// The task, its project, prompts, spec, feedback and pending review comments.
    pub async fn task_view(&self) -> Result<Value> {
        self.send("", None, false).await
    }

    pub async fn status(&self, status: &str, message: &str) -> Result<()> {
        let body = json!({ "status": status, "message": message });
        self.send("/status", Some(&body), false).await.map(drop)
    }

    pub async fn spec(&self, markdown: &str) -> Result<()> {
        let body = json!({ "spec_markdown": markdown });
        self.send("/spec", Some(&body), true).await.map(drop)
    }

    pub async fn pr(
        &self,
        url: &str,
        branch: &str,
        head: &str,
        checks: Option<&apiary_core::forge::CheckReport>,
    ) -> Result<()> {
        let mut body = json!({ "pr_url": url, "branch": branch, "head_sha": head });
        if let Some(c) = checks {
            body["checks"] = json!(c);
        }
        self.send("/pr", Some(&body), true).await.map(drop)
    }

    pub async fn error(&self, error: &str) -> Result<()> {
        let body = json!({ "error": error });
        self.send("/error", Some(&body), false).await.map(drop)
    }

    pub async fn logs(&self, lines: &[String]) -> Result<()> {
        let body = json!({ "lines": lines });
        self.send("/logs", Some(&body), false).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::Router;

    use super::*;

    /// A server that answers `first` to the first `n` calls of each path, then 200.
    async fn server(first: StatusCode, n: usize) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let app = Router::new().route(
            "/api/v1/agent/tasks/t1/{what}",
            post(move || {
                let seen = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if seen < n {
                        (first, "{}")
                    } else {
                        (StatusCode::OK, "{}")
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    #[tokio::test]
    async fn server_errors_are_retried_and_bad_requests_are_not() {
        let (url, calls) = server(StatusCode::BAD_GATEWAY, 2).await;
        let cb = Callback::new(&url, "t1", "tok").unwrap();
        cb.logs(&["a".into()]).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let (url, calls) = server(StatusCode::BAD_REQUEST, 1).await;
        let cb = Callback::new(&url, "t1", "tok").unwrap();
        let err = cb.error("x").await.unwrap_err().to_string();
        assert!(err.contains("400"), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_conflict_on_the_pr_is_retried_then_named() {
        let (url, calls) = server(StatusCode::CONFLICT, 1).await;
        let cb = Callback::new(&url, "t1", "tok").unwrap();
        cb.pr("u", "b", "h", None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // Not retried where no race is possible.
        let (url, calls) = server(StatusCode::CONFLICT, 1).await;
        let cb = Callback::new(&url, "t1", "tok").unwrap();
        let err = cb.status("speccing", "").await.unwrap_err();
        assert!(err.downcast_ref::<Conflict>().is_some(), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
