//! The boot env (DESIGN §4), read once.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Everything the box knows, from its boot env.
#[derive(Debug, Clone)]
pub struct BoxAgentConfig {
    pub apiary_url: String,
    pub task_id: String,
    pub callback_token: String,
    pub control_token: String,
    pub repo_url: String,
    pub base_branch: String,
    pub branch: String,
    /// A preset name, used when `agent_command` is empty.
    pub agent: String,
    /// A shell command that runs the agent; wins over the preset.
    pub agent_command: String,
    pub forge: String,
    pub spec_timeout_s: u64,
    pub impl_timeout_s: u64,
    /// The box's folder; the workspace is `<box_dir>/workspace`.
    pub box_dir: PathBuf,
    /// Where the control plane listens.
    pub control_bind: String,
    /// GitHub API base and token for the `github` forge.
    pub github_api: String,
    pub github_token: String,
}

fn var(name: &str) -> Result<String> {
    let v = std::env::var(name)
        .with_context(|| format!("{name} is not set (the box's boot env is incomplete)"))?;
    if v.trim().is_empty() {
        bail!("{name} is empty (the box's boot env is incomplete)");
    }
    Ok(v)
}

fn opt(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn seconds(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a number of seconds")),
        _ => Ok(default),
    }
}

impl BoxAgentConfig {
    /// Reads the boot env; a missing variable is an error naming it.
    pub fn from_env() -> Result<Self> {
        let agent_command = opt("APIARY_AGENT_COMMAND");
        let agent = opt("APIARY_AGENT");
        if agent_command.trim().is_empty() && agent.trim().is_empty() {
            bail!("set APIARY_AGENT (a preset) or APIARY_AGENT_COMMAND");
        }
        Ok(BoxAgentConfig {
            apiary_url: var("APIARY_URL")?.trim_end_matches('/').to_string(),
            task_id: var("APIARY_TASK_ID")?,
            callback_token: var("APIARY_CALLBACK_TOKEN")?,
            control_token: var("APIARY_CONTROL_TOKEN")?,
            repo_url: var("APIARY_REPO_URL")?,
            base_branch: var("APIARY_BASE_BRANCH")?,
            branch: var("APIARY_BRANCH")?,
            agent,
            agent_command,
            forge: std::env::var("APIARY_FORGE").unwrap_or_else(|_| "local".into()),
            spec_timeout_s: seconds("APIARY_SPEC_RUN_TIMEOUT", 1800)?,
            impl_timeout_s: seconds("APIARY_IMPL_RUN_TIMEOUT", 3600)?,
            box_dir: PathBuf::from(var("APIARY_BOX_DIR")?),
            control_bind: std::env::var("APIARY_CONTROL_BIND")
                .unwrap_or_else(|_| "127.0.0.1:0".into()),
            github_api: std::env::var("APIARY_GITHUB_API")
                .unwrap_or_else(|_| "https://api.github.com".into()),
            github_token: opt("APIARY_GITHUB_TOKEN"),
        })
    }

    /// The shell command that runs the agent.
    pub fn command(&self) -> Result<String> {
        if !self.agent_command.trim().is_empty() {
            return Ok(self.agent_command.clone());
        }
        crate::presets::command_line(&self.agent)
    }
}
