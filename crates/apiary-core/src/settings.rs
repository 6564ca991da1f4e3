//! The global agent settings of DESIGN §3 and §5 (non-secret part), with their defaults.
//! Persisted as versioned JSON; fields added later fall back to their defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gateway::{
    check_agent_env, check_prices, default_prices, is_model_name, Price, Provider, DEFAULT_MODELS,
};

/// Where a box's agent may connect by default: the common package registries. The model
/// providers are not here: agents reach them through Apiary's gateway, which holds the keys.
pub const DEFAULT_EGRESS_ALLOW: [&str; 10] = [
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "pypi.org",
    "files.pythonhosted.org",
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "repo.maven.apache.org",
];

/// Budgets of the watchdog, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    pub provisioning_s: u64,
    pub speccing_s: u64,
    pub implementing_s: u64,
    pub idle_s: u64,
    pub failed_grace_s: u64,
    /// A box that cannot reach its Apiary this long (or a `boxd` box its owner has not
    /// listed or touched this long) stops its agent, cleans its folder and exits.
    pub orphan_s: u64,
    /// An agent that makes no model request and writes no log line this long, in a phase
    /// where it works, is stopped (`failed`, "agent stalled").
    pub stall_s: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            provisioning_s: 600,
            speccing_s: 1800,
            implementing_s: 3600,
            idle_s: 3600,
            failed_grace_s: 600,
            orphan_s: 1800,
            stall_s: 900,
        }
    }
}

/// What one box may use. Container boxes get them as the engine's limits; local boxes share
/// the host and take none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct BoxLimits {
    /// Memory, in MiB.
    pub memory_mb: u64,
    /// CPU time, in thousandths of a core (1000 = one core).
    pub cpu_millis: u64,
    /// Processes and threads.
    pub pids: u64,
}

impl Default for BoxLimits {
    fn default() -> Self {
        BoxLimits {
            memory_mb: 4096,
            cpu_millis: 2000,
            pids: 1024,
        }
    }
}

/// Global prompt templates; blank means "use the box's built-in default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prompts {
    pub spec: String,
    pub implement: String,
    pub changes: String,
    pub revise: String,
}

/// Telegram channel settings (the bot token is a secret, stored apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelegramSettings {
    pub enabled: bool,
    pub chat_id: String,
    pub api_base: String,
    /// How Apiary hears button presses and replies: `off` (notifications only), `webhook`
    /// (Telegram calls Apiary's public URL) or `polling` (Apiary asks with `getUpdates`).
    pub updates: String,
    /// The bot's username, for the `t.me/<bot>?start=<code>` link that links a user.
    pub bot_username: String,
}

impl Default for TelegramSettings {
    fn default() -> Self {
        TelegramSettings {
            enabled: false,
            chat_id: String::new(),
            api_base: "https://api.telegram.org".into(),
            updates: "off".into(),
            bot_username: String::new(),
        }
    }
}

impl TelegramSettings {
    /// Apiary hears Telegram's updates, so buttons and replies do something.
    pub fn hears_updates(&self) -> bool {
        self.enabled && self.updates != "off"
    }
}

/// Slack channel settings (the bot token and the signing secret are secrets, stored apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlackSettings {
    pub enabled: bool,
    /// The channel's id (`C0123456789`) the notifications go to.
    pub channel: String,
    pub api_base: String,
}

impl Default for SlackSettings {
    fn default() -> Self {
        SlackSettings {
            enabled: false,
            channel: String::new(),
            api_base: "https://slack.com/api".into(),
        }
    }
}

/// Email channel settings (the SMTP password is a secret, stored apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailSettings {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: String,
    pub username: String,
    pub from: String,
    /// Fixed recipients.
    pub to: Vec<String>,
    /// Also send to the task's reviewers (the project's members with write access).
    pub to_reviewers: bool,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            enabled: false,
            host: String::new(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            from: String::new(),
            to: Vec::new(),
            to_reviewers: false,
        }
    }
}

/// One generic webhook; its signing secret is stored apart under its id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookSettings {
    pub id: String,
    pub url: String,
    pub enabled: bool,
}

