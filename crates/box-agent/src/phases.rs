//! The agent's phases: setup (clone, branch), spec, revise, implement, changes. One run at a
//! time; each ends with its callback (spec, PR or error), after its log lines went out.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use apiary_core::prompts::PromptKind;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::callback::{Callback, Conflict};
use crate::config::BoxAgentConfig;
use crate::git::Git;
use crate::logs::LogStream;
use crate::prompts::{self, Input};
use crate::runner::{self, Run};
use crate::{forge, spec};

/// A run the control plane (or the box's start) can begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Spec,
    Revise,
    Implement,
    Changes,
}

impl Phase {
    fn kind(self) -> PromptKind {
        match self {
            Phase::Spec => PromptKind::Spec,
            Phase::Revise => PromptKind::Revise,
            Phase::Implement => PromptKind::Implement,
            Phase::Changes => PromptKind::Changes,
        }
    }
}

/// Releases the run slot when a run ends, however it ends.
struct Slot<'a>(&'a AtomicBool);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A URL fit for a log line: without the credentials it may carry.
pub(crate) fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// A reviewer's message to the running agent (issue 17's follow-ups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub author: String,
    pub text: String,
}

/// How many times one phase runs the agent again for messages that arrived while it worked.
const MAX_FOLLOW_UP_RUNS: usize = 3;

/// The prompt that hands the agent the messages that arrived while it worked.
fn follow_up_prompt(phase: &str, messages: &[FollowUp]) -> String {
    let mut out = format!(
        "While you worked on the {phase} phase, the reviewer sent these messages. Take them \
         into account and continue the same task in this workspace.\n\n"
    );
    for m in messages {
        out.push_str(&format!("- {}: {}\n", m.author, m.text));
    }
    out
}

/// The box agent's state.
pub struct Agent {
    pub cfg: BoxAgentConfig,
    cb: Callback,
    logs: LogStream,
    workspace: PathBuf,
    /// `None` while setting up, then whether setup worked.
    ready: watch::Sender<Option<Result<(), String>>>,
    busy: AtomicBool,
    /// Messages from the reviewer not yet handed to the agent.
    follow_ups: std::sync::Mutex<Vec<FollowUp>>,
    /// Set when the box shuts down for good: a run in progress is dropped (its process group
    /// killed) and reports nothing.
    stopping: watch::Sender<bool>,
    /// The site preview, run between rounds.
    pub preview: crate::preview::Preview,
}

impl Agent {
    pub fn new(cfg: BoxAgentConfig) -> Result<Self> {
        let cb = Callback::new(&cfg.apiary_url, &cfg.task_id, &cfg.callback_token)?;
        let logs = LogStream::start(cb.clone());
        std::fs::create_dir_all(&cfg.box_dir).context("creating the box folder")?;
        Ok(Agent {
            workspace: cfg.box_dir.join("workspace"),
            cfg,
            cb,
            logs,
            ready: watch::channel(None).0,
            busy: AtomicBool::new(false),
            follow_ups: std::sync::Mutex::new(Vec::new()),
            stopping: watch::channel(false).0,
            preview: Default::default(),
        })
    }

    /// Where the repository is checked out.
    pub fn workspace(&self) -> PathBuf {
        self.workspace.clone()
    }

    /// The task's log.
    pub fn logs(&self) -> LogStream {
        self.logs.clone()
    }

    /// What the callback answers tell about Apiary.
    pub fn liveness(&self) -> Arc<crate::orphan::Liveness> {
        self.cb.liveness()
    }

    /// Asks Apiary once whether it still knows the box.
    pub async fn ping(&self) {
        self.cb.ping().await
    }

