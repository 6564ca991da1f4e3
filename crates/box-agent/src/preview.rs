//! The site preview: the project's preview command, run in the workspace after each implement
//! or changes round (stopped while the next round works, restarted after it), under the
//! agent's sandbox rules, its output in the task's log with a `[preview]` prefix. The control
//! plane's `/site/…` forwards viewers to it, WebSockets included (DESIGN §3).
//!
//! It listens on `127.0.0.1:$PORT` inside the agent's network namespace; the relay there
//! serves a socket in the box's folder that the box agent connects to. Without a sandbox it
//! listens on the box's own loopback.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{watch, Mutex};

use crate::config::{AgentSandbox, BoxAgentConfig};
use crate::logs::{LogStream, MAX_LINE};
use crate::runner::{self, Inbound};

/// How long the preview has to answer its readiness path after it starts.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How long a viewer's request waits for a preview that is starting.
const VIEWER_WAITS: Duration = Duration::from_secs(20);
/// How long the preview has to answer a request's head (a dev server compiles on demand).
const HEAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The project's preview setting, from the task's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewSpec {
    /// A shell command that serves the site on `$PORT` (e.g. `npm run dev -- --port $PORT`).
    pub command: String,
    /// The path (under the site's base) that answers once the site is up, e.g. `/`.
    pub ready_path: String,
    /// Where viewers see the site on the site origin, `/tasks/<id>/site/`: the preview is told
    /// this base (`$APIARY_SITE_BASE`) and gets requests with their full path.
    pub base: String,
    /// The whole link (`$APIARY_SITE_URL`).
    pub url: String,
}

impl PreviewSpec {
    /// The preview of the task's project, or `None` when it sets none.
    pub fn from_view(view: &Value, task_id: &str) -> Option<Self> {
        let agent = &view["project"]["agent"];
        let command = agent["preview_command"].as_str()?.trim();
        if command.is_empty() {
            return None;
        }
        let ready = agent["preview_ready_path"].as_str().unwrap_or("/").trim();
        let url = view["task"]["agent"]["site_url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // The site origin serves every preview at this path, whatever prefix Apiary's own
        // URL has.
        let base = format!("/tasks/{task_id}/site/");
        Some(PreviewSpec {
            command: command.to_string(),
            ready_path: ready.trim_start_matches('/').to_string(),
            base,
            url,
        })
    }
}

/// Where the preview is, seen from the box agent.
#[derive(Debug, Clone)]
enum Target {
    /// The relay's socket in the box's folder (a sandboxed preview).
    Unix(PathBuf),
    /// The box's own loopback (no sandbox).
    Tcp(u16),
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Connects to the socket at `path` only if it is one: the folder is the sandbox's to write,
/// so a link it put there (to another socket the box agent could reach) is refused. The file
/// is pinned first (`O_PATH | O_NOFOLLOW`), checked, then connected to through its descriptor.
async fn connect_socket(path: &Path) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let pinned = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)?;
    if !pinned.metadata()?.file_type().is_socket() {
        return Err(std::io::Error::other(
            "the preview's socket is not a socket (a link?): refused",
        ));
    }
    tokio::net::UnixStream::connect(format!("/proc/self/fd/{}", pinned.as_raw_fd())).await
}

impl Target {
    async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match self {
            Target::Unix(path) => Box::new(connect_socket(path).await?),
            Target::Tcp(port) => {
                Box::new(tokio::net::TcpStream::connect(("127.0.0.1", *port)).await?)
            }
        })
    }
}

/// What the preview is doing, as the viewer is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// None runs: the project sets none, or the box is between rounds.
    Off,
    Starting,
    Ready,
    /// It exited or never answered; why.
    Down(String),
}

struct Running {
    group: i32,
    port: u16,
    target: Target,
    spec: PreviewSpec,
    supervisor: tokio::task::JoinHandle<()>,
}

/// The box's preview: at most one runs; starting and stopping hold one lock throughout.
pub struct Preview {
    running: Mutex<Option<Running>>,
    state: watch::Sender<State>,
    /// Which start the state belongs to: a supervisor of an earlier one never writes it.
    generation: Arc<AtomicU64>,
}

impl Default for Preview {
    fn default() -> Self {
        Preview {
            running: Mutex::new(None),
            state: watch::channel(State::Off).0,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Kills the running preview's process group and waits for its supervisor (aborted if it
/// does not end in time).
async fn halt(running: &mut Option<Running>, logs: &LogStream) {
    if let Some(mut r) = running.take() {
        if r.group > 0 {
            // SAFETY: kill(2) has no memory effects; a negative pid names a process group.
            unsafe { libc::kill(-r.group, libc::SIGKILL) };
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut r.supervisor)
            .await
            .is_err()
        {
            r.supervisor.abort();
        }
        logs.line("[preview] stopped");
    }
}

/// A free port on the loopback (in a sandbox's own namespace any port is free, but the same
/// pick serves both).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Streams a preview's output to the task's log, each line prefixed.
fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    logs: LogStream,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    logs.line(format!("[preview] {}", text.trim_end_matches(['\n', '\r'])));
                }
            }
        }
    })
}

