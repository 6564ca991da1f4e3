//! The boot env (DESIGN §4), read once, and the box's secrets kept out of its children.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Names of the box's secrets: never in the agent's environment nor in git's.
pub const SECRET_VARS: [&str; 3] = [
    "APIARY_CALLBACK_TOKEN",
    "APIARY_CONTROL_TOKEN",
    "APIARY_GITHUB_TOKEN",
];

/// Whether the coding agent runs in a sandbox of its own inside the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSandbox {
    /// bubblewrap, or no run at all: a sandbox that does not start fails the run, never opens.
    Bwrap,
    /// No sandbox, because the admin chose `--sandbox none` (said in the task's log).
    None,
}

/// Everything the box knows, from its boot env. Public fields so tests build one directly;
/// `Debug` hides the tokens.
#[derive(Clone)]
pub struct BoxAgentConfig {
    /// Apiary's base URL, without a trailing slash.
    pub apiary_url: String,
    pub task_id: String,
    /// Authenticates the box to the callback API (box → Apiary).
    pub callback_token: String,
    /// Authenticates Apiary to the control plane (Apiary → box).
    pub control_token: String,
    /// A git URL or a local path the box clones from and pushes to.
    pub repo_url: String,
    pub base_branch: String,
    /// The box's own branch, e.g. `apiary/<task-id>-<slug>`.
    pub branch: String,
    /// A preset name, used when `agent_command` is empty.
    pub agent: String,
    /// A shell command that runs the agent; wins over the preset.
    pub agent_command: String,
    /// `local` (Apiary's own review page) or `github`.
    pub forge: String,
    /// Timeout of a spec or revise run, in seconds.
    pub spec_timeout_s: u64,
    /// Timeout of an implement or changes run, in seconds.
    pub impl_timeout_s: u64,
    /// The box's folder; the workspace is `<box_dir>/workspace`.
    pub box_dir: PathBuf,
    /// Where the control plane listens.
    pub control_bind: String,
    /// GitHub API base for the `github` forge, without a trailing slash.
    pub github_api: String,
    /// The project's GitHub token (pushes and the PR); empty on the `local` forge.
    pub github_token: String,
    /// The agent's own sandbox (`APIARY_AGENT_SANDBOX`: `bwrap`, the default, or `none`).
    pub sandbox: AgentSandbox,
    /// The bubblewrap program (`APIARY_BWRAP`, default `bwrap` on the PATH).
    pub bwrap: String,
    /// How long the box waits for an Apiary it cannot reach before it gives up for good
    /// (`APIARY_ORPHAN_S`, seconds).
    pub orphan_s: u64,
    /// Where the sandboxed agent may connect, through the box's egress proxy
    /// (`APIARY_EGRESS_ALLOW`); `None`: no network at all for the agent.
    pub egress: Option<crate::egress::Allowlist>,
    /// Where the egress proxy sends allowed connections when the box has no direct way out
    /// (`APIARY_EGRESS_UPSTREAM`, `host:port`: the gate of a box in a container).
    pub egress_upstream: Option<String>,
    /// The agent's key to Apiary's model gateway (`APIARY_GATEWAY_TOKEN`); it is the agent's,
    /// not one of the box's secrets.
    pub gateway_token: String,
    /// The model the preset's CLI uses (`APIARY_AGENT_MODEL`; blank: the CLI's default).
    pub model: String,
    /// Plain variables for the agent (`APIARY_AGENT_ENV`, a JSON object).
    pub agent_env: std::collections::BTreeMap<String, String>,
}

