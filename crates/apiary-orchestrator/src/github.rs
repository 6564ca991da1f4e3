//! GitHub's side of the loop: a small REST client (the project's token, GitHub's media type
//! and API version), and the `forge_event` job that acts on a verified webhook delivery. Only
//! pull requests Apiary opened count (found by their `apiary/…` branch); a person steers the
//! agent only with write access to the repository, checked with the API.

use std::time::Duration;

use apiary_core::forge::{github_repo, mentions, tail, Check, CheckReport, MAX_LOG_TAIL_BYTES};
use apiary_core::AgentStatus;
use apiary_store::{
    Actor, Job, JobFailure, NewReviewComment, Project, StoreError, Task, TaskWrites,
    TransitionRequest,
};
use async_trait::async_trait;
use serde_json::{json, Value};

use crate::worker::JobHandler;
use crate::Orchestrator;

/// Most review comments one round takes from GitHub (as the review page allows).
const MAX_COMMENTS: usize = 100;
/// Most failing checks whose logs are fetched for one fix round.
const MAX_LOGS: usize = 5;

/// Why a GitHub call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub answered {status} to {what}: {body}")]
    Status {
        status: u16,
        what: String,
        body: String,
    },
    #[error("calling GitHub ({what}): {error}")]
    Transport { what: String, error: String },
}

impl GitHubError {
    /// Worth retrying: the network, GitHub's own trouble, a rate limit.
    fn passing(&self) -> bool {
        match self {
            GitHubError::Transport { .. } => true,
            GitHubError::Status { status, .. } => *status >= 500 || *status == 429,
        }
    }
}

impl From<GitHubError> for JobFailure {
    fn from(e: GitHubError) -> Self {
        if e.passing() {
            JobFailure::Retryable(e.to_string())
        } else {
            JobFailure::Fatal(e.to_string())
        }
    }
}

/// A repository on GitHub, reached with a project's token.
pub struct Repo {
    http: reqwest::Client,
    api: String,
    token: String,
    pub owner: String,
    pub name: String,
}

