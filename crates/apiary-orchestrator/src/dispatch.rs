//! Dispatch jobs: tell a task's box to start implementing, apply review comments, or revise
//! its spec, by POSTing to its control plane with the control token. Success moves the task
//! along the system row of the table; a failure keeps the status, records `last_error` and is
//! retried with backoff; once the retries are spent the changes round rolls back to `pr_ready`
//! (the review comments stay stored for the next request).

use std::time::Duration;

use apiary_core::AgentStatus;
use apiary_store::{Actor, Job, JobFailure, StoreError, TransitionRequest};
use async_trait::async_trait;
use serde_json::{json, Value};

use crate::worker::JobHandler;
use crate::Orchestrator;

/// Which control-plane call a dispatch job makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    Implement,
    Changes,
    Revise,
}

impl Dispatch {
    /// The job kinds, as the transition table's side effects name them.
    pub const KINDS: [(&'static str, Dispatch); 3] = [
        ("dispatch_implement", Dispatch::Implement),
        ("dispatch_changes", Dispatch::Changes),
        ("dispatch_spec_revise", Dispatch::Revise),
    ];

    fn path(self) -> &'static str {
        match self {
            Dispatch::Implement => "/implement/start",
            Dispatch::Changes => "/changes/apply",
            Dispatch::Revise => "/spec/revise",
        }
    }

    /// The status the task must be in for this dispatch to still make sense.
    fn expects(self) -> AgentStatus {
        match self {
            Dispatch::Implement => AgentStatus::SpecApproved,
            Dispatch::Changes => AgentStatus::ChangesRequested,
            Dispatch::Revise => AgentStatus::Speccing,
        }
    }
}

/// The handler of one dispatch kind.
pub struct DispatchHandler {
    pub kind: Dispatch,
    pub client: reqwest::Client,
}

impl DispatchHandler {
    pub fn new(kind: Dispatch) -> Self {
        DispatchHandler {
            kind,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("http client"),
        }
    }
}

/// Why a parked task cannot get a fresh box now, if it cannot: orchestration off, the
/// project's agent off, or every box of `max_concurrent_boxes` taken. When it can, its slot is
/// taken already (atomically with the queue drain's count).
async fn resume_blocked(
    orch: &Orchestrator,
    task: &apiary_store::Task,
) -> Result<Option<String>, StoreError> {
    let settings = orch.store.settings().await?;
    if !settings.agent_orchestration_enabled {
        return Ok(Some("agent orchestration is off".into()));
    }
    if !orch
        .store
        .get_project(&task.project_id)
        .await?
        .agent
        .enabled
    {
        return Ok(Some("the project's agent is disabled".into()));
    }
    let cap = settings.max_concurrent_boxes;
    // A slot reserved by an earlier run of this resume is still ours.
    let reserved = !task.box_torn_down
        || orch
            .store
            .reserve_box_slot(&task.id, i64::from(cap))
            .await?;
    if !reserved {
        return Ok(Some(format!(
            "all {cap} boxes (max_concurrent_boxes) are taken; waiting for a free box"
        )));
    }
    Ok(None)
}

fn store_err(e: StoreError) -> JobFailure {
    JobFailure::Retryable(e.to_string())
}