/// The default cap on a task's stored log: 50 MB.
pub const DEFAULT_TASK_LOG_BYTES: u64 = 50 * 1024 * 1024;

/// The model gateway (DESIGN §9): where each provider is reached, the model of each preset,
/// the agent's plain environment, prices and budgets. Provider keys are secrets, stored apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewaySettings {
    /// Upstream base of each provider by name (`anthropic`, `openai`, `gemini`); blank or
    /// absent means the provider's public API. An OpenAI-compatible server goes under `openai`.
    pub base_urls: BTreeMap<String, String>,
    /// The model of each preset (`claude-code`, `codex`, …); absent: [`DEFAULT_MODELS`].
    pub models: BTreeMap<String, String>,
    /// Plain (non-secret) environment variables for every agent, e.g. `NODE_OPTIONS`.
    pub agent_env: BTreeMap<String, String>,
    pub prices: Vec<Price>,
    /// Most a task may spend, in US dollars (0: no limit); a project may set its own.
    pub task_budget_usd: f64,
    /// Most a project may spend in a calendar month (UTC), in US dollars (0: no limit).
    pub project_month_budget_usd: f64,
    /// The same model request this many times in a row stops the agent (0: never).
    pub stall_repeats: u32,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            base_urls: BTreeMap::new(),
            models: BTreeMap::new(),
            agent_env: BTreeMap::new(),
            prices: default_prices(),
            task_budget_usd: 10.0,
            project_month_budget_usd: 0.0,
            stall_repeats: 5,
        }
    }
}

impl GatewaySettings {
    /// The upstream base of a provider, without a trailing slash.
    pub fn base_url(&self, p: Provider) -> String {
        self.base_urls
            .get(p.name())
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .unwrap_or(p.default_base())
            .trim_end_matches('/')
            .to_string()
    }

    /// The model of a preset: the admin's, else the built-in default.
    pub fn model(&self, preset: &str) -> String {
        self.models
            .get(preset)
            .map(|m| m.trim())
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .or_else(|| {
                DEFAULT_MODELS
                    .iter()
                    .find(|(p, _)| *p == preset)
                    .map(|(_, m)| m.to_string())
            })
            .unwrap_or_default()
    }

    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(bad) = self
            .base_urls
            .keys()
            .find(|k| Provider::from_name(k).is_none())
        {
            return Err((
                "gateway.base_urls",
                format!("{bad:?} is not a provider (anthropic, openai, gemini)"),
            ));
        }
        if let Some(bad) = self.base_urls.values().find(|u| {
            !(u.is_empty() || u.starts_with("http://") || u.starts_with("https://"))
                || u.len() > 2000
        }) {
            return Err((
                "gateway.base_urls",
                format!("{bad:?} is not an http(s) URL"),
            ));
        }
        if self.models.len() > 20
            || self
                .models
                .iter()
                .any(|(k, v)| k.len() > 50 || !is_model_name(v))
        {
            return Err((
                "gateway.models",
                "a preset name and a model name (letters, digits and . _ - : / @; at most 20)"
                    .into(),
            ));
        }
        check_agent_env(&self.agent_env).map_err(|e| ("gateway.agent_env", e))?;
        check_prices(&self.prices).map_err(|e| ("gateway.prices", e))?;
        for (field, v) in [
            ("gateway.task_budget_usd", self.task_budget_usd),
            (
                "gateway.project_month_budget_usd",
                self.project_month_budget_usd,
            ),
        ] {
            if !v.is_finite() || !(0.0..=1_000_000.0).contains(&v) {
                return Err((field, "must be 0 (no limit) to 1000000 dollars".into()));
            }
        }
        if self.stall_repeats > 1000 {
            return Err(("gateway.stall_repeats", "must be 0 (off) to 1000".into()));
        }
        Ok(())
    }
}

