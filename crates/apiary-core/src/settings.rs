//! The global agent settings of DESIGN §3 and §5 (non-secret part), with their defaults.
//! Persisted as versioned JSON; fields added later fall back to their defaults.

use serde::{Deserialize, Serialize};

/// Budgets of the watchdog, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    pub provisioning_s: u64,
    pub speccing_s: u64,
    pub implementing_s: u64,
    pub idle_s: u64,
    pub failed_grace_s: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            provisioning_s: 600,
            speccing_s: 1800,
            implementing_s: 3600,
            idle_s: 3600,
            failed_grace_s: 600,
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
    pub chat_id: String,
    pub api_base: String,
}

impl Default for TelegramSettings {
    fn default() -> Self {
        TelegramSettings {
            chat_id: String::new(),
            api_base: "https://api.telegram.org".into(),
        }
    }
}

/// The orchestration settings an admin edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Schema version of this JSON document.
    pub version: u32,
    /// The kill switch: off means nothing is provisioned.
    pub agent_orchestration_enabled: bool,
    pub box_provider: String,
    pub box_host_url: String,
    pub callback_base_url: String,
    pub default_template: String,
    pub max_concurrent_boxes: u32,
    pub timeouts: Timeouts,
    pub watchdog_interval_s: u64,
    pub notifications_enabled: bool,
    pub chatty_events: bool,
    pub telegram: TelegramSettings,
    pub prompts: Prompts,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            version: 1,
            agent_orchestration_enabled: false,
            box_provider: "local".into(),
            box_host_url: String::new(),
            callback_base_url: String::new(),
            default_template: "default".into(),
            max_concurrent_boxes: 5,
            timeouts: Timeouts::default(),
            watchdog_interval_s: 60,
            notifications_enabled: true,
            chatty_events: false,
            telegram: TelegramSettings::default(),
            prompts: Prompts::default(),
        }
    }
}

impl Settings {
    /// Checks the values an admin may set; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_concurrent_boxes == 0 || self.max_concurrent_boxes > 1000 {
            return Err(("max_concurrent_boxes", "must be 1 to 1000".into()));
        }
        let t = &self.timeouts;
        for (field, v) in [
            ("timeouts.provisioning_s", t.provisioning_s),
            ("timeouts.speccing_s", t.speccing_s),
            ("timeouts.implementing_s", t.implementing_s),
            ("timeouts.idle_s", t.idle_s),
            ("timeouts.failed_grace_s", t.failed_grace_s),
            ("watchdog_interval_s", self.watchdog_interval_s),
        ] {
            if v == 0 || v > 30 * 24 * 3600 {
                return Err((field, "must be 1 second to 30 days".into()));
            }
        }
        if self.box_provider != "local" && self.box_provider != "remote" {
            return Err(("box_provider", "must be local or remote".into()));
        }
        Ok(())
    }
}
