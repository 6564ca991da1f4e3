//! The callback API client (box → Apiary). Callbacks are idempotent on the server, so they are
//! retried on connection errors and 5xx; a 409 on a spec or PR can be a race with the server's
//! own transition (it moves the task to `implementing` right after the control plane answered),
//! so those are retried for a few seconds too.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

/// Talks to Apiary for one task with the box's callback token.
#[derive(Clone)]
pub struct Callback {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Callback {
    pub fn new(base: &str, task: &str, token: &str) -> Self {
        Callback {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: format!("{base}/api/v1/agent/tasks/{task}"),
            token: token.to_string(),
        }
    }

    async fn send(&self, path: &str, body: Option<&Value>, retry_conflicts: bool) -> Result<Value> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let url = format!("{}{path}", self.base);
            let req = match body {
                Some(b) => self.http.post(&url).json(b),
                None => self.http.get(&url),
            };
            let outcome = match req.bearer_auth(&self.token).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    let retry = status.is_server_error()
                        || (retry_conflicts
                            && status.as_u16() == 409
                            && started.elapsed() < Duration::from_secs(6));
                    if !retry {
                        bail!("Apiary answered {status} to {path}: {text}");
                    }
                    anyhow!("Apiary answered {status} to {path}: {text}")
                }
                Err(e) => anyhow!("Apiary unreachable: {e}"),
            };
            if started.elapsed() > Duration::from_secs(30) {
                return Err(outcome);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(3));
        }
    }

    /// The task, its project, prompts, spec, feedback and pending review comments.
    pub async fn task_view(&self) -> Result<Value> {
        self.send("", None, false).await
    }

    pub async fn status(&self, status: &str, message: &str) -> Result<()> {
        self.send(
            "/status",
            Some(&json!({ "status": status, "message": message })),
            false,
        )
        .await
        .map(|_| ())
    }

    pub async fn spec(&self, markdown: &str) -> Result<()> {
        self.send("/spec", Some(&json!({ "spec_markdown": markdown })), true)
            .await
            .map(|_| ())
    }

    pub async fn pr(&self, url: &str, branch: &str, head: &str) -> Result<()> {
        self.send(
            "/pr",
            Some(&json!({ "pr_url": url, "branch": branch, "head_sha": head })),
            true,
        )
        .await
        .map(|_| ())
    }

    pub async fn error(&self, error: &str) -> Result<()> {
        self.send("/error", Some(&json!({ "error": error })), false)
            .await
            .map(|_| ())
    }

    pub async fn logs(&self, lines: &[String]) -> Result<()> {
        self.send("/logs", Some(&json!({ "lines": lines })), false)
            .await
            .map(|_| ())
    }
}
