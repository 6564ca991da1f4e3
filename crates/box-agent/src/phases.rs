//! The agent's phases: setup (clone, branch), spec, revise, implement, changes. One run at a
//! time; each ends with its callback (spec, PR or error).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use apiary_core::prompts::{self, CommentCtx, ProjectCtx, PromptContext, PromptKind, TaskCtx};
use serde_json::Value;
use tokio::sync::watch;

use crate::callback::Callback;
use crate::config::BoxAgentConfig;
use crate::logs::LogStream;
use crate::{git, runner};

/// A run the control plane can start.
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

/// What a control request brought (it wins over what the task view says).
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub note: Option<String>,
    pub feedback: Option<String>,
    pub comments: Vec<CommentCtx>,
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
}

impl Agent {
    pub fn new(cfg: BoxAgentConfig) -> Result<Self> {
        let cb = Callback::new(&cfg.apiary_url, &cfg.task_id, &cfg.callback_token);
        let logs = LogStream::start(cb.clone());
        std::fs::create_dir_all(&cfg.box_dir).context("creating the box folder")?;
        Ok(Agent {
            workspace: cfg.box_dir.join("workspace"),
            cfg,
            cb,
            logs,
            ready: watch::channel(None).0,
            busy: AtomicBool::new(false),
        })
    }

    /// Tells the provider where the control plane listens (written atomically).
    pub fn announce(&self, port: u16) -> Result<()> {
        let tmp = self.cfg.box_dir.join("control.json.tmp");
        std::fs::write(
            &tmp,
            format!("{{\"port\": {port}, \"pid\": {}}}", std::process::id()),
        )?;
        std::fs::rename(tmp, self.cfg.box_dir.join("control.json"))?;
        Ok(())
    }