use tokio::io::AsyncReadExt;

impl Preview {
    /// What it is doing now.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Stops the running preview, if any: its whole process group, waited for.
    pub async fn stop(&self, logs: &LogStream) {
        let mut running = self.running.lock().await;
        self.generation.fetch_add(1, Ordering::SeqCst);
        halt(&mut running, logs).await;
        self.state.send_replace(State::Off);
    }

    /// (Re)starts the preview for `spec` in `workspace`; it becomes ready in the background
    /// (the log says when, or why not). A preview that cannot start at all is said in the log.
    pub async fn start(
        &self,
        cfg: &BoxAgentConfig,
        spec: PreviewSpec,
        workspace: &Path,
        logs: &LogStream,
    ) {
        let mut running = self.running.lock().await;
        // The old preview's supervisor has no say from here on.
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        halt(&mut running, logs).await;
        if let Err(e) = self
            .spawn(&mut running, generation, cfg, spec, workspace, logs)
            .await
        {
            let why = format!("the preview did not start: {e:#}");
            logs.line(format!("[preview] {why}"));
            self.state.send_replace(State::Down(why));
        }
    }

    async fn spawn(
        &self,
        running: &mut Option<Running>,
        generation: u64,
        cfg: &BoxAgentConfig,
        spec: PreviewSpec,
        workspace: &Path,
        logs: &LogStream,
    ) -> anyhow::Result<()> {
        use anyhow::Context;
        let port = free_port().context("picking a port")?;
        let dir = cfg.box_dir.join("preview");
        std::fs::create_dir_all(&dir).context("making the preview's folder")?;
        let socket = dir.join("site.sock");
        let _ = std::fs::remove_file(&socket);
        let target = match cfg.sandbox {
            AgentSandbox::Bwrap => Target::Unix(socket.clone()),
            AgentSandbox::None => Target::Tcp(port),
        };
        let inbound = Inbound { socket, port };
        let env = [
            ("APIARY_SITE_BASE", spec.base.clone()),
            ("APIARY_SITE_URL", spec.url.clone()),
        ];
        let mut cmd = runner::preview_command(cfg, &spec.command, workspace, &inbound, &env)?;
        logs.line(format!(
            "[preview] starting on port {port}: {}",
            spec.command
        ));
        let mut child = cmd.spawn().context("starting the preview's command")?;
        let group = child.id().map_or(0, |id| id as i32);
        let out = pump(child.stdout.take().expect("piped"), logs.clone());
        let err = pump(child.stderr.take().expect("piped"), logs.clone());
        self.state.send_replace(State::Starting);
        let state = self.state.clone();
        let current = self.generation.clone();
        // The supervisor's word on the state counts only while its start is the current one.
        let is_current = move || current.load(Ordering::SeqCst) == generation;
        let set = {
            let is_current = is_current.clone();
            move |s: State| {
                if is_current() {
                    state.send_replace(s);
                }
            }
        };
        let probe_target = target.clone();
        let ready_uri = format!("{}{}", spec.base, spec.ready_path);
        let log = logs.clone();
        let supervisor = tokio::spawn(async move {
            // Ready once the readiness path answers; past the deadline it is said to be down,
            // and still asked (less often): a slow dev server that answers later is ready then.
            let ready = async {
                let started = tokio::time::Instant::now();
                let mut said_down = false;
                loop {
                    let late = started.elapsed() >= READY_WITHIN;
                    tokio::time::sleep(Duration::from_millis(if late { 2000 } else { 250 })).await;
                    if probe(&probe_target, &ready_uri, port).await {
                        log.line(format!("[preview] ready: {ready_uri} answers"));
                        set(State::Ready);
                        return;
                    }
                    if late && !said_down {
                        said_down = true;
                        let why = format!(
                            "the preview did not answer {ready_uri} within {} s",
                            READY_WITHIN.as_secs()
                        );
                        log.line(format!("[preview] {why}"));
                        set(State::Down(why));
                    }
                }
            };
            let mut readiness = Box::pin(ready);
            let mut exited = Box::pin(child.wait());
            let status = tokio::select! {
                status = &mut exited => status,
                () = &mut readiness => exited.await,
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), out).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), err).await;
            let why = match status {
                Ok(s) => format!("the preview exited ({s})"),
                Err(e) => format!("the preview could not be waited for: {e}"),
            };
            // A preview stopped on purpose (a round, teardown) is said to be stopped, not to
            // have exited.
            if is_current() {
                log.line(format!("[preview] {why}"));
                set(State::Down(why));
            }
        });
        *running = Some(Running {
            group,
            port,
            target,
            spec,
            supervisor,
        });
        Ok(())
    }

    /// Forwards a viewer's request for `rest` (the path under the site's base) to the preview;
    /// while it starts, the request waits a little; when none answers, a 503 says why.
    pub async fn forward(&self, mut req: Request<Body>, rest: &str) -> Response<Body> {
        let mut state = self.state.subscribe();
        let _ = tokio::time::timeout(VIEWER_WAITS, state.wait_for(|s| *s != State::Starting)).await;
        // The state read with the lock held, so it belongs to the preview that is there.
        let running = self.running.lock().await;
        let now = self.state.borrow().clone();
        let (target, port, base) = match (&now, &*running) {
            (State::Ready, Some(r)) => (r.target.clone(), r.port, r.spec.base.clone()),
            (State::Starting, _) => return unavailable("the preview is still starting; try again in a moment"),
            (State::Down(why), _) => return unavailable(why),
            _ => return unavailable("no preview runs now: the project sets none, or the agent is working on the next round"),
        };
        drop(running);
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let path = format!("{base}{}{query}", rest.trim_start_matches('/'));
        let Ok(uri) = path.parse::<Uri>() else {
            return unavailable_with(StatusCode::BAD_REQUEST, "the path is not a valid URI");
        };
        *req.uri_mut() = uri;
        // The control token is Apiary's key to this box: never the preview's to see. The app's
        // own `Authorization` (sent by its pages) came past it in a header of its own.
        req.headers_mut().remove(header::AUTHORIZATION);
        if let Some(own) = req.headers_mut().remove("x-apiary-site-authorization") {
            req.headers_mut().insert(header::AUTHORIZATION, own);
        }
        if let Ok(host) = HeaderValue::from_str(&format!("127.0.0.1:{port}")) {
            req.headers_mut().insert(header::HOST, host);
        }
        let io = match target.connect().await {
            Ok(io) => io,
            Err(e) => {
                return unavailable_with(
                    StatusCode::BAD_GATEWAY,
                    &format!("the preview refused the connection: {e}"),
                )
            }
        };
        match apiary_proxy::forward(req, io, HEAD_TIMEOUT, std::future::pending()).await {
            Ok(resp) => resp,
            Err(e) => unavailable_with(
                StatusCode::BAD_GATEWAY,
                &format!("the preview did not answer: {e}"),
            ),
        }
    }
}

