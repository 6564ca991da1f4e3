//! The local provider: a box is a folder under the data dir and an `apiary box-agent` process
//! in its own process group, detached so it outlives a restart of `serve`. The folder's
//! `state.json` records the process, so `get` after a restart tells running from gone.
//! With bubblewrap the box sees the whole system read-only and only its own folder (and a
//! local repository it must push to) writable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{valid_box_id, BoxError, BoxInfo, BoxProvider, BoxState, CreateBox};

/// How boxes are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// bubblewrap when it is installed and works here, else none (said once in the log).
    Auto,
    /// bubblewrap, or refuse to create boxes.
    Bwrap,
    /// A plain process.
    None,
}

impl std::str::FromStr for Sandbox {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Sandbox::Auto),
            "bwrap" => Ok(Sandbox::Bwrap),
            "none" => Ok(Sandbox::None),
            other => Err(format!(
                "--sandbox must be auto, bwrap or none, not {other:?}"
            )),
        }
    }
}

/// What the folder remembers about its box.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    id: String,
    template: String,
    labels: BTreeMap<String, String>,
    pid: Option<u32>,
    port: Option<u16>,
}

/// What the box agent writes once its control plane listens.
#[derive(Debug, Deserialize)]
struct Control {
    port: u16,
}

/// Boxes as local processes.
pub struct LocalProvider {
    root: PathBuf,
    agent_exe: PathBuf,
    sandbox: Sandbox,
    start_timeout: Duration,
}

