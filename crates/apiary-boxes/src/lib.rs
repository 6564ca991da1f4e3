//! Boxes: where a task's agent runs. The [`BoxProvider`] trait is what the orchestrator sees;
//! [`local::LocalProvider`] makes a box a folder plus a detached `apiary box-agent` process on
//! a loopback port; [`container::ContainerProvider`] a container through the Docker Engine API
//! (Docker or Podman); [`kubernetes::KubernetesProvider`] a Pod; [`remote::RemoteProvider`]
//! speaks the Box Host API to an `apiary boxd`, which [`host::router`] serves over another
//! provider.
//!
//! Invariants: no database access here; a box is found again from what is on disk (local) or
//! what the host says (remote), so a restart of `serve` loses no box; destroying a box that
//! is already gone succeeds.

pub mod container;
pub mod engine;
pub mod host;
pub mod kubernetes;
pub mod local;
pub mod remote;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What to create: a template name (for container boxes, `default` or an image), the boot
/// env (DESIGN §4), labels to find it by, and what it may use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateBox {
    pub template: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Applied where the provider can (containers); `None`: the settings' defaults.
    #[serde(default)]
    pub limits: Option<apiary_core::settings::BoxLimits>,
}

/// Whether a box's process is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxState {
    Running,
    /// The process is gone but its folder is still there (a vanished box).
    Exited,
}

/// A box as its provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxInfo {
    pub id: String,
    pub state: BoxState,
    pub control_url: String,
    pub code_url: Option<String>,
    pub site_url: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    #[error("invalid box request: {0}")]
    Invalid(String),
    #[error("box did not start: {0}")]
    Start(String),
    #[error("box host error: {0}")]
    Host(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// The label every Apiary box carries with its task id.
pub const TASK_LABEL: &str = "apiary.task";

/// The label every Apiary box carries with its installation's id: on a box host shared by
/// several installations, each sweeps only its own orphans.
pub const INSTALLATION_LABEL: &str = "apiary.installation";

/// Creates, finds and destroys boxes.
#[async_trait]
pub trait BoxProvider: Send + Sync + 'static {
    /// Creates and starts a box; returns once its control plane can be reached.
    async fn create(&self, req: CreateBox) -> Result<BoxInfo, BoxError>;
    /// The box, or `None` when it is gone.
    async fn get(&self, id: &str) -> Result<Option<BoxInfo>, BoxError>;
    /// Boxes carrying `label` (`(key, value)`), or all boxes.
    async fn list(&self, label: Option<(&str, &str)>) -> Result<Vec<BoxInfo>, BoxError>;
    /// Stops the box and removes it; succeeds when it is already gone.
    async fn destroy(&self, id: &str) -> Result<(), BoxError>;
    /// The templates boxes can be made from.
    async fn templates(&self) -> Result<Vec<String>, BoxError>;
}

/// A folder of this host a box may have mounted: an existing directory (its real path), not
/// in or holding the data folder (its secrets, database and boxes), nor one of the system's
/// live folders (`/proc`, `/sys`, `/dev`, `/run`: the engine's socket is there).
pub fn mountable_folder(
    path: &std::path::Path,
    data: &std::path::Path,
) -> Result<std::path::PathBuf, String> {
    let real = std::fs::canonicalize(path).map_err(|e| format!("not found ({e})"))?;
    if !real.is_dir() {
        return Err("not a folder".into());
    }
    let data = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    if data.starts_with(&real) || real.starts_with(&data) {
        return Err("it is, holds or is inside Apiary's data folder".into());
    }
    if real == std::path::Path::new("/")
        || ["/proc", "/sys", "/dev", "/run"]
            .iter()
            .any(|p| real.starts_with(p))
    {
        return Err("a system folder".into());
    }
    Ok(real)
}

/// A repository on this host that a box may have writable: an existing folder, never one that
/// holds the data folder, nor anything inside it but under its `repos/` (the default home of
/// local repositories) and `demo/` (`serve --demo`'s), nor the boxes' folder. `None` for a remote URL.
pub fn mountable_repo(
    repo: &str,
    data: &std::path::Path,
    boxes: &std::path::Path,
) -> Result<Option<std::path::PathBuf>, BoxError> {
    if !repo.starts_with('/') {
        return Ok(None);
    }
    let Ok(path) = std::fs::canonicalize(repo) else {
        return Ok(None);
    };
    let refuse = |why: &str| {
        Err(BoxError::Invalid(format!(
            "the repository {repo} {why}; a box may not mount it"
        )))
    };
    if data.starts_with(&path) || path.starts_with(boxes) {
        return refuse("holds Apiary's data folder or its boxes");
    }
    if path.starts_with(data)
        && !path.starts_with(data.join("repos"))
        && !path.starts_with(data.join("demo"))
    {
        return refuse("is inside Apiary's data folder (outside its repos/ and demo/)");
    }
    if !path.is_dir() {
        return refuse("is not a folder");
    }
    Ok(Some(path))
}

/// Keeps box ids to a safe alphabet (they become folder names and URL segments).
pub fn valid_box_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