    /// Whether a run is going on.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Claims the single run slot.
    pub fn try_begin(&self) -> bool {
        self.busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Sets the box up, then runs the spec phase if the task is at its start.
    pub async fn start(self: Arc<Self>) {
        self.logs.line(format!(
            "cloning {} ({})",
            self.cfg.repo_url, self.cfg.base_branch
        ));
        let setup = git::prepare(
            &self.cfg.repo_url,
            &self.cfg.base_branch,
            &self.cfg.branch,
            &self.workspace,
        )
        .await;
        let resumed = match setup {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("setting up the workspace failed: {e:#}");
                self.ready.send_replace(Some(Err(msg.clone())));
                self.fail(&msg).await;
                return;
            }
        };
        if resumed {
            self.logs.line(format!(
                "resuming from the pushed branch {}",
                self.cfg.branch
            ));
        }
        self.ready.send_replace(Some(Ok(())));
        let view = match self.cb.task_view().await {
            Ok(v) => v,
            Err(e) => return self.fail(&format!("reading the task failed: {e:#}")).await,
        };
        let status = view["task"]["agent"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let phase = match status.as_str() {
            "provisioning" => {
                if let Err(e) = self.cb.status("speccing", "box is up").await {
                    return self
                        .fail(&format!("reporting speccing failed: {e:#}"))
                        .await;
                }
                Some(Phase::Spec)
            }
            "speccing" if view["feedback"].as_str().is_some_and(|f| !f.is_empty()) => {
                Some(Phase::Revise)
            }
            "speccing" => Some(Phase::Spec),
            // A resumed box waits for the control plane.
            _ => None,
        };
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

    /// Runs one phase to its callback; the caller holds the run slot, which this releases.
    pub async fn run(self: &Arc<Self>, phase: Phase, input: Input) {
        // Wait for the workspace (a control request can arrive while cloning).
        let mut ready = self.ready.subscribe();
        let setup = ready
            .wait_for(|r| r.is_some())
            .await
            .map(|r| r.clone().unwrap_or(Ok(())));
        let result = match setup {
            Ok(Ok(())) => self.run_phase(phase, input).await,
            Ok(Err(e)) => Err(anyhow::anyhow!(e)),
            Err(_) => Err(anyhow::anyhow!("the box is shutting down")),
        };
        if let Err(e) = result {
            self.fail(&format!("{e:#}")).await;
        }
        self.busy.store(false, Ordering::SeqCst);
    }

    fn context(&self, view: &Value, input: &Input) -> PromptContext {
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        let comments = if input.comments.is_empty() {
            view["review_comments"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| CommentCtx {
                            author: s(&c["author"]),
                            body: s(&c["body"]),
                            path: c["path"].as_str().map(str::to_string),
                            line: c["line"].as_i64(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            input.comments.clone()
        };
        PromptContext {
            task: TaskCtx {
                id: self.cfg.task_id.clone(),
                title: s(&view["task"]["title"]),
                description: s(&view["task"]["description"]),
            },
            project: ProjectCtx {
                name: s(&view["project"]["name"]),
            },
            spec: s(&view["spec"]),
            feedback: input
                .feedback
                .clone()
                .unwrap_or_else(|| s(&view["feedback"])),
            note: input.note.clone().unwrap_or_else(|| s(&view["note"])),
            comments,
            round: view["round"].as_i64().unwrap_or(0),
            branch: self.cfg.branch.clone(),
        }
    }

    async fn run_phase(&self, phase: Phase, input: Input) -> Result<()> {
        let view = self.cb.task_view().await.context("reading the task")?;
        let kind = phase.kind();
        let template = view["prompts"][kind.as_str()]
            .as_str()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or(prompts::builtin(kind))
            .to_string();
        let prompt = prompts::render(&template, &self.context(&view, &input))
            .map_err(|e| anyhow::anyhow!("the {} prompt does not render: {e}", kind.as_str()))?;
        let prompt_file = self
            .cfg
            .box_dir
            .join(format!("prompt-{}.md", kind.as_str()));
        std::fs::write(&prompt_file, prompt).context("writing the prompt file")?;
        let spec_file = self.workspace.join(".apiary").join("SPEC.md");
        if phase == Phase::Spec {
            let _ = std::fs::remove_file(&spec_file);
        }
        let timeout = match phase {
            Phase::Spec | Phase::Revise => self.cfg.spec_timeout_s,
            Phase::Implement | Phase::Changes => self.cfg.impl_timeout_s,
        };
        self.logs
            .line(format!("running the agent ({} phase)", kind.as_str()));
        let out = runner::run(
            &self.cfg.command()?,
            kind.as_str(),
            &prompt_file,
            &self.workspace,
            Duration::from_secs(timeout),
            &self.logs,
        )
        .await?;
        self.logs.flush().await;
        match phase {
            Phase::Spec | Phase::Revise => {
                let spec = std::fs::read_to_string(&spec_file)
                    .ok()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or(out.stdout);
                if spec.trim().is_empty() {
                    bail!("the agent wrote no spec (no .apiary/SPEC.md and no output)");
                }
                self.cb.spec(&spec).await.context("submitting the spec")?;
            }
            Phase::Implement | Phase::Changes => {
                let title = view["task"]["title"].as_str().unwrap_or("task");
                let mut message = format!("apiary: {title} (task {})", self.cfg.task_id);
                if phase == Phase::Changes {
                    message.push_str(&format!(
                        "\n\nReview round {}.",
                        view["round"].as_i64().unwrap_or(0)
                    ));
                }
                self.logs.line(format!("pushing {}", self.cfg.branch));
                let head =
                    git::commit_and_push(&self.workspace, &self.cfg.branch, &message).await?;
                let url = crate::forge_pr_url(&self.cfg, title).await?;
                self.logs.line(format!("pull request: {url}"));
                self.logs.flush().await;
                self.cb
                    .pr(&url, &self.cfg.branch, &head)
                    .await
                    .context("submitting the pull request")?;
            }
        }
        Ok(())
    }
}