impl BoxAgentConfig {
    /// Reads the boot env; a missing variable is an error naming it.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the boot env through `get` (the process env, or a test's map); blank counts as
    /// unset.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let opt = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let var = |name: &str| {
            opt(name)
                .with_context(|| format!("{name} is not set (the box's boot env is incomplete)"))
        };
        let seconds = |name: &str, default: u64| -> Result<u64> {
            match opt(name) {
                Some(v) => v
                    .trim()
                    .parse()
                    .with_context(|| format!("{name} must be a number of seconds, not {v:?}")),
                None => Ok(default),
            }
        };
        let agent_command = opt("APIARY_AGENT_COMMAND").unwrap_or_default();
        let agent = opt("APIARY_AGENT").unwrap_or_default().trim().to_string();
        if agent_command.is_empty() && agent.is_empty() {
            bail!("APIARY_AGENT (a preset) or APIARY_AGENT_COMMAND must be set");
        }
        let forge = match opt("APIARY_FORGE").as_deref().map(str::trim) {
            None | Some("local") => "local".to_string(),
            Some("github") => "github".to_string(),
            Some(other) => bail!("APIARY_FORGE must be local or github, not {other:?}"),
        };
        let sandbox = match opt("APIARY_AGENT_SANDBOX").as_deref().map(str::trim) {
            None | Some("bwrap") => AgentSandbox::Bwrap,
            Some("none") => AgentSandbox::None,
            Some(other) => bail!("APIARY_AGENT_SANDBOX must be bwrap or none, not {other:?}"),
        };
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
            forge,
            spec_timeout_s: seconds("APIARY_SPEC_RUN_TIMEOUT", 1800)?,
            impl_timeout_s: seconds("APIARY_IMPL_RUN_TIMEOUT", 3600)?,
            box_dir: PathBuf::from(var("APIARY_BOX_DIR")?),
            control_bind: opt("APIARY_CONTROL_BIND").unwrap_or_else(|| "127.0.0.1:0".into()),
            github_api: opt("APIARY_GITHUB_API")
                .unwrap_or_else(|| "https://api.github.com".into())
                .trim_end_matches('/')
                .to_string(),
            github_token: opt("APIARY_GITHUB_TOKEN").unwrap_or_default(),
            sandbox,
            bwrap: opt("APIARY_BWRAP").unwrap_or_else(|| "bwrap".into()),
            orphan_s: seconds("APIARY_ORPHAN_S", 1800)?.max(1),
            egress: get("APIARY_EGRESS_ALLOW").map(|l| crate::egress::Allowlist::parse(&l)),
            egress_upstream: opt("APIARY_EGRESS_UPSTREAM").map(|u| u.trim().to_string()),
            gateway_token: opt("APIARY_GATEWAY_TOKEN").unwrap_or_default(),
            model: opt("APIARY_AGENT_MODEL")
                .unwrap_or_default()
                .trim()
                .to_string(),
            agent_env: match opt("APIARY_AGENT_ENV") {
                Some(json) => serde_json::from_str(&json)
                    .context("APIARY_AGENT_ENV must be a JSON object of strings")?,
                None => Default::default(),
            },
        })
    }

    /// How the agent runs: the project's command (plain output, the gateway in
    /// `$APIARY_GATEWAY_URL` and `$APIARY_GATEWAY_TOKEN`), else its preset. `gateway_url` is
    /// where the agent reaches the gateway.
    pub fn preset(&self, gateway_url: &str, phase: &str) -> Result<crate::presets::Preset> {
        if !self.agent_command.trim().is_empty() {
            return Ok(crate::presets::Preset {
                command: self.agent_command.clone(),
                env: Vec::new(),
                home_files: Vec::new(),
                output: crate::transcript::Format::Plain,
            });
        }
        crate::presets::preset(
            &self.agent,
            &crate::presets::Gateway {
                url: gateway_url.to_string(),
                token: self.gateway_token.clone(),
                model: self.model.clone(),
            },
            phase,
        )
    }

    /// Removes the box's secrets from a child's environment: the variables named in
    /// [`SECRET_VARS`] and any other variable whose value holds one of the tokens.
    pub(crate) fn scrub_env(&self, cmd: &mut tokio::process::Command) {
        for name in SECRET_VARS {
            cmd.env_remove(name);
        }
        // Short values would match by accident; real tokens are long.
        let secrets: Vec<&str> = [
            &self.callback_token,
            &self.control_token,
            &self.github_token,
        ]
        .into_iter()
        .map(String::as_str)
        .filter(|s| s.len() >= 8)
        .collect();
        for (name, value) in std::env::vars_os() {
            let value = value.to_string_lossy();
            if secrets.iter().any(|s| value.contains(s)) {
                cmd.env_remove(name);
            }
        }
    }
}