/// Whether the preview answers `uri` with anything but a server error.
async fn probe(target: &Target, uri: &str, port: u16) -> bool {
    let Ok(io) = target.connect().await else {
        return false;
    };
    let Ok(req) = Request::get(uri)
        .header(header::HOST, format!("127.0.0.1:{port}"))
        .body(Body::empty())
    else {
        return false;
    };
    match apiary_proxy::forward(req, io, Duration::from_secs(10), std::future::pending()).await {
        Ok(resp) => resp.status().as_u16() < 500,
        Err(_) => false,
    }
}

fn unavailable(why: &str) -> Response<Body> {
    unavailable_with(StatusCode::SERVICE_UNAVAILABLE, why)
}

fn unavailable_with(status: StatusCode, why: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!("{why}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert("x-apiary-preview", HeaderValue::from_static("unavailable"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_link_in_place_of_the_previews_socket_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.sock");
        let _listener = tokio::net::UnixListener::bind(&real).unwrap();
        assert!(connect_socket(&real).await.is_ok(), "a socket is reached");
        let link = dir.path().join("site.sock");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = connect_socket(&link).await.expect_err("a link is refused");
        assert!(err.to_string().contains("not a socket"), "{err}");
    }

    #[test]
    fn the_spec_comes_from_the_project_and_the_base_is_the_site_origins_path() {
        let view = json!({
            "project": {"agent": {"preview_command": " python3 serve.py ", "preview_ready_path": "/health"}},
            "task": {"agent": {"site_url": "https://a.test/apiary/tasks/t1/site/"}},
        });
        let spec = PreviewSpec::from_view(&view, "t1").unwrap();
        assert_eq!(spec.command, "python3 serve.py");
        assert_eq!(spec.ready_path, "health");
        assert_eq!(spec.base, "/tasks/t1/site/", "not Apiary's own prefix");
        assert_eq!(spec.url, "https://a.test/apiary/tasks/t1/site/");
        let none = json!({"project": {"agent": {"preview_command": "  "}}});
        assert_eq!(PreviewSpec::from_view(&none, "t1"), None);
        let bare = json!({"project": {"agent": {"preview_command": "x"}}, "task": {"agent": {}}});
        assert_eq!(
            PreviewSpec::from_view(&bare, "t9").unwrap().base,
            "/tasks/t9/site/"
        );
    }
}