/// The orchestration settings an admin edits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Schema version of this JSON document.
    pub version: u32,
    /// The kill switch: off means nothing is provisioned.
    pub agent_orchestration_enabled: bool,
    pub box_provider: String,
    pub box_host_url: String,
    pub callback_base_url: String,
    /// Where people reach Apiary (links in notifications); blank falls back to the callback
    /// base (itself the bound address when blank).
    pub public_url: String,
    /// The GitHub REST API base the `github` forge uses.
    pub github_api_base: String,
    /// The handle people mention in a PR comment to start a round (`@apiary`).
    pub github_handle: String,
    /// The GitHub App Apiary acts as for projects without a token of their own (its private
    /// key is a secret, stored apart); blank: no app.
    pub github_app_id: String,
    /// Automatic fix rounds a task gets for failing checks before a human is asked.
    pub ci_fix_rounds: u32,
    /// Folders (absolute paths) under which a project's local `repo_url` may point, besides
    /// the data folder's `repos/`; only admins set a local repository.
    pub local_repo_roots: Vec<String>,
    /// Hosts (`host`, `host:port`, `*.domain`) a box's agent may reach through the egress
    /// proxy, besides Apiary's own URL and the project's git host, which are always allowed.
    pub egress_allow: Vec<String>,
    pub default_template: String,
    pub max_concurrent_boxes: u32,
    /// What each box may use (container boxes).
    pub box_limits: BoxLimits,
    /// Most bytes of agent output kept per task; past it one marker line is stored and
    /// further lines are dropped.
    pub task_log_bytes: u64,
    pub timeouts: Timeouts,
    pub watchdog_interval_s: u64,
    pub notifications_enabled: bool,
    pub chatty_events: bool,
    /// The log channel (a line in Apiary's log per notification).
    pub log_notifications: bool,
    pub telegram: TelegramSettings,
    pub slack: SlackSettings,
    pub email: EmailSettings,
    pub webhooks: Vec<WebhookSettings>,
    pub prompts: Prompts,
    pub gateway: GatewaySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            version: 1,
            agent_orchestration_enabled: false,
            box_provider: "local".into(),
            box_host_url: String::new(),
            callback_base_url: String::new(),
            public_url: String::new(),
            github_api_base: "https://api.github.com".into(),
            github_handle: "apiary".into(),
            github_app_id: String::new(),
            ci_fix_rounds: 2,
            local_repo_roots: Vec::new(),
            egress_allow: DEFAULT_EGRESS_ALLOW.iter().map(|h| h.to_string()).collect(),
            default_template: "default".into(),
            max_concurrent_boxes: 5,
            box_limits: BoxLimits::default(),
            task_log_bytes: DEFAULT_TASK_LOG_BYTES,
            timeouts: Timeouts::default(),
            watchdog_interval_s: 60,
            notifications_enabled: true,
            chatty_events: false,
            log_notifications: true,
            telegram: TelegramSettings::default(),
            slack: SlackSettings::default(),
            email: EmailSettings::default(),
            webhooks: Vec::new(),
            prompts: Prompts::default(),
            gateway: GatewaySettings::default(),
        }
    }
}