impl std::fmt::Debug for BoxAgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "<hidden>" };
        f.debug_struct("BoxAgentConfig")
            .field("apiary_url", &self.apiary_url)
            .field("task_id", &self.task_id)
            .field("callback_token", &hidden(&self.callback_token))
            .field("control_token", &hidden(&self.control_token))
            .field("repo_url", &self.repo_url)
            .field("base_branch", &self.base_branch)
            .field("branch", &self.branch)
            .field("agent", &self.agent)
            .field("agent_command", &self.agent_command)
            .field("forge", &self.forge)
            .field("spec_timeout_s", &self.spec_timeout_s)
            .field("impl_timeout_s", &self.impl_timeout_s)
            .field("box_dir", &self.box_dir)
            .field("control_bind", &self.control_bind)
            .field("github_api", &self.github_api)
            .field("github_token", &hidden(&self.github_token))
            .field("sandbox", &self.sandbox)
            .field("bwrap", &self.bwrap)
            .field("orphan_s", &self.orphan_s)
            .field("egress", &self.egress)
            .field("egress_upstream", &self.egress_upstream)
            .field("gateway_token", &hidden(&self.gateway_token))
            .field("model", &self.model)
            .field("agent_env", &self.agent_env)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn boot() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("APIARY_URL", "http://127.0.0.1:7878/"),
            ("APIARY_TASK_ID", "t1"),
            ("APIARY_CALLBACK_TOKEN", "callback-secret-1"),
            ("APIARY_CONTROL_TOKEN", "control-secret-1"),
            ("APIARY_REPO_URL", "/srv/repo.git"),
            ("APIARY_BASE_BRANCH", "main"),
            ("APIARY_BRANCH", "apiary/t1-footer"),
            ("APIARY_AGENT", "codex"),
            ("APIARY_BOX_DIR", "/tmp/box"),
            ("APIARY_IMPL_RUN_TIMEOUT", "90"),
        ])
    }

    fn read(env: &HashMap<&str, &str>) -> Result<BoxAgentConfig> {
        BoxAgentConfig::from_vars(|n| env.get(n).map(|v| v.to_string()))
    }

    #[test]
    fn the_boot_env_reads_with_defaults() {
        let cfg = read(&boot()).unwrap();
        assert_eq!(cfg.apiary_url, "http://127.0.0.1:7878");
        assert_eq!(cfg.forge, "local");
        assert_eq!((cfg.spec_timeout_s, cfg.impl_timeout_s), (1800, 90));
        assert_eq!(cfg.control_bind, "127.0.0.1:0");
        assert_eq!(cfg.github_api, "https://api.github.com");
        assert!(cfg
            .preset("http://g", "spec")
            .unwrap()
            .command
            .starts_with("codex exec"));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn a_missing_or_bad_variable_is_named() {
        for name in ["APIARY_URL", "APIARY_CONTROL_TOKEN", "APIARY_BOX_DIR"] {
            let mut env = boot();
            env.insert(name, "  ");
            let err = read(&env).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        let mut env = boot();
        env.remove("APIARY_AGENT");
        assert!(read(&env).unwrap_err().to_string().contains("APIARY_AGENT"));
        env.insert("APIARY_AGENT_COMMAND", "./agent.sh");
        assert_eq!(
            read(&env)
                .unwrap()
                .preset("http://g", "spec")
                .unwrap()
                .command,
            "./agent.sh"
        );
        env.insert("APIARY_AGENT_ENV", "[1]");
        let err = read(&env).unwrap_err().to_string();
        assert!(err.contains("APIARY_AGENT_ENV"), "{err}");
        env.remove("APIARY_AGENT_ENV");
        env.insert("APIARY_SPEC_RUN_TIMEOUT", "soon");
        let err = read(&env).unwrap_err().to_string();
        assert!(err.contains("APIARY_SPEC_RUN_TIMEOUT"), "{err}");
        let mut env = boot();
        env.insert("APIARY_FORGE", "gitlab");
        assert!(read(&env).unwrap_err().to_string().contains("APIARY_FORGE"));
        let mut env = boot();
        assert_eq!(read(&env).unwrap().sandbox, AgentSandbox::Bwrap);
        env.insert("APIARY_AGENT_SANDBOX", "none");
        assert_eq!(read(&env).unwrap().sandbox, AgentSandbox::None);
        env.insert("APIARY_AGENT_SANDBOX", "off");
        let err = read(&env).unwrap_err().to_string();
        assert!(err.contains("APIARY_AGENT_SANDBOX"), "{err}");
    }
}