#[async_trait]
impl JobHandler for DispatchHandler {
    async fn run(&self, orch: &Orchestrator, job: &Job) -> Result<(), JobFailure> {
        let task_id = job
            .task_id
            .clone()
            .ok_or_else(|| JobFailure::Fatal("dispatch job without a task".into()))?;
        let store = &orch.store;
        let task = store.get_task(&task_id).await.map_err(store_err)?;
        if task.agent_status != self.kind.expects() {
            // The task moved on (cancelled, failed, re-dispatched): nothing to send.
            return Ok(());
        }
        // A parked task (its box was taken away while it waited on a human) gets a fresh box
        // that resumes from the pushed branch and the stored spec.
        // Resuming: parked without a box, or a resume that reserved its slot and was cut off
        // before the box attached.
        let resuming = task.box_torn_down || (task.parked && task.box_id.is_none());
        let task = if resuming {
            // A fresh box obeys the kill switch and the cap like any other.
            if let Some(why) = resume_blocked(orch, &task).await.map_err(store_err)? {
                let error = format!("resuming waits: {why}");
                store
                    .set_last_error(&task.id, Some(&error))
                    .await
                    .map_err(store_err)?;
                return Err(JobFailure::Retryable(error));
            }
            let note = vec!["resuming: starting a fresh box from the pushed branch".to_string()];
            if let Ok(done) = store.append_logs(&task.id, note).await {
                orch.publish_log(&task.id, &done.project_id, done.event_id, done.last_seq);
            }
            if let Err(e) = crate::provision::start_box(orch, &task.id).await {
                // The slot goes back; the task stays parked for the next attempt.
                store.detach_box(&task.id, true).await.map_err(store_err)?;
                store
                    .set_last_error(&task.id, Some(&format!("resuming failed: {e}")))
                    .await
                    .map_err(store_err)?;
                return Err(JobFailure::Retryable(format!("resuming failed: {e}")));
            }
            store.get_task(&task_id).await.map_err(store_err)?
        } else {
            task
        };
        let mut body: Value = match self.kind {
            Dispatch::Implement => json!({ "note": task.approve_note }),
            Dispatch::Revise => {
                json!({ "feedback": task.spec_feedback.clone().unwrap_or_default() })
            }
            Dispatch::Changes => {
                let comments = store
                    .review_comments(&task.id, task.round)
                    .await
                    .map_err(store_err)?;
                json!({ "comments": comments.iter().map(|c| json!({
                    "author": c.author_name, "body": c.body, "path": c.path, "line": c.line,
                })).collect::<Vec<_>>() })
            }
        };
        // A round that pushes gets a fresh GitHub App token: the box's own lives an hour.
        if self.kind != Dispatch::Revise {
            let project = store
                .get_project(&task.project_id)
                .await
                .map_err(store_err)?;
            if project.agent.forge == "github" && !project.agent.forge_token_set {
                if let Ok(Some(token)) =
                    crate::github::project_token(orch, &project, crate::github::TokenFor::Box).await
                {
                    body["github_token"] = json!(token);
                }
            }
        }
        let result = match (
            &task.control_url,
            store.control_token(&task.id).await.map_err(store_err)?,
        ) {
            (Some(url), Some(token)) => {
                let url = format!("{}{}", url.trim_end_matches('/'), self.kind.path());
                match self
                    .client
                    .post(&url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!(
                        "box control plane answered {} to {}",
                        r.status(),
                        self.kind.path()
                    )),
                    Err(e) => Err(format!("box control plane unreachable: {e}")),
                }
            }
            _ => Err("the task has no box to dispatch to".to_string()),
        };
        match result {
            Ok(()) => {
                store
                    .set_last_error(&task.id, None)
                    .await
                    .map_err(store_err)?;
                if self.kind != Dispatch::Revise {
                    orch.transition(
                        TransitionRequest::new(&task.id, AgentStatus::Implementing, Actor::System)
                            .with_message(format!("dispatched {}", self.kind.path())),
                    )
                    .await
                    .map_err(store_err)?;
                }
                if self.kind == Dispatch::Changes {
                    let what = format!("The agent is working on round {}", task.round);
                    if let Err(e) =
                        crate::github::status_soon(orch, &task.id, "pending", &what).await
                    {
                        tracing::warn!(error = %e, "could not queue the PR's status");
                    }
                }
                Ok(())
            }
            Err(error) => {
                store
                    .set_last_error(&task.id, Some(&error))
                    .await
                    .map_err(store_err)?;
                if job.attempt >= job.max_attempts && self.kind == Dispatch::Changes {
                    orch.transition(
                        TransitionRequest::new(&task.id, AgentStatus::PrReady, Actor::System)
                            .with_message(format!("could not dispatch the review: {error}")),
                    )
                    .await
                    .map_err(store_err)?;
                }
                Err(JobFailure::Retryable(error))
            }
        }
    }
}

/// Calls the task's box's control plane (`path` with its query; a JSON body for a POST): the
/// status and the JSON answer. An error says why nothing was asked (no box, unreachable).
pub async fn box_call(
    orch: &Orchestrator,
    task: &apiary_store::Task,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let token = orch
        .store
        .control_token(&task.id)
        .await
        .map_err(|e| e.to_string())?;
    let (Some(url), Some(token), false) = (&task.control_url, token, task.box_torn_down) else {
        return Err("the task has no box".into());
    };
    // One client (and connection pool) for every such call: the code view asks per page.
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .expect("http client")
    });
    let url = format!("{}{path}", url.trim_end_matches('/'));
    let req = match body {
        Some(b) => client.post(url).json(&b),
        None => client.get(url),
    };
    let resp = req
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("box control plane unreachable: {e}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// Hands a reviewer's follow-up message to the task's box, which gives it to the agent at its
/// next turn; how many messages wait there. An error says why it did not arrive.
pub async fn send_follow_up(
    orch: &Orchestrator,
    task: &apiary_store::Task,
    author: &str,
    text: &str,
) -> Result<i64, String> {
    let (status, answer) = box_call(
        orch,
        task,
        "/message",
        Some(json!({ "author": author, "text": text })),
    )
    .await?;
    if !(200..300).contains(&status) {
        return Err(format!("box control plane answered {status} to /message"));
    }
    Ok(answer["waiting"].as_i64().unwrap_or(1))
}