    /// Stops any run (killing the agent's process group) and waits, up to 10 s, until it ended.
    pub async fn stop(&self) {
        self.stopping.send_replace(true);
        self.preview.stop(&self.logs).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.busy() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells the provider where the control plane listens: `control.json`, written atomically.
    pub fn announce(&self, port: u16) -> Result<()> {
        let tmp = self.cfg.box_dir.join("control.json.tmp");
        let body = json!({ "port": port, "pid": std::process::id() });
        std::fs::write(&tmp, body.to_string()).context("writing control.json")?;
        std::fs::rename(tmp, self.cfg.box_dir.join("control.json")).context("writing control.json")
    }

    /// Takes a reviewer's message: the agent gets it at its next turn (run again after the
    /// current run, or with the next phase's prompt). Answers how many wait.
    pub fn follow_up(&self, message: FollowUp) -> usize {
        self.logs
            .line(format!("message from {}: {}", message.author, message.text));
        let mut queue = self.follow_ups.lock().expect("follow-ups lock");
        queue.push(message);
        queue.len()
    }

    fn take_follow_ups(&self) -> Vec<FollowUp> {
        std::mem::take(&mut *self.follow_ups.lock().expect("follow-ups lock"))
    }

    /// Whether a run is going on.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Claims the single run slot; the run it guards releases it.
    pub fn try_begin(&self) -> bool {
        self.busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Sets the box up, then runs the spec phase if the task is at its start (a resumed box,
    /// whose task is further along, waits for the control plane instead).
    pub async fn start(self: Arc<Self>) {
        let cfg = &self.cfg;
        self.logs.line(format!(
            "cloning {} ({})",
            shown(&cfg.repo_url),
            cfg.base_branch
        ));
        if let Some(line) = Git::new(cfg).token_withheld() {
            self.logs.line(line);
        }
        let resumed = match Git::new(cfg).prepare(&self.workspace).await {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("setting up the workspace: {e:#}");
                self.ready.send_replace(Some(Err(msg.clone())));
                return self.fail(&msg).await;
            }
        };
        if resumed {
            self.logs
                .line(format!("resuming from the pushed branch {}", cfg.branch));
        } else {
            self.logs.line(format!(
                "working on the new branch {} (from {})",
                cfg.branch, cfg.base_branch
            ));
        }
        self.ready.send_replace(Some(Ok(())));
        let view = match self.cb.task_view().await {
            Ok(v) => v,
            Err(e) => return self.fail(&format!("reading the task: {e:#}")).await,
        };
        let phase = match view["task"]["agent"]["status"].as_str().unwrap_or("") {
            "provisioning" => {
                if let Err(e) = self.cb.status("speccing", "the box is up").await {
                    return self.fail(&format!("reporting speccing: {e:#}")).await;
                }
                Some(Phase::Spec)
            }
            "speccing"
                if view["feedback"]
                    .as_str()
                    .is_some_and(|f| !f.trim().is_empty()) =>
            {
                Some(Phase::Revise)
            }
            "speccing" => Some(Phase::Spec),
            _ => None,
        };
        // A box resumed with a pull request open serves its site again.
        if phase.is_none() && view["task"]["agent"]["pr_url"].is_string() {
            self.restart_preview(&view).await;
        }
        if let Some(phase) = phase {
            if self.try_begin() {
                self.run(phase, Input::default()).await;
            }
        }
    }

    async fn fail(&self, error: &str) {
        tracing::error!(%error, "phase failed");
        self.logs.line(format!("error: {error}"));
        self.logs.flush().await;
        if let Err(e) = self.cb.error(error).await {
            tracing::error!(error = %e, "could not report the error");
        }
    }

    /// Runs one phase to its callback; the caller claimed the run slot, this releases it.
    pub async fn run(self: &Arc<Self>, phase: Phase, input: Input) {
        let _slot = Slot(&self.busy);
        // A control request can arrive while the box is still cloning.
        let mut ready = self.ready.subscribe();
        let setup = ready
            .wait_for(|r| r.is_some())
            .await
            .map(|r| r.clone().unwrap_or(Ok(())));
        let mut stopping = self.stopping.subscribe();
        let work = async {
            match setup {
                Ok(Ok(())) => self.run_phase(phase, input).await,
                Ok(Err(e)) => Err(anyhow!(e)),
                Err(_) => Err(anyhow!("the box is shutting down")),
            }
        };
        let result = tokio::select! {
            r = work => r,
            _ = stopping.wait_for(|s| *s) => {
                tracing::warn!("run stopped: the box is shutting down for good");
                return;
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.chain().any(|c| c.is::<Conflict>()) => {
                // The task moved on without this box (cancelled, say): nothing to fail.
                tracing::warn!(error = %format!("{e:#}"), "Apiary refused the result");
                self.logs.line(format!("Apiary refused the result: {e:#}"));
                self.logs.flush().await;
            }
            Err(e) => self.fail(&format!("{e:#}")).await,
        }
    }

    /// Runs the project's check command on the pushed head, if it has one; then puts the
    /// workspace back as committed (what the checks built or changed is not the agent's work).
    /// They get what is left of the phase's budget (`left`), and a line in the log every
    /// minute, so a quiet test suite is not taken for a stalled agent.
    async fn run_checks(
        &self,
        view: &Value,
        prompt_file: &std::path::Path,
        left: Duration,
    ) -> Result<Option<apiary_core::forge::CheckReport>> {
        let command = view["project"]["agent"]["check_command"]
            .as_str()
            .unwrap_or_default()
            .trim();
        if command.is_empty() {
            return Ok(None);
        }
        self.logs.line(format!("running the checks: {command}"));
        let logs = self.logs.clone();
        let ticker = tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                logs.line(format!(
                    "checks still running ({} s)",
                    started.elapsed().as_secs()
                ));
            }
        });
        let check = runner::check(
            &self.cfg,
            command,
            &self.workspace,
            prompt_file,
            left.max(Duration::from_secs(30)),
            &self.logs,
        )
        .await;
        ticker.abort();
        let check = check.context("running the check command")?;
        self.logs.line(format!(
            "checks {}: {}",
            if check.passed { "passed" } else { "failed" },
            check.summary
        ));
        let git = Git::new(&self.cfg);
        git.run(Some(&self.workspace), &["reset", "-q", "--hard", "HEAD"])
            .await?;
        git.run(Some(&self.workspace), &["clean", "-q", "-ffd"])
            .await?;
        Ok(Some(apiary_core::forge::CheckReport {
            source: "command".into(),
            checks: vec![check],
        }))
    }