impl Settings {
    /// Checks the values an admin may set; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_concurrent_boxes == 0 || self.max_concurrent_boxes > 1000 {
            return Err(("max_concurrent_boxes", "must be 1 to 1000".into()));
        }
        let l = &self.box_limits;
        if !(64..=1 << 22).contains(&l.memory_mb) {
            return Err(("box_limits.memory_mb", "must be 64 MiB to 4 TiB".into()));
        }
        if !(100..=1_024_000).contains(&l.cpu_millis) {
            return Err((
                "box_limits.cpu_millis",
                "must be 100 (a tenth of a core) to 1024000".into(),
            ));
        }
        if !(64..=4_194_304).contains(&l.pids) {
            return Err(("box_limits.pids", "must be 64 to 4194304".into()));
        }
        if self.github_handle.is_empty()
            || self.github_handle.len() > 39
            || !self
                .github_handle
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err((
                "github_handle",
                "must be 1 to 39 letters, digits or dashes (a GitHub login)".into(),
            ));
        }
        if self.github_app_id.len() > 20 || !self.github_app_id.chars().all(|c| c.is_ascii_digit())
        {
            return Err((
                "github_app_id",
                "must be the App's numeric id (or blank for none)".into(),
            ));
        }
        if self.ci_fix_rounds > 20 {
            return Err(("ci_fix_rounds", "must be 0 (off) to 20".into()));
        }
        if !(1024..=1 << 40).contains(&self.task_log_bytes) {
            return Err(("task_log_bytes", "must be 1 KiB to 1 TiB".into()));
        }
        let t = &self.timeouts;
        for (field, v) in [
            ("timeouts.provisioning_s", t.provisioning_s),
            ("timeouts.speccing_s", t.speccing_s),
            ("timeouts.implementing_s", t.implementing_s),
            ("timeouts.idle_s", t.idle_s),
            ("timeouts.failed_grace_s", t.failed_grace_s),
            ("timeouts.orphan_s", t.orphan_s),
            ("timeouts.stall_s", t.stall_s),
            ("watchdog_interval_s", self.watchdog_interval_s),
        ] {
            if v == 0 || v > 30 * 24 * 3600 {
                return Err((field, "must be 1 second to 30 days".into()));
            }
        }
        if self.box_provider != "local" && self.box_provider != "remote" {
            return Err(("box_provider", "must be local or remote".into()));
        }
        if !["off", "webhook", "polling"].contains(&self.telegram.updates.as_str()) {
            return Err(("telegram.updates", "must be off, webhook or polling".into()));
        }
        if self.telegram.bot_username.len() > 32
            || !self
                .telegram
                .bot_username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err((
                "telegram.bot_username",
                "must be the bot's username: up to 32 letters, digits or underscores, without @"
                    .into(),
            ));
        }
        if self.slack.channel.len() > 80
            || !self
                .slack
                .channel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            return Err((
                "slack.channel",
                "must be a channel id such as C0123456789".into(),
            ));
        }
        if self.slack.enabled && self.slack.channel.is_empty() {
            return Err((
                "slack.channel",
                "an enabled Slack channel needs its channel id".into(),
            ));
        }
        if !["none", "starttls", "tls"].contains(&self.email.tls.as_str()) {
            return Err(("email.tls", "must be none, starttls or tls".into()));
        }
        if self.email.enabled && (self.email.host.is_empty() || !self.email.from.contains('@')) {
            return Err((
                "email",
                "an enabled email channel needs host and from".into(),
            ));
        }
        if let Some(bad) = self
            .email
            .to
            .iter()
            .find(|a| !a.contains('@') || a.len() > 254)
        {
            return Err(("email.to", format!("{bad:?} is not an email address")));
        }
        if self.egress_allow.len() > 200 {
            return Err(("egress_allow", "at most 200 hosts".into()));
        }
        if let Some(bad) = self.egress_allow.iter().find(|h| {
            let name = h.strip_prefix("*.").unwrap_or(h);
            name.is_empty()
                || h.len() > 260
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        }) {
            return Err((
                "egress_allow",
                format!("{bad:?} is not a host, host:port or *.domain"),
            ));
        }
        if self.local_repo_roots.len() > 20 {
            return Err(("local_repo_roots", "at most 20 folders".into()));
        }
        if let Some(bad) = self
            .local_repo_roots
            .iter()
            .find(|r| !r.starts_with('/') || r.len() > 4096 || r.split('/').any(|c| c == ".."))
        {
            return Err((
                "local_repo_roots",
                format!("{bad:?} is not an absolute path without `..`"),
            ));
        }
        if self.webhooks.len() > 20 {
            return Err(("webhooks", "at most 20 webhooks".into()));
        }
        for (field, url) in [
            ("telegram.api_base", &self.telegram.api_base),
            ("slack.api_base", &self.slack.api_base),
            ("box_host_url", &self.box_host_url),
            ("callback_base_url", &self.callback_base_url),
            ("public_url", &self.public_url),
        ]
        .into_iter()
        .chain(self.webhooks.iter().map(|w| ("webhooks.url", &w.url)))
        {
            if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://"))
                || url.len() > 2000
            {
                return Err((field, "must be an http(s) URL".into()));
            }
        }
        self.gateway.validate()?;
        for (field, template) in [
            ("prompts.spec", &self.prompts.spec),
            ("prompts.implement", &self.prompts.implement),
            ("prompts.changes", &self.prompts.changes),
            ("prompts.revise", &self.prompts.revise),
        ] {
            crate::prompts::check_template(template).map_err(|e| (field, e))?;
        }
        Ok(())
    }
}