impl Repo {
    /// The project's repository with its token and the settings' API base; `None` when the
    /// project is not on GitHub or has no token.
    pub async fn of_project(orch: &Orchestrator, project: &Project) -> Option<Repo> {
        let (owner, name) = github_repo(&project.agent.repo_url)?;
        let token = orch
            .store
            .project_forge_token(&project.id)
            .await
            .ok()
            .flatten()?;
        let api = orch.store.settings().await.ok()?.github_api_base;
        Some(Repo {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .ok()?,
            api: api.trim_end_matches('/').to_string(),
            token,
            owner,
            name,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("{}/repos/{}/{}{path}", self.api, self.owner, self.name),
            )
            .bearer_auth(&self.token)
            .header("user-agent", "apiary")
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Result<String, GitHubError> {
        let transport = |e: reqwest::Error| GitHubError::Transport {
            what: what.to_string(),
            error: e.to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let body = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(GitHubError::Status {
                status: status.as_u16(),
                what: what.to_string(),
                body: tail(&body, 500).to_string(),
            });
        }
        Ok(body)
    }

    async fn get(&self, what: &str, path: &str) -> Result<Value, GitHubError> {
        let body = self
            .send(what, self.request(reqwest::Method::GET, path))
            .await?;
        serde_json::from_str(&body).map_err(|e| GitHubError::Transport {
            what: what.to_string(),
            error: format!("not JSON: {e}"),
        })
    }

    async fn post(&self, what: &str, path: &str, body: Value) -> Result<(), GitHubError> {
        self.send(what, self.request(reqwest::Method::POST, path).json(&body))
            .await
            .map(|_| ())
    }

    /// Whether `login` may push to the repository (write, maintain or admin).
    pub async fn can_write(&self, login: &str) -> Result<bool, GitHubError> {
        let v = self
            .get(
                "reading a collaborator's permission",
                &format!("/collaborators/{login}/permission"),
            )
            .await;
        match v {
            Ok(v) => Ok(matches!(
                v["permission"].as_str(),
                Some("admin" | "maintain" | "write")
            )),
            // Not a collaborator at all.
            Err(GitHubError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A pull request.
    pub async fn pull(&self, number: u64) -> Result<Value, GitHubError> {
        self.get("reading the pull request", &format!("/pulls/{number}"))
            .await
    }

    /// The line comments of one review.
    pub async fn review_comments(&self, pr: u64, review: u64) -> Result<Vec<Value>, GitHubError> {
        let v = self
            .get(
                "reading the review's comments",
                &format!("/pulls/{pr}/reviews/{review}/comments?per_page={MAX_COMMENTS}"),
            )
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The failing check runs of a commit, with their summaries and (for GitHub Actions)
    /// the end of their logs.
    pub async fn failing_checks(&self, sha: &str) -> Result<Vec<Check>, GitHubError> {
        let v = self
            .get(
                "listing the commit's check runs",
                &format!("/commits/{sha}/check-runs?per_page=100"),
            )
            .await?;
        let mut out = Vec::new();
        for run in v["check_runs"].as_array().into_iter().flatten() {
            if !matches!(run["conclusion"].as_str(), Some("failure" | "timed_out")) {
                continue;
            }
            let name = run["name"].as_str().unwrap_or("check").to_string();
            let summary = [&run["output"]["title"], &run["output"]["summary"]]
                .iter()
                .filter_map(|v| v.as_str())
                .filter(|s| !s.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n\n");
            let mut log_tail = String::new();
            if out.len() < MAX_LOGS && run["app"]["slug"].as_str() == Some("github-actions") {
                if let Some(id) = run["id"].as_u64() {
                    // Actions answers with a redirect to the log file; a log that cannot be
                    // read still leaves the name and summary.
                    match self
                        .send(
                            "reading the job's log",
                            self.request(reqwest::Method::GET, &format!("/actions/jobs/{id}/logs")),
                        )
                        .await
                    {
                        Ok(log) => log_tail = tail(&log, MAX_LOG_TAIL_BYTES).to_string(),
                        Err(e) => tracing::warn!(error = %e, "no log for a failing check"),
                    }
                }
            }
            out.push(Check {
                name: name.chars().take(200).collect(),
                passed: false,
                summary: tail(&summary, 4000).to_string(),
                log_tail,
            });
            if out.len() >= apiary_core::forge::MAX_CHECKS {
                break;
            }
        }
        Ok(out)
    }

    /// Comments on an issue (or a pull request).
    pub async fn comment(&self, issue: u64, body: &str) -> Result<(), GitHubError> {
        self.post(
            "commenting on the issue",
            &format!("/issues/{issue}/comments"),
            json!({ "body": body }),
        )
        .await
    }

    /// Sets the `Apiary` commit status of `sha`.
    pub async fn status(
        &self,
        sha: &str,
        state: &str,
        description: &str,
        target_url: &str,
    ) -> Result<(), GitHubError> {
        let mut body = json!({
            "state": state,
            "context": "Apiary",
            "description": description.chars().take(140).collect::<String>(),
        });
        if target_url.starts_with("http://") || target_url.starts_with("https://") {
            body["target_url"] = json!(target_url);
        }
        self.post(
            "setting the commit status",
            &format!("/statuses/{sha}"),
            body,
        )
        .await
    }
}

fn store_err(e: StoreError) -> JobFailure {
    JobFailure::Retryable(e.to_string())
}

/// The `forge_event` job: one verified webhook delivery.
pub struct ForgeEvent;

#[async_trait]
impl JobHandler for ForgeEvent {
    async fn run(&self, orch: &Orchestrator, job: &Job) -> Result<(), JobFailure> {
        let p = job.payload_json();
        let event = p["event"].as_str().unwrap_or_default();
        let payload = &p["payload"];
        let what = handle(orch, event, payload).await?;
        tracing::info!(event, delivery = p["delivery"].as_str(), "{what}");
        Ok(())
    }
}

/// The projects on GitHub whose repository is the event's.
async fn projects_of(orch: &Orchestrator, payload: &Value) -> Result<Vec<Project>, JobFailure> {
    let full = payload["repository"]["full_name"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok(orch
        .store
        .github_projects()
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|p| {
            github_repo(&p.agent.repo_url)
                .is_some_and(|(o, r)| format!("{o}/{r}").to_ascii_lowercase() == full)
        })
        .collect())
}

/// The task Apiary opened `branch` for, in one of `projects`, with its project.
async fn task_of(
    orch: &Orchestrator,
    projects: &[Project],
    branch: &str,
) -> Result<Option<(Task, Project)>, JobFailure> {
    if !branch.starts_with("apiary/") {
        return Ok(None);
    }
    let Some(task) = orch.store.task_by_branch(branch).await.map_err(store_err)? else {
        return Ok(None);
    };
    Ok(projects
        .iter()
        .find(|p| p.id == task.project_id)
        .cloned()
        .map(|p| (task, p)))
}

/// Runs a transition for a GitHub user, recorded as `github:<login>`; a refused one (the task
/// moved on) is a no-op.
async fn act(
    orch: &Orchestrator,
    task: &Task,
    to: AgentStatus,
    login: &str,
    writes: TaskWrites,
    message: String,
) -> Result<String, JobFailure> {
    let req = TransitionRequest::new(&task.id, to, Actor::Human(format!("github:{login}")))
        .with_writes(writes)
        .with_message(message.clone());
    match orch.transition(req).await {
        Ok(o) if o.changed => Ok(format!("task {}: {message}", task.id)),
        Ok(_) => Ok(format!("task {} already {to}", task.id)),
        Err(StoreError::InvalidTransition { from, .. }) => {
            Ok(format!("task {} is {from}; {to} does not apply", task.id))
        }
        Err(e) => Err(store_err(e)),
    }
}

/// Acts on one event; returns what it did, for the log.
pub async fn handle(
    orch: &Orchestrator,
    event: &str,
    payload: &Value,
) -> Result<String, JobFailure> {
    let action = payload["action"].as_str().unwrap_or_default();
    let projects = projects_of(orch, payload).await?;
    if projects.is_empty() {
        return Ok(format!("{event}: no project on this repository"));
    }
    match (event, action) {
        ("pull_request", "closed") => {
            let pr = &payload["pull_request"];
            let branch = pr["head"]["ref"].as_str().unwrap_or_default();
            let Some((task, _)) = task_of(orch, &projects, branch).await? else {
                return Ok("pull_request: not a PR Apiary opened".into());
            };
            let login = payload["sender"]["login"].as_str().unwrap_or("someone");
            let n = pr["number"].as_u64().unwrap_or_default();
            if pr["merged"].as_bool() == Some(true) && task.agent_status == AgentStatus::PrReady {
                act(
                    orch,
                    &task,
                    AgentStatus::Merged,
                    login,
                    TaskWrites::default(),
                    format!("PR #{n} merged on GitHub by {login}"),
                )
                .await
            } else if task.agent_status.is_active() {
                let how = if pr["merged"].as_bool() == Some(true) {
                    "merged"
                } else {
                    "closed"
                };
                act(
                    orch,
                    &task,
                    AgentStatus::Cancelled,
                    login,
                    TaskWrites::default(),
                    format!("PR #{n} {how} on GitHub by {login}"),
                )
                .await
            } else {
                Ok(format!("task {} is {} already", task.id, task.agent_status))
            }
        }
        ("pull_request_review", "submitted") => {
            let review = &payload["review"];
            if !review["state"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("changes_requested"))
            {
                return Ok("pull_request_review: not a request for changes".into());
            }
            let pr = &payload["pull_request"];
            let branch = pr["head"]["ref"].as_str().unwrap_or_default();
            let Some((task, project)) = task_of(orch, &projects, branch).await? else {
                return Ok("pull_request_review: not a PR Apiary opened".into());
            };
            if task.agent_status != AgentStatus::PrReady {
                return Ok(format!("task {} is {}", task.id, task.agent_status));
            }
            let login = review["user"]["login"].as_str().unwrap_or_default();
            let Some(repo) = Repo::of_project(orch, &project).await else {
                return Err(JobFailure::Fatal("the project has no GitHub token".into()));
            };
            if !repo.can_write(login).await? {
                return Ok(format!(
                    "review by {login} ignored: no write access to the repository"
                ));
            }
            let n = pr["number"].as_u64().unwrap_or_default();
            let id = review["id"].as_u64().unwrap_or_default();
            let author = Some(format!("{login} (GitHub)"));
            let mut comments = Vec::new();
            if let Some(body) = review["body"].as_str().filter(|b| !b.trim().is_empty()) {
                comments.push(NewReviewComment {
                    author_id: None,
                    author_name: author.clone(),
                    body: body.to_string(),
                    path: None,
                    line: None,
                });
            }
            for c in repo.review_comments(n, id).await?.iter().take(MAX_COMMENTS) {
                let Some(body) = c["body"].as_str().filter(|b| !b.trim().is_empty()) else {
                    continue;
                };
                comments.push(NewReviewComment {
                    author_id: None,
                    author_name: author.clone(),
                    body: body.to_string(),
                    path: c["path"].as_str().map(str::to_string),
                    line: c["line"].as_i64().or(c["original_line"].as_i64()),
                });
            }
            if comments.is_empty() {
                comments.push(NewReviewComment {
                    author_id: None,
                    author_name: author,
                    body: "Changes requested on GitHub (no comment given).".into(),
                    path: None,
                    line: None,
                });
            }
            let count = comments.len();
            act(
                orch,
                &task,
                AgentStatus::ChangesRequested,
                login,
                TaskWrites {
                    review_comments: comments,
                    ..Default::default()
                },
                format!("{count} review comment(s) from {login} on GitHub"),
            )
            .await
        }
        ("issue_comment", "created") => {
            let issue = &payload["issue"];
            let comment = &payload["comment"];
            let handle = orch
                .store
                .settings()
                .await
                .map_err(store_err)?
                .github_handle;
            let body = comment["body"].as_str().unwrap_or_default();
            if issue["pull_request"].is_null() || !mentions(body, &handle) {
                return Ok("issue_comment: not a mention on a pull request".into());
            }
            let login = comment["user"]["login"].as_str().unwrap_or_default();
            let n = issue["number"].as_u64().unwrap_or_default();
            for project in &projects {
                let Some(repo) = Repo::of_project(orch, project).await else {
                    continue;
                };
                let pr = repo.pull(n).await?;
                let branch = pr["head"]["ref"].as_str().unwrap_or_default();
                let Some((task, _)) = task_of(orch, std::slice::from_ref(project), branch).await?
                else {
                    continue;
                };
                if task.agent_status != AgentStatus::PrReady {
                    return Ok(format!("task {} is {}", task.id, task.agent_status));
                }
                if !repo.can_write(login).await? {
                    return Ok(format!(
                        "mention by {login} ignored: no write access to the repository"
                    ));
                }
                let comments = vec![NewReviewComment {
                    author_id: None,
                    author_name: Some(format!("{login} (GitHub)")),
                    body: body.to_string(),
                    path: None,
                    line: None,
                }];
                return act(
                    orch,
                    &task,
                    AgentStatus::ChangesRequested,
                    login,
                    TaskWrites {
                        review_comments: comments,
                        ..Default::default()
                    },
                    format!("@{handle} mentioned by {login} on GitHub"),
                )
                .await;
            }
            Ok("issue_comment: not a PR Apiary opened".into())
        }
        ("check_run" | "check_suite", "completed") => {
            let item = &payload[event];
            if !matches!(item["conclusion"].as_str(), Some("failure" | "timed_out")) {
                return Ok(format!("{event}: not a failure"));
            }
            let sha = item["head_sha"].as_str().unwrap_or_default();
            let branch = item["head_branch"]
                .as_str()
                .or(item["check_suite"]["head_branch"].as_str())
                .or(item["pull_requests"][0]["head"]["ref"].as_str())
                .unwrap_or_default();
            let Some((task, project)) = task_of(orch, &projects, branch).await? else {
                return Ok(format!("{event}: not on a branch of Apiary's"));
            };
            if task.agent_status != AgentStatus::PrReady {
                return Ok(format!("task {} is {}", task.id, task.agent_status));
            }
            let Some(repo) = Repo::of_project(orch, &project).await else {
                return Err(JobFailure::Fatal("the project has no GitHub token".into()));
            };
            // A late failure of an older head says nothing about the PR as it is now.
            if let Some(n) = task
                .pr_url
                .as_deref()
                .and_then(apiary_core::forge::pr_number)
            {
                let pr = repo.pull(n).await?;
                if pr["head"]["sha"].as_str() != Some(sha) {
                    return Ok(format!("{event}: for an older head of PR #{n}"));
                }
            }
            let checks = repo.failing_checks(sha).await?;
            if checks.is_empty() {
                return Ok(format!("{event}: no failing check run on {sha}"));
            }
            let report = CheckReport {
                source: "github".into(),
                checks,
            };
            let done = crate::fix::checks_failed(orch, &task.id, &report)
                .await
                .map_err(store_err)?;
            Ok(format!("task {}: failing checks: {done:?}", task.id))
        }
        ("issues", "labeled") => {
            let label = payload["label"]["name"].as_str().unwrap_or_default();
            let Some(project) = projects
                .iter()
                .find(|p| p.agent.trigger_label.eq_ignore_ascii_case(label))
            else {
                return Ok(format!("issues: label {label:?} is no project's trigger"));
            };
            let issue = &payload["issue"];
            let login = payload["sender"]["login"].as_str().unwrap_or_default();
            let Some(repo) = Repo::of_project(orch, project).await else {
                return Err(JobFailure::Fatal("the project has no GitHub token".into()));
            };
            if !repo.can_write(login).await? {
                return Ok(format!(
                    "label by {login} ignored: no write access to the repository"
                ));
            }
            let n = issue["number"].as_i64().unwrap_or_default();
            let title = issue["title"].as_str().unwrap_or_default();
            let mut description = issue["body"].as_str().unwrap_or_default().to_string();
            if let Some(url) = issue["html_url"].as_str() {
                description.push_str(&format!("\n\n(GitHub issue #{n}: {url})"));
            }
            let made = orch
                .store
                .create_issue_task(
                    &project.id,
                    n,
                    title,
                    &description,
                    Actor::Human(format!("github:{login}")),
                )
                .await
                .map_err(store_err)?;
            let Some((task, outcome)) = made else {
                return Ok(format!("issue #{n} has a task already"));
            };
            orch.publish(&outcome);
            let link = format!(
                "{}/tasks/{}",
                orch.public_url().await.map_err(store_err)?,
                task.id
            );
            if let Err(e) = repo
                .comment(
                    n as u64,
                    &format!(
                        "Apiary is on it: [{}]({link}). Its pull request will say `Fixes #{n}`.",
                        task.title
                    ),
                )
                .await
            {
                tracing::warn!(error = %e, "could not comment on the issue");
            }
            Ok(format!("issue #{n} became task {}", task.id))
        }
        _ => Ok(format!("{event} {action}: nothing to do")),
    }
}