    /// Starts the project's site preview on the workspace as it is now (when it sets one).
    async fn restart_preview(&self, view: &Value) {
        // A box shutting down for good starts nothing.
        if *self.stopping.borrow() {
            return;
        }
        match crate::preview::PreviewSpec::from_view(view, &self.cfg.task_id) {
            Some(spec) => {
                self.preview
                    .start(&self.cfg, spec, &self.workspace, &self.logs)
                    .await
            }
            None => self.preview.stop(&self.logs).await,
        }
    }

    async fn run_phase(&self, phase: Phase, input: Input) -> Result<()> {
        // A fresh GitHub token for this round replaces the box's own (which may have expired).
        let renewed;
        let cfg = match input.github_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => {
                renewed = BoxAgentConfig {
                    github_token: token.to_string(),
                    ..self.cfg.clone()
                };
                &renewed
            }
            None => &self.cfg,
        };
        let view: Value = self.cb.task_view().await.context("reading the task")?;
        // The agent works on the files the preview serves: it waits for the round's end.
        if matches!(phase, Phase::Implement | Phase::Changes) {
            self.preview.stop(&self.logs).await;
        }
        let kind = phase.kind();
        let ctx = prompts::context(&view, &input, &cfg.task_id, &cfg.branch);
        let mut prompt = prompts::render(&view, kind, &ctx)?;
        let waiting = self.take_follow_ups();
        if !waiting.is_empty() {
            prompt.push_str("\n\n");
            prompt.push_str(&follow_up_prompt(kind.as_str(), &waiting));
        }
        let prompt_file = cfg.box_dir.join(format!("prompt-{}.md", kind.as_str()));
        std::fs::write(&prompt_file, prompt).context("writing the prompt file")?;
        let before = match phase {
            Phase::Spec => spec::prepare(&self.workspace, None)?,
            Phase::Revise => spec::prepare(&self.workspace, Some(&ctx.spec))?,
            Phase::Implement | Phase::Changes => None,
        };
        let timeout = match phase {
            Phase::Spec | Phase::Revise => cfg.spec_timeout_s,
            Phase::Implement | Phase::Changes => cfg.impl_timeout_s,
        };
        let preset = cfg.preset(&runner::gateway_url(cfg), kind.as_str())?;
        self.logs
            .line(format!("running the agent ({} phase)", kind.as_str()));
        let run = Run {
            preset: &preset,
            phase: kind.as_str(),
            prompt_file: &prompt_file,
            workspace: &self.workspace,
            timeout: Duration::from_secs(timeout),
        };
        let started = std::time::Instant::now();
        let mut out = runner::run(cfg, run, &self.logs).await?;
        // Messages that arrived while the agent ran: it runs again with them, in the same
        // workspace and within the phase's budget.
        for _ in 0..MAX_FOLLOW_UP_RUNS {
            let messages = self.take_follow_ups();
            if messages.is_empty() {
                break;
            }
            let left = Duration::from_secs(timeout).saturating_sub(started.elapsed());
            if left < Duration::from_secs(10) {
                self.logs.line(
                    "no time left in this phase for the messages: they go with the next round",
                );
                self.follow_ups
                    .lock()
                    .expect("follow-ups lock")
                    .splice(0..0, messages);
                break;
            }
            let file = cfg.box_dir.join("prompt-follow-up.md");
            std::fs::write(&file, follow_up_prompt(kind.as_str(), &messages))
                .context("writing the follow-up prompt")?;
            self.logs.line(format!(
                "running the agent again with {} message(s) from the reviewer",
                messages.len()
            ));
            let again = Run {
                preset: &preset,
                phase: kind.as_str(),
                prompt_file: &file,
                workspace: &self.workspace,
                timeout: left,
            };
            let next = runner::run(cfg, again, &self.logs).await?;
            if !next.stdout.trim().is_empty() {
                out = next;
            }
        }
        match phase {
            Phase::Spec | Phase::Revise => {
                let Some(spec) = spec::collect(&self.workspace, before.as_deref(), &out.stdout)?
                else {
                    bail!(
                        "the agent wrote no spec (no {} and no output)",
                        spec::SPEC_FILE
                    );
                };
                self.logs.line("submitting the spec");
                self.logs.flush().await;
                self.cb.spec(&spec).await.context("submitting the spec")?;
            }
            Phase::Implement | Phase::Changes => {
                let title = view["task"]["title"].as_str().unwrap_or("task");
                let mut message = format!("apiary: {title} (task {})", cfg.task_id);
                if phase == Phase::Changes {
                    message.push_str(&format!("\n\nReview round {}.", ctx.round));
                }
                self.logs.line(format!("pushing {}", cfg.branch));
                let (head, nested) = Git::new(cfg)
                    .commit_and_push(&self.workspace, &message)
                    .await
                    .with_context(|| format!("committing and pushing {}", cfg.branch))?;
                for path in nested {
                    self.logs.line(format!(
                        "removed {} before committing: the box does not commit nested git repositories",
                        path.display()
                    ));
                }
                let left = Duration::from_secs(timeout).saturating_sub(started.elapsed());
                let checks = self.run_checks(&view, &prompt_file, left).await?;
                let issue = view["task"]["agent"]["github_issue"].as_i64();
                let url = forge::pr_url(cfg, title, &forge::pr_body(cfg, &ctx.spec, issue))
                    .await
                    .context("opening the pull request")?;
                self.restart_preview(&view).await;
                self.logs.line(format!("pull request: {url} (head {head})"));
                self.logs.flush().await;
                self.cb
                    .pr(&url, &cfg.branch, &head, checks.as_ref())
                    .await
                    .context("submitting the pull request")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{follow_up_prompt, shown, FollowUp};

    #[test]
    fn the_follow_up_prompt_names_each_message_and_its_author() {
        let p = follow_up_prompt(
            "implement",
            &[FollowUp {
                author: "Ann".into(),
                text: "Use tabs.".into(),
            }],
        );
        assert!(p.contains("implement phase"), "{p}");
        assert!(p.contains("- Ann: Use tabs."), "{p}");
    }

    #[test]
    fn credentials_never_reach_a_log_line() {
        assert_eq!(
            shown("https://x-access-token:ghp_1@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(shown("git@github.com:a/b.git"), "git@github.com:a/b.git");
        assert_eq!(shown("/srv/repo.git"), "/srv/repo.git");
    }
}
