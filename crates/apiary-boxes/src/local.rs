//! The local provider: a box is a folder under the data dir and an `apiary box-agent` process
//! in its own process group, detached so it outlives a restart of `serve`.
//!
//! Layout: `<root>/<id>/state.json` (the provider's record of the process: pid and start
//! time), `<root>/<id>/box.log` (the box agent's output), and `<root>/<id>/box/`, the box's own
//! folder (`APIARY_BOX_DIR`). Only `box/` is reachable from inside the box, so nothing the box
//! writes decides what the provider signals; and a pid is signalled only while its start time
//! is still the recorded one (never a reused pid, never pid 1 or a group that is not its own).
//!
//! With bubblewrap the box sees the whole system read-only, its own PID namespace (none of
//! the host's processes, so no `/proc/<serve>/environ`), none of the data folder but its own
//! `box/` (the data folder is covered whole), and writable only `box/` and a local repository
//! it must push to — which may never be a folder that holds the data folder. Without
//! bubblewrap boxes are refused, unless the admin chose `--sandbox none`.

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
    /// bubblewrap when it is installed and works here; else boxes are refused with an error
    /// that says what to do (install it, or choose `none`). Never an unsandboxed box by default.
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
    /// The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), so a
    /// reused pid is never taken for the box.
    #[serde(default)]
    started: Option<u64>,
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
    /// The data folder (the folder holding `root`), covered whole inside a box.
    data: PathBuf,
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
                "--unshare-pid",
                "true",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// When the process `pid` started (clock ticks since boot), or `None` when there is none.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the box's process is the one recorded, and alive. Boxes are reaped by their
/// waiter task (or by init after a restart), so a dead box is no zombie that still "exists".
fn alive(state: &State, dir: &Path) -> bool {
    match (state.pid, state.started) {
        (Some(pid), Some(started)) if pid > 1 => start_time(pid) == Some(started),
        // A box made before start times were recorded (its folder was its own box folder):
        // the process counts as this box's only if its environment names that folder.
        (Some(pid), None) if pid > 1 => {
            let want = format!("APIARY_BOX_DIR={}", dir.display());
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
                .unwrap_or(false)
        }
        _ => false,
    }
}

impl LocalProvider {
    /// Boxes live under `root`; `agent_exe` is the `apiary` binary (run as `box-agent`).
    /// The folder holding `root` is the data folder, hidden whole from every box.
    pub fn new(root: PathBuf, agent_exe: PathBuf, sandbox: Sandbox) -> Result<Self, BoxError> {
        std::fs::create_dir_all(&root)?;
        let root = std::fs::canonicalize(&root)?;
        let data = match root.parent() {
            Some(p) if p != Path::new("/") => p.to_path_buf(),
            _ => root.clone(),
        };
        let sandbox = match sandbox {
            Sandbox::Auto if bwrap_works() => Sandbox::Bwrap,
            Sandbox::Auto => {
                tracing::error!(
                    "bubblewrap (bwrap) does not run here: boxes will be refused until it is \
                     installed, or Apiary is started with --sandbox none"
                );
                Sandbox::Auto
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
            data,
            agent_exe,
            sandbox,
            start_timeout: Duration::from_secs(20),
        })
    }

    /// The isolation actually in use (`Auto` when bubblewrap does not run: boxes are refused).
    pub fn sandbox(&self) -> Sandbox {
        self.sandbox
    }

    /// The provider's folder for a box (state and log), out of the box's reach.
    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The box's own folder, the only part of the data folder the box can see.
    fn box_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join("box")
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
        let running = alive(state, &self.dir(&state.id));
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

    fn command(
        &self,
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<tokio::process::Command, BoxError> {
        let mut cmd = match self.sandbox {
            Sandbox::Bwrap => {
                let mut c = tokio::process::Command::new("bwrap");
                // The system (the toolchain included) read-only, in a PID namespace of its own ...
                c.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
                c.arg("--unshare-pid");
                // ... none of the data folder (Apiary's secrets, database, other boxes) ...
                let data = self.data.display().to_string();
                c.args(["--tmpfs", &data]);
                // The demo project (`serve --demo`) keeps its script and repository there; it
                // holds nothing secret, so boxes may read it.
                let demo = self.data.join("demo");
                if demo.is_dir() {
                    let demo = demo.display().to_string();
                    c.args(["--ro-bind", &demo, &demo]);
                }
                // ... but its own folder writable, plus a repository on this machine it pushes
                // to (checked above never to hold the data folder, so it re-exposes nothing).
                let d = dir.display().to_string();
                c.args(["--bind", &d, &d]);
                if let Some(repo) = env.get("APIARY_REPO_URL") {
                    if let Some(repo) = crate::mountable_repo(repo, &self.data, &self.root)? {
                        let r = repo.display().to_string();
                        c.args(["--bind", &r, &r]);
                    }
                }
                c.args(["--chdir", &d]);
                c.arg("--").arg(&self.agent_exe);
                c
            }
            Sandbox::None => tokio::process::Command::new(&self.agent_exe),
            Sandbox::Auto => {
                return Err(BoxError::Start(
                    "no sandbox: bubblewrap (bwrap) does not run on this host; install it \
                     (Debian: apt install bubblewrap) or start Apiary with --sandbox none"
                        .into(),
                ))
            }
        };
        let agent_sandbox = if self.sandbox == Sandbox::None {
            "none"
        } else {
            "bwrap"
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
            .env("APIARY_AGENT_SANDBOX", agent_sandbox)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        Ok(cmd)
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
        let own = self.box_dir(&id);
        let mut cmd = self.command(&own, &req.env)?;
        std::fs::create_dir_all(own.join("tmp"))?;
        let mut state = State {
            id: id.clone(),
            template: req.template.clone(),
            labels: req.labels.clone(),
            pid: None,
            started: None,
            port: None,
        };
        self.write_state(&state)?;
        let log = std::fs::File::create(dir.join("box.log"))?;
        let mut child = cmd
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                BoxError::Start(format!("cannot run {}: {e}", self.agent_exe.display()))
            })?;
        let pid = child.id().unwrap_or(0);
        state.pid = Some(pid);
        state.started = start_time(pid);
        self.write_state(&state)?;
        // Reap the process when it ends, so a dead box never lingers as a zombie.
        let mut waiter = tokio::spawn(async move { child.wait().await });
        let started = Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(own.join("control.json")) {
                if let Ok(c) = serde_json::from_str::<Control>(&text) {
                    break c.port;
                }
            }
            if waiter.is_finished() {
                let tail = Self::log_tail(&dir);
                let _ = (&mut waiter).await;
                // Nothing of a box that never started is left behind.
                let _ = self.destroy(&id).await;
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
        // Only the recorded process, still the same one, leading its own group.
        if let Some(state) = self.read_state(id).filter(|s| alive(s, &dir)) {
            let pid = state.pid.expect("alive has a pid") as i32;
            // SAFETY: getpgid(2) and kill(2) have no memory effects.
            if unsafe { libc::getpgid(pid) } == pid {
                unsafe { libc::kill(-pid, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(3);
                while alive(&state, &dir) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
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
