//! GitHub's side of the loop: a small REST client (the project's token, GitHub's media type
//! and API version), and the `forge_event` job that acts on a verified webhook delivery. Only
//! pull requests Apiary opened count (found by their `apiary/…` branch); a person steers the
//! agent only with write access to the repository, checked with the API.

use std::time::Duration;

use apiary_core::forge::{
    github_repo, mentions, pr_number, tail, Check, CheckReport, MAX_LOG_TAIL_BYTES,
};
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
/// Largest JSON answer read from GitHub.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;
/// Longest comment taken from GitHub into a round (as the review page allows).
const MAX_COMMENT_BYTES: usize = 20_000;
/// Events about something older than this are not acted on (a replayed old delivery).
const MAX_EVENT_AGE_S: i64 = 7 * 24 * 3600;

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
    pub fn passing(&self) -> bool {
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

/// The settings secret holding the GitHub App's private key (PEM).
pub const APP_PRIVATE_KEY: &str = "github.app_private_key";

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks that `pem` is an RSA private key (PKCS#1 or PKCS#8 PEM, as GitHub hands them out).
pub fn check_app_key(pem: &str) -> Result<(), String> {
    let key = openssl::pkey::PKey::private_key_from_pem(pem.as_bytes())
        .map_err(|_| "not a PEM private key".to_string())?;
    if key.rsa().is_err() {
        return Err("not an RSA key (GitHub Apps sign with RSA)".into());
    }
    Ok(())
}

/// The JSON Web Token a GitHub App authenticates with (RS256; issued a minute in the past
/// against clock drift, valid nine minutes).
pub fn app_jwt(app_id: &str, pem: &str, now_s: i64) -> Result<String, String> {
    let key = openssl::pkey::PKey::private_key_from_pem(pem.as_bytes())
        .map_err(|_| "the GitHub App's private key is not a PEM private key".to_string())?;
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = b64url(
        json!({ "iat": now_s - 60, "exp": now_s + 540, "iss": app_id })
            .to_string()
            .as_bytes(),
    );
    let signing_input = format!("{header}.{claims}");
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
        .map_err(|e| e.to_string())?;
    signer
        .update(signing_input.as_bytes())
        .map_err(|e| e.to_string())?;
    let signature = signer.sign_to_vec().map_err(|e| e.to_string())?;
    Ok(format!("{signing_input}.{}", b64url(&signature)))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// What a box's installation token may do: push its branch and open its pull request.
const BOX_PERMISSIONS: &str = r#"{"contents": "write", "pull_requests": "write"}"#;

/// Who uses a token: Apiary itself, or a box (least privilege: only what a box does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFor {
    Apiary,
    Box,
}

/// The token Apiary uses for a project's repository: the project's own, else a fresh
/// installation token of the GitHub App (scoped to that one repository, living an hour; a
/// box's only to push and open its PR); `None` when there is neither.
pub async fn project_token(
    orch: &Orchestrator,
    project: &Project,
    holder: TokenFor,
) -> Result<Option<String>, GitHubError> {
    let internal = |e: StoreError| GitHubError::Transport {
        what: "reading the settings".into(),
        error: e.to_string(),
    };
    if let Some(token) = orch
        .store
        .project_forge_token(&project.id)
        .await
        .map_err(internal)?
    {
        return Ok(Some(token));
    }
    let settings = orch.store.settings().await.map_err(internal)?;
    let app_id = settings.github_app_id.trim().to_string();
    let Some(pem) = orch
        .store
        .setting_secret(APP_PRIVATE_KEY)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let Some((owner, name)) = github_repo(&project.agent.repo_url) else {
        return Ok(None);
    };
    if app_id.is_empty() {
        return Ok(None);
    }
    let jwt = app_jwt(&app_id, &pem, orch.store.now() / 1000).map_err(|e| GitHubError::Status {
        status: 401,
        what: "signing as the GitHub App".into(),
        body: e,
    })?;
    let app = Repo {
        http: http(),
        api: settings.github_api_base.trim_end_matches('/').to_string(),
        token: jwt,
        owner,
        name,
    };
    let installation = app
        .get("finding the GitHub App's installation", "/installation")
        .await?;
    let id = installation["id"].as_u64().unwrap_or_default();
    let answer = app
        .send(
            "minting an installation token",
            app.http
                .post(format!("{}/app/installations/{id}/access_tokens", app.api))
                .bearer_auth(&app.token)
                .header("user-agent", "apiary")
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
                .json(&{
                    let mut body = json!({ "repositories": [app.name] });
                    if holder == TokenFor::Box {
                        body["permissions"] =
                            serde_json::from_str(BOX_PERMISSIONS).expect("permissions are JSON");
                    }
                    body
                }),
        )
        .await?;
    let v: Value = serde_json::from_str(&answer).unwrap_or_default();
    Ok(v["token"].as_str().map(str::to_string))
}

impl Repo {
    /// The project's repository with its token (see [`project_token`]) and the settings' API
    /// base; `None` when the project is not on GitHub or has no way in.
    pub async fn of_project(
        orch: &Orchestrator,
        project: &Project,
    ) -> Result<Option<Repo>, GitHubError> {
        let Some((owner, name)) = github_repo(&project.agent.repo_url) else {
            return Ok(None);
        };
        let Some(token) = project_token(orch, project, TokenFor::Apiary).await? else {
            return Ok(None);
        };
        let api = orch
            .store
            .settings()
            .await
            .map_err(|e| GitHubError::Transport {
                what: "reading the settings".into(),
                error: e.to_string(),
            })?
            .github_api_base;
        Ok(Some(Repo {
            http: http(),
            api: api.trim_end_matches('/').to_string(),
            token,
            owner,
            name,
        }))
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

    /// Sends a request and reads its answer: at most [`MAX_ANSWER_BYTES`] of it, or with
    /// `keep_tail`, the last that many bytes of an answer of any length (a job's log).
    async fn send_with(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
        keep_tail: Option<usize>,
    ) -> Result<String, GitHubError> {
        use futures_util::StreamExt;
        let transport = |e: reqwest::Error| GitHubError::Transport {
            what: what.to_string(),
            error: e.to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let mut body: Vec<u8> = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.map_err(transport)?);
            match keep_tail {
                Some(keep) if body.len() > 2 * keep => {
                    body.drain(..body.len() - keep);
                }
                None if body.len() > MAX_ANSWER_BYTES => {
                    return Err(GitHubError::Transport {
                        what: what.to_string(),
                        error: format!("the answer is over {MAX_ANSWER_BYTES} bytes"),
                    });
                }
                _ => {}
            }
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            return Err(GitHubError::Status {
                status: status.as_u16(),
                what: what.to_string(),
                body: tail(&body, 500).to_string(),
            });
        }
        Ok(body)
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Result<String, GitHubError> {
        self.send_with(what, req, None).await
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

    /// Whether `login` may push to the repository (write, maintain or admin). A string that
    /// is no GitHub login never may.
    pub async fn can_write(&self, login: &str) -> Result<bool, GitHubError> {
        if !is_login(login) {
            return Ok(false);
        }
        let login = login.replace('[', "%5B").replace(']', "%5D");
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
    /// the end of their logs; empty while any run of the commit is still going (the last one
    /// to finish brings the whole picture, so one round answers every failure).
    pub async fn failing_checks(&self, sha: &str) -> Result<Vec<Check>, GitHubError> {
        if sha.is_empty() || sha.len() > 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let v = self
            .get(
                "listing the commit's check runs",
                &format!("/commits/{sha}/check-runs?per_page=100"),
            )
            .await?;
        let runs = v["check_runs"].as_array().cloned().unwrap_or_default();
        if runs
            .iter()
            .any(|r| r["status"].as_str() != Some("completed"))
        {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for run in &runs {
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
                        .send_with(
                            "reading the job's log",
                            self.request(reqwest::Method::GET, &format!("/actions/jobs/{id}/logs")),
                            Some(MAX_LOG_TAIL_BYTES),
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

/// Whether `s` is a GitHub login (an app's bot login ends in `[bot]`).
pub fn is_login(s: &str) -> bool {
    let name = s.strip_suffix("[bot]").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 39
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whether an RFC 3339 time is within [`MAX_EVENT_AGE_S`] of `now_ms` (a missing or odd one
/// is not).
fn recent(at: &Value, now_ms: i64) -> bool {
    at.as_str()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .is_some_and(|t| now_ms / 1000 - t.unix_timestamp() <= MAX_EVENT_AGE_S)
}

/// At most [`MAX_COMMENT_BYTES`] of a comment from GitHub.
fn bounded(text: &str) -> String {
    let mut end = text.len().min(MAX_COMMENT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The `forge_event` job: one verified webhook delivery, or Apiary's own look at a PR's
/// checks once it is ready (`apiary_recheck`).
pub struct ForgeEvent;

#[async_trait]
impl JobHandler for ForgeEvent {
    async fn run(&self, orch: &Orchestrator, job: &Job) -> Result<(), JobFailure> {
        let p = job.payload_json();
        let event = p["event"].as_str().unwrap_or_default();
        let payload = &p["payload"];
        let scope: Vec<String> = p["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        match handle(orch, event, payload, &scope).await {
            Ok(what) => {
                tracing::info!(event, delivery = p["delivery"].as_str(), "{what}");
                Ok(())
            }
            Err(JobFailure::Fatal(e)) => {
                // GitHub's "Redeliver" (the same id) runs it again once this is fixed.
                if let Some(id) = p["delivery"].as_str() {
                    orch.store
                        .forget_forge_delivery(id)
                        .await
                        .map_err(store_err)?;
                }
                Err(JobFailure::Fatal(e))
            }
            Err(e) => Err(e),
        }
    }
}

/// After a PR of a `github` project is submitted: looks at its head's checks once (CI may
/// have finished while the box was still at work, and its events found the task busy).
pub async fn recheck_soon(orch: &Orchestrator, task_id: &str) -> Result<(), StoreError> {
    let task = orch.store.get_task(task_id).await?;
    if orch.store.get_project(&task.project_id).await?.agent.forge != "github" {
        return Ok(());
    }
    orch.store
        .enqueue(
            apiary_store::NewJob::new(
                "forge_event",
                json!({ "event": "apiary_recheck", "payload": { "task_id": task_id } }),
            )
            .for_task(task_id)
            .max_attempts(5),
        )
        .await?;
    orch.wake_handle().notify_one();
    Ok(())
}

/// Sets the `Apiary` commit status of a task's PR head soon (a `forge_status` job), when the
/// task has a PR on GitHub: how people there see that the agent is at work on it.
pub async fn status_soon(
    orch: &Orchestrator,
    task_id: &str,
    state: &str,
    description: &str,
) -> Result<(), StoreError> {
    let task = orch.store.get_task(task_id).await?;
    if task.pr_url.as_deref().and_then(pr_number).is_none()
        || orch.store.get_project(&task.project_id).await?.agent.forge != "github"
    {
        return Ok(());
    }
    orch.store
        .enqueue(
            apiary_store::NewJob::new(
                "forge_status",
                json!({ "task_id": task_id, "state": state, "description": description }),
            )
            .for_task(task_id)
            .max_attempts(5),
        )
        .await?;
    orch.wake_handle().notify_one();
    Ok(())
}

/// The task's repository and its pull request as GitHub has it now; `None` without a PR.
async fn pr_of_task(orch: &Orchestrator, task: &Task) -> Result<Option<(Repo, Value)>, JobFailure> {
    let Some(n) = task.pr_url.as_deref().and_then(pr_number) else {
        return Ok(None);
    };
    let project = orch
        .store
        .get_project(&task.project_id)
        .await
        .map_err(store_err)?;
    let repo = repo_or_fail(Repo::of_project(orch, &project).await)?;
    let pr = repo.pull(n).await?;
    Ok(Some((repo, pr)))
}

/// The `forge_status` job: the `Apiary` status of the task's PR head.
pub struct ForgeStatus;

#[async_trait]
impl JobHandler for ForgeStatus {
    async fn run(&self, orch: &Orchestrator, job: &Job) -> Result<(), JobFailure> {
        let p = job.payload_json();
        let task = orch
            .store
            .get_task(p["task_id"].as_str().unwrap_or_default())
            .await
            .map_err(store_err)?;
        let Some((repo, pr)) = pr_of_task(orch, &task).await? else {
            return Ok(());
        };
        let link = format!(
            "{}/tasks/{}",
            orch.public_url().await.map_err(store_err)?,
            task.id
        );
        if let Some(sha) = pr["head"]["sha"].as_str() {
            repo.status(
                sha,
                p["state"].as_str().unwrap_or("pending"),
                p["description"].as_str().unwrap_or_default(),
                &link,
            )
            .await?;
        }
        Ok(())
    }
}

/// The projects on the `github` forge whose repository is `full_name` (`owner/repo`).
pub async fn projects_on(orch: &Orchestrator, full_name: &str) -> Result<Vec<Project>, StoreError> {
    let full = full_name.to_ascii_lowercase();
    Ok(orch
        .store
        .github_projects()
        .await?
        .into_iter()
        .filter(|p| {
            !full.is_empty()
                && github_repo(&p.agent.repo_url)
                    .is_some_and(|(o, r)| format!("{o}/{r}").to_ascii_lowercase() == full)
        })
        .collect())
}

/// The task and project of a pull request Apiary opened: its head is an `apiary/…` branch
/// of the repository itself (a fork's PR may name its branch alike, but is never ours), in
/// one of `projects`, and its number is the task's PR's.
async fn task_of_pr(
    orch: &Orchestrator,
    projects: &[Project],
    repository: &Value,
    pr: &Value,
) -> Result<Option<(Task, Project)>, JobFailure> {
    let branch = pr["head"]["ref"].as_str().unwrap_or_default();
    let same_repo = match (
        pr["head"]["repo"]["full_name"].as_str(),
        repository["full_name"].as_str(),
    ) {
        (Some(head), Some(base)) => head.eq_ignore_ascii_case(base),
        _ => false,
    };
    if !same_repo || !branch.starts_with("apiary/") {
        return Ok(None);
    }
    let Some(task) = orch.store.task_by_branch(branch).await.map_err(store_err)? else {
        return Ok(None);
    };
    let ours = task.pr_url.as_deref().and_then(pr_number) == pr["number"].as_u64();
    Ok(projects
        .iter()
        .find(|p| p.id == task.project_id && ours)
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

fn repo_or_fail(repo: Result<Option<Repo>, GitHubError>) -> Result<Repo, JobFailure> {
    repo?.ok_or_else(|| {
        JobFailure::Fatal("the project has no GitHub token and no GitHub App is set".into())
    })
}

/// A person asked for a round while the agent is busy (or the task waits elsewhere): say so
/// on the PR rather than drop it silently.
async fn not_now(repo: &Repo, pr: u64, task: &Task, login: &str) -> Result<String, JobFailure> {
    let text = format!(
        "@{login} Apiary is not waiting for review on this pull request right now (the agent's task is `{}`); ask again once it is ready for review.",
        task.agent_status
    );
    if let Err(e) = repo.comment(pr, &text).await {
        tracing::warn!(error = %e, "could not answer on the pull request");
    }
    Ok(format!(
        "task {} is {}; {login} was told",
        task.id, task.agent_status
    ))
}

/// Acts on failing checks of the PR's current head, once every check of it has finished.
async fn checks_of_head(
    orch: &Orchestrator,
    repo: &Repo,
    task: &Task,
    sha: &str,
) -> Result<String, JobFailure> {
    if let Some(n) = task.pr_url.as_deref().and_then(pr_number) {
        let pr = repo.pull(n).await?;
        if pr["head"]["sha"].as_str() != Some(sha) {
            return Ok(format!("checks of an older head of PR #{n}"));
        }
    }
    let checks = repo.failing_checks(sha).await?;
    if checks.is_empty() {
        return Ok(format!("no failing check run on {sha} (or some still run)"));
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

/// Acts on one event; returns what it did, for the log.
/// `scope`: the projects the delivery's signature reaches.
pub async fn handle(
    orch: &Orchestrator,
    event: &str,
    payload: &Value,
    scope: &[String],
) -> Result<String, JobFailure> {
    if event == "apiary_recheck" {
        let task_id = payload["task_id"].as_str().unwrap_or_default();
        let task = orch.store.get_task(task_id).await.map_err(store_err)?;
        if task.agent_status != AgentStatus::PrReady {
            return Ok(format!("task {task_id} is {}", task.agent_status));
        }
        let Some((repo, pr)) = pr_of_task(orch, &task).await? else {
            return Ok(format!("task {task_id} has no GitHub PR"));
        };
        let sha = pr["head"]["sha"].as_str().unwrap_or_default().to_string();
        return checks_of_head(orch, &repo, &task, &sha).await;
    }
    let action = payload["action"].as_str().unwrap_or_default();
    let projects: Vec<Project> = projects_on(
        orch,
        payload["repository"]["full_name"]
            .as_str()
            .unwrap_or_default(),
    )
    .await
    .map_err(store_err)?
    .into_iter()
    .filter(|p| scope.contains(&p.id))
    .collect();
    if projects.is_empty() {
        return Ok(format!("{event}: no project on this repository"));
    }
    let repository = &payload["repository"];
    let now = orch.store.now();
    match (event, action) {
        ("pull_request", "closed") => {
            let pr = &payload["pull_request"];
            let Some((task, _)) = task_of_pr(orch, &projects, repository, pr).await? else {
                return Ok("pull_request: not a PR Apiary opened".into());
            };
            let login = payload["sender"]["login"].as_str().unwrap_or("someone");
            let n = pr["number"].as_u64().unwrap_or_default();
            let merged = pr["merged"].as_bool() == Some(true);
            if merged && task.agent_status == AgentStatus::PrReady {
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
                let how = if merged { "merged" } else { "closed" };
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
            if !recent(&review["submitted_at"], now) {
                return Ok("pull_request_review: an old review".into());
            }
            let pr = &payload["pull_request"];
            let Some((task, project)) = task_of_pr(orch, &projects, repository, pr).await? else {
                return Ok("pull_request_review: not a PR Apiary opened".into());
            };
            let login = review["user"]["login"].as_str().unwrap_or_default();
            let repo = repo_or_fail(Repo::of_project(orch, &project).await)?;
            if !repo.can_write(login).await? {
                return Ok(format!(
                    "review by {login} ignored: no write access to the repository"
                ));
            }
            let n = pr["number"].as_u64().unwrap_or_default();
            if task.agent_status != AgentStatus::PrReady {
                return not_now(&repo, n, &task, login).await;
            }
            let id = review["id"].as_u64().unwrap_or_default();
            let author = Some(format!("{login} (GitHub)"));
            let mut comments = Vec::new();
            if let Some(body) = review["body"].as_str().filter(|b| !b.trim().is_empty()) {
                comments.push(NewReviewComment {
                    author_id: None,
                    author_name: author.clone(),
                    body: bounded(body),
                    path: None,
                    line: None,
                });
            }
            for c in repo.review_comments(n, id).await?.iter() {
                if comments.len() >= MAX_COMMENTS {
                    break;
                }
                let Some(body) = c["body"].as_str().filter(|b| !b.trim().is_empty()) else {
                    continue;
                };
                comments.push(NewReviewComment {
                    author_id: None,
                    author_name: author.clone(),
                    body: bounded(body),
                    path: c["path"]
                        .as_str()
                        .filter(|p| !p.is_empty() && p.len() <= 1000)
                        .map(str::to_string),
                    line: c["line"]
                        .as_i64()
                        .or(c["original_line"].as_i64())
                        .filter(|l| *l >= 1),
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
            if !recent(&comment["created_at"], now) {
                return Ok("issue_comment: an old comment".into());
            }
            let login = comment["user"]["login"].as_str().unwrap_or_default();
            let n = issue["number"].as_u64().unwrap_or_default();
            for project in &projects {
                let Some(repo) = Repo::of_project(orch, project).await? else {
                    continue;
                };
                let pr = repo.pull(n).await?;
                let Some((task, _)) =
                    task_of_pr(orch, std::slice::from_ref(project), repository, &pr).await?
                else {
                    continue;
                };
                if !repo.can_write(login).await? {
                    return Ok(format!(
                        "mention by {login} ignored: no write access to the repository"
                    ));
                }
                if task.agent_status != AgentStatus::PrReady {
                    return not_now(&repo, n, &task, login).await;
                }
                let comments = vec![NewReviewComment {
                    author_id: None,
                    author_name: Some(format!("{login} (GitHub)")),
                    body: bounded(body),
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
            // The PRs of the repository itself that this head belongs to (a fork's are never
            // listed): the task's PR must be one of them.
            let prs: Vec<u64> = item["pull_requests"]
                .as_array()
                .or(item["check_suite"]["pull_requests"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|p| p["number"].as_u64())
                .collect();
            let branch = item["head_branch"]
                .as_str()
                .or(item["check_suite"]["head_branch"].as_str())
                .unwrap_or_default();
            if !branch.starts_with("apiary/") {
                return Ok(format!("{event}: not on a branch of Apiary's"));
            }
            let Some(task) = orch.store.task_by_branch(branch).await.map_err(store_err)? else {
                return Ok(format!("{event}: no task has this branch"));
            };
            let Some(project) = projects.iter().find(|p| p.id == task.project_id) else {
                return Ok(format!("{event}: the branch is another project's"));
            };
            if !task
                .pr_url
                .as_deref()
                .and_then(pr_number)
                .is_some_and(|n| prs.contains(&n))
            {
                return Ok(format!("{event}: not for the task's pull request"));
            }
            if task.agent_status != AgentStatus::PrReady {
                // Apiary looks again when the next head is submitted.
                return Ok(format!("task {} is {}", task.id, task.agent_status));
            }
            let repo = repo_or_fail(Repo::of_project(orch, project).await)?;
            checks_of_head(orch, &repo, &task, sha).await
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
            if !recent(&issue["updated_at"], now) {
                return Ok("issues: an old issue event".into());
            }
            if !project.agent.enabled
                || !orch
                    .store
                    .settings()
                    .await
                    .map_err(store_err)?
                    .agent_orchestration_enabled
            {
                return Ok(format!(
                    "issues: project {} has its agent off (or orchestration is off)",
                    project.id
                ));
            }
            let login = payload["sender"]["login"].as_str().unwrap_or_default();
            let repo = repo_or_fail(Repo::of_project(orch, project).await)?;
            if !repo.can_write(login).await? {
                return Ok(format!(
                    "label by {login} ignored: no write access to the repository"
                ));
            }
            let n = issue["number"].as_i64().unwrap_or_default();
            let title = issue["title"].as_str().unwrap_or_default();
            let mut description = bounded(issue["body"].as_str().unwrap_or_default());
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
                    &format!("Apiary is on it: [its task]({link}). Its pull request will say `Fixes #{n}`."),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_and_ages() {
        assert!(is_login("octo-cat"));
        assert!(is_login("dependabot[bot]"));
        assert!(!is_login("../../orgs/x"));
        assert!(!is_login(""));
        assert!(!is_login(&"a".repeat(40)));
        let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert!(recent(&json!("2025-12-30T10:00:00Z"), now));
        assert!(!recent(&json!("2025-12-01T10:00:00Z"), now));
        assert!(!recent(&json!("yesterday"), now));
        assert!(!recent(&Value::Null, now));
        assert_eq!(bounded(&"é".repeat(20_000)).len(), 20_000);
    }
}