/// Whether bubblewrap can run here (probed once).
fn bwrap_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        std::process::Command::new("bwrap")
            .args([
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "true",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

fn alive(pid: u32) -> bool {
    // Signal 0 checks existence; boxes are reaped by their waiter task (or by init after a
    // restart), so a dead box is not mistaken for a zombie that still "exists".
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

impl LocalProvider {
    /// Boxes live under `root`; `agent_exe` is the `apiary` binary (run as `box-agent`).
    pub fn new(root: PathBuf, agent_exe: PathBuf, sandbox: Sandbox) -> Result<Self, BoxError> {
        std::fs::create_dir_all(&root)?;
        let sandbox = match sandbox {
            Sandbox::Auto if bwrap_works() => Sandbox::Bwrap,
            Sandbox::Auto => {
                tracing::warn!(
                    "bubblewrap (bwrap) is not available here: boxes run without a sandbox"
                );
                Sandbox::None
            }
            Sandbox::Bwrap if !bwrap_works() => {
                return Err(BoxError::Invalid(
                    "--sandbox bwrap, but bwrap does not run here".into(),
                ))
            }
            other => other,
        };
        Ok(LocalProvider {
            root,
            agent_exe,
            sandbox,
            start_timeout: Duration::from_secs(20),
        })
    }

    /// The isolation actually in use.
    pub fn sandbox(&self) -> Sandbox {
        self.sandbox
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn read_state(&self, id: &str) -> Option<State> {
        let text = std::fs::read_to_string(self.dir(id).join("state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn write_state(&self, state: &State) -> Result<(), BoxError> {
        let dir = self.dir(&state.id);
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(state).expect("state serialises"))?;
        std::fs::rename(tmp, dir.join("state.json"))?;
        Ok(())
    }

    fn info(&self, state: &State) -> BoxInfo {
        let running = state.pid.is_some_and(alive);
        BoxInfo {
            id: state.id.clone(),
            state: if running {
                BoxState::Running
            } else {
                BoxState::Exited
            },
            control_url: state
                .port
                .map(|p| format!("http://127.0.0.1:{p}"))
                .unwrap_or_default(),
            code_url: None,
            site_url: None,
            labels: state.labels.clone(),
        }
    }

    fn command(&self, dir: &Path, env: &BTreeMap<String, String>) -> tokio::process::Command {
        let mut cmd = match self.sandbox {
            Sandbox::Bwrap => {
                let mut c = tokio::process::Command::new("bwrap");
                // The system (the toolchain included) read-only ...
                c.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
                // ... but no other box, and none of Apiary's own secrets or database ...
                let root = self.root.display().to_string();
                c.args(["--tmpfs", &root]);
                if let Some(data) = self.root.parent() {
                    for name in [
                        "secret.key",
                        "apiary.db",
                        "apiary.db-wal",
                        "apiary.db-shm",
                        "host.key",
                    ] {
                        let f = data.join(name);
                        if f.exists() {
                            let f = f.display().to_string();
                            c.args(["--ro-bind", "/dev/null", &f]);
                        }
                    }
                }
                // ... and only its own folder writable, plus a repository on this machine it pushes to.
                let d = dir.display().to_string();
                c.args(["--bind", &d, &d]);
                if let Some(repo) = env.get("APIARY_REPO_URL").filter(|r| r.starts_with('/')) {
                    if Path::new(repo).exists() {
                        c.args(["--bind", repo, repo]);
                    }
                }
                c.arg("--").arg(&self.agent_exe);
                c
            }
            _ => tokio::process::Command::new(&self.agent_exe),
        };
        cmd.arg("box-agent")
            .current_dir(dir)
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .env("HOME", dir)
            .env("TMPDIR", dir.join("tmp"))
            .env("APIARY_BOX_DIR", dir)
            .envs(env)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        cmd
    }

    fn log_tail(dir: &Path) -> String {
        let text = std::fs::read_to_string(dir.join("box.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

#[async_trait]
impl BoxProvider for LocalProvider {
    async fn create(&self, req: CreateBox) -> Result<BoxInfo, BoxError> {
        let id = format!("box-{}", &uuid::Uuid::now_v7().simple().to_string()[8..]);
        let dir = self.dir(&id);
        std::fs::create_dir_all(dir.join("tmp"))?;
        let mut state = State {
            id: id.clone(),
            template: req.template.clone(),
            labels: req.labels.clone(),
            pid: None,
            port: None,
        };
        self.write_state(&state)?;
        let log = std::fs::File::create(dir.join("box.log"))?;
        let mut child = self
            .command(&dir, &req.env)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                BoxError::Start(format!("cannot run {}: {e}", self.agent_exe.display()))
            })?;
        let pid = child.id().unwrap_or(0);
        state.pid = Some(pid);
        self.write_state(&state)?;
        // Reap the process when it ends, so a dead box never lingers as a zombie.
        let mut waiter = tokio::spawn(async move { child.wait().await });
        let started = Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(dir.join("control.json")) {
                if let Ok(c) = serde_json::from_str::<Control>(&text) {
                    break c.port;
                }
            }
            if waiter.is_finished() {
                let tail = Self::log_tail(&dir);
                let _ = (&mut waiter).await;
                return Err(BoxError::Start(format!(
                    "box agent exited at start: {tail}"
                )));
            }
            if started.elapsed() > self.start_timeout {
                let _ = self.destroy(&id).await;
                return Err(BoxError::Start(format!(
                    "box agent did not listen within {} s",
                    self.start_timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        state.port = Some(port);
        self.write_state(&state)?;
        tracing::info!(box_id = %id, pid, port, "box started");
        Ok(self.info(&state))
    }

    async fn get(&self, id: &str) -> Result<Option<BoxInfo>, BoxError> {
        if !valid_box_id(id) {
            return Ok(None);
        }
        Ok(self.read_state(id).map(|s| self.info(&s)))
    }

    async fn list(&self, label: Option<(&str, &str)>) -> Result<Vec<BoxInfo>, BoxError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let name = entry?.file_name().to_string_lossy().to_string();
            if let Some(state) = self.read_state(&name) {
                if label.is_none_or(|(k, v)| state.labels.get(k).map(String::as_str) == Some(v)) {
                    out.push(self.info(&state));
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn destroy(&self, id: &str) -> Result<(), BoxError> {
        if !valid_box_id(id) {
            return Err(BoxError::Invalid(format!("bad box id {id:?}")));
        }
        let dir = self.dir(id);
        if let Some(pid) = self.read_state(id).and_then(|s| s.pid) {
            // The box agent leads its own process group: end the whole group.
            unsafe { libc::kill(-(pid as i32), libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while alive(pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn templates(&self) -> Result<Vec<String>, BoxError> {
        Ok(vec!["default".to_string()])
    }
}
