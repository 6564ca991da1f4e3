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
            prompts: Prompts::default(),
        }
    }
}
