//! Runs the coding agent: the rendered prompt in a file, the phase in `$APIARY_PHASE`, the
//! workspace as working directory, the box's secrets removed from its environment, its own
//! process group, every output line streamed, and the whole group killed when the run ends or
//! passes its timeout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use std::sync::{Arc, Mutex};

use crate::config::{AgentSandbox, BoxAgentConfig};
use crate::logs::{LogStream, MAX_LINE};
use crate::transcript::Transcript;

/// Most stdout kept for the spec (a spec is far shorter).
const MAX_KEPT: usize = 1 << 20;

/// One run of the agent.
pub struct Run<'a> {
    /// The command line (`sh -c`), its environment, home files and output format.
    pub preset: &'a crate::presets::Preset,
    /// `spec`, `revise`, `implement` or `changes`.
    pub phase: &'a str,
    pub prompt_file: &'a Path,
    pub workspace: &'a Path,
    pub timeout: Duration,
}

/// What a finished run said: its stdout, or for a CLI with structured output its final answer.
pub struct RunOutput {
    pub stdout: String,
}

/// Where the agent reaches the model gateway: inside its sandbox, the forwarder on its own
/// loopback; without one, Apiary itself.
pub fn gateway_url(cfg: &BoxAgentConfig) -> String {
    if cfg.sandbox == AgentSandbox::Bwrap && cfg.egress.is_some() {
        crate::gateway::sandboxed_url()
    } else {
        format!("{}/gateway", cfg.apiary_url)
    }
}

/// The agent's home, kept for the box's life (a CLI's settings and sessions between phases).
pub fn agent_home(box_dir: &Path) -> std::path::PathBuf {
    box_dir.join("agent-home")
}

/// Streams `reader` to the logs line by line (bytes, so output that is not UTF-8 never stops
/// the pipe from draining; a line longer than [`MAX_LINE`] goes out in pieces) and returns
/// the stdout it kept.
fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    logs: LogStream,
    keep: bool,
    transcript: Option<Arc<Mutex<Transcript>>>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        let mut kept = Vec::new();
        async fn emit(
            logs: &LogStream,
            line: &mut Vec<u8>,
            transcript: &Option<Arc<Mutex<Transcript>>>,
        ) {
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches(['\n', '\r']).to_string();
            line.clear();
            let shown = match transcript {
                Some(t) => t.lock().expect("transcript lock").line(&text),
                None => vec![text],
            };
            for l in shown {
                logs.line_waiting(l).await;
            }
        }
        loop {
            let buf = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(buf) => buf,
            };
            let (used, end) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            line.extend_from_slice(&buf[..used]);
            if keep && kept.len() < MAX_KEPT {
                kept.extend_from_slice(&buf[..used]);
            }
            reader.consume(used);
            // A structured line is read whole (up to the kept maximum); a plain one is cut.
            let limit = if transcript.is_some() {
                MAX_KEPT
            } else {
                MAX_LINE
            };
            if end || line.len() >= limit {
                emit(&logs, &mut line, &transcript).await;
            }
        }
        if !line.is_empty() {
            emit(&logs, &mut line, &transcript).await;
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Kills the agent's whole process group when dropped: at the end of a run, at its timeout,
/// and when the run itself is dropped (the box shutting down).
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // Never group 0: that would be our own.
        if self.0 > 0 {
            // SAFETY: kill(2) has no memory effects; a negative pid names a process group.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
}

/// The agent's command. Under [`AgentSandbox::Bwrap`] it runs inside bubblewrap, so the agent
/// sees the system read-only, its workspace writable, its prompt, a private /tmp and home,
/// the box's git directory read-only (so it can read history but plant nothing for the box's
/// own git to run), none of the box's other files, and — in its own PID namespace — none of
/// the box agent's processes (nor their environment in /proc). There is no fallback: when
/// bubblewrap is missing or cannot start, the run fails; only `--sandbox none` runs it bare.
fn agent_command(
    cfg: &BoxAgentConfig,
    command: &str,
    prompt_file: Option<&Path>,
    workspace: &Path,
    inbound: Option<&Inbound>,
) -> tokio::process::Command {
    if cfg.sandbox == AgentSandbox::None {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c").arg(command);
        return cmd;
    }
    // Its own network namespace: only its loopback, and the egress proxy through it.
    let ws = workspace.display().to_string();
    let mut cmd = tokio::process::Command::new(&cfg.bwrap);
    cmd.args([
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        // A private, writable /tmp (before anything below is bound back into it).
        "--tmpfs",
        "/tmp",
        "--unshare-pid",
        "--unshare-net",
        "--die-with-parent",
    ]);
    // Programs the agent runs that live under the host's /tmp (Apiary itself, a CLI on the
    // PATH) stay visible, read-only.
    for dir in programs_under_tmp() {
        cmd.args(["--ro-bind", &dir, &dir]);
    }
    // The box's folder becomes an empty scratch space with only the workspace, its git
    // directory and the prompt in it, plus a private home and temp folder.
    let scratch = workspace
        .parent()
        .unwrap_or(workspace)
        .display()
        .to_string();
    let home = agent_home(&cfg.box_dir).display().to_string();
    let tmp = format!("{scratch}/agent-tmp");
    cmd.args(["--tmpfs", &scratch, "--dir", &tmp]);
    cmd.args(["--bind", &home, &home]);
    cmd.args(["--bind", &ws, &ws]);
    let git_dir = crate::git::git_dir(&cfg.box_dir);
    if git_dir.exists() {
        let g = git_dir.display().to_string();
        cmd.args(["--ro-bind", &g, &g]);
    }
    if let Some(prompt) = prompt_file {
        let prompt = prompt.display().to_string();
        cmd.args(["--ro-bind", &prompt, &prompt]);
    }
    cmd.args(["--chdir", &ws]);
    cmd.args(["--setenv", "HOME", &home, "--setenv", "TMPDIR", &tmp]);
    // The way in to a server the command runs (the site preview): the relay listens on a
    // socket in a folder shared with the box agent and connects inside the namespace.
    let mut serve = Vec::new();
    if let Some(inbound) = inbound {
        let dir = inbound
            .socket
            .parent()
            .unwrap_or(workspace)
            .display()
            .to_string();
        cmd.args(["--bind", &dir, &dir]);
        serve.push(format!(
            "--serve={}=127.0.0.1:{}",
            inbound.socket.display(),
            inbound.port
        ));
    }
    let relay = std::env::current_exe()
        .ok()
        .filter(|_| cfg.egress.is_some() || inbound.is_some());
    match relay {
        Some(exe) if cfg.egress.is_none() => {
            cmd.arg("--").arg(exe).arg("egress-relay").args(&serve);
            cmd.args(["--", "sh", "-c", command]);
        }
        Some(exe) => {
            let sock = egress_socket(&cfg.box_dir).display().to_string();
            cmd.args(["--bind", &sock, &sock]);
            // The relay starts in the workspace, beside which the socket is: a long path is
            // reached relatively (a socket address holds at most ~100 bytes).
            let reach = if sock.len() < crate::egress::MAX_SOCKET_PATH {
                sock.clone()
            } else {
                "../egress.sock".to_string()
            };
            let proxy = format!("http://{}", crate::egress::PROXY_ADDR);
            for var in [
                "HTTPS_PROXY",
                "HTTP_PROXY",
                "ALL_PROXY",
                "https_proxy",
                "http_proxy",
                "all_proxy",
            ] {
                cmd.args(["--setenv", var, &proxy]);
            }
            // The gateway is on the agent's own loopback, by name: reached directly, not by
            // the proxy (which carries 127.0.0.1 to the host's loopback).
            cmd.args([
                "--setenv",
                "NO_PROXY",
                "localhost",
                "--setenv",
                "no_proxy",
                "localhost",
            ]);
            // The model gateway's forwarder, beside the proxy's socket.
            let gw = crate::gateway::socket(&cfg.box_dir).display().to_string();
            cmd.args(["--bind", &gw, &gw]);
            let gw_reach = if gw.len() < crate::egress::MAX_SOCKET_PATH {
                gw.clone()
            } else {
                "../gateway.sock".to_string()
            };
            cmd.arg("--")
                .arg(exe)
                .args(["egress-relay", crate::egress::PROXY_ADDR, &reach])
                .arg(format!(
                    "--also={}={gw_reach}",
                    crate::gateway::GATEWAY_ADDR
                ))
                .args(&serve)
                .arg("--");
            cmd.args(["sh", "-c", command]);
        }
        None => {
            cmd.args(["--", "sh", "-c", command]);
        }
    }
    cmd
}

/// Writes a preset's file into the agent's home, which the agent can write too: no link it
/// planted is followed (a folder on the way that is a link fails the run; a file there is
/// replaced, never written through), so the box agent writes nothing outside the home.
fn write_home_file(home: &Path, rel: &str, content: &str) -> Result<()> {
    use std::io::Write;
    let mut dir = home.to_path_buf();
    let mut parts: Vec<&str> = rel.split('/').collect();
    let name = parts.pop().context("a home file has a name")?;
    for part in parts {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "{} in the agent's home is not a folder (a link?); the run stops",
                dir.display()
            ),
            Err(_) => {
                std::fs::create_dir(&dir).with_context(|| format!("making {}", dir.display()))?
            }
        }
    }
    let path = dir.join(name);
    // Unlinking removes a link itself, not what it names; `create_new` refuses one that
    // reappears in between.
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(content.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The top folders under `/tmp` that hold this program or a directory on the PATH.
fn programs_under_tmp() -> Vec<String> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(std::env::current_exe().ok());
    let mut tops: Vec<String> = dirs
        .iter()
        .filter_map(|d| {
            let rest = d.strip_prefix("/tmp").ok()?;
            let first = rest.components().next()?;
            let top = Path::new("/tmp").join(first);
            top.exists().then(|| top.display().to_string())
        })
        .collect();
    tops.sort();
    tops.dedup();
    tops
}

/// What every command the box agent starts for the agent's side gets: no input, its output
/// piped to the log, a process group of its own (killed whole), and none of the box's secrets.
fn contain(cfg: &BoxAgentConfig, cmd: &mut tokio::process::Command) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cfg.scrub_env(cmd);
}

/// Where a server the sandboxed command runs is reached from the box agent: the relay inside
/// the sandbox listens on `socket` and connects to `127.0.0.1:port` in the sandbox's network.
pub struct Inbound {
    pub socket: std::path::PathBuf,
    pub port: u16,
}

/// The site preview's command, under the agent's sandbox rules (its workspace, home, network
/// and egress), in a process group of its own; `PORT` and `HOST` say where to listen and the
/// box's secrets are kept out of its environment as out of the agent's.
pub fn preview_command(
    cfg: &BoxAgentConfig,
    command: &str,
    workspace: &Path,
    inbound: &Inbound,
    env: &[(&str, String)],
) -> Result<tokio::process::Command> {
    let home = agent_home(&cfg.box_dir);
    std::fs::create_dir_all(&home).context("making the agent's home")?;
    let mut cmd = agent_command(cfg, command, None, workspace, Some(inbound));
    cmd.current_dir(workspace)
        .env("HOME", &home)
        .envs(&cfg.agent_env)
        .env("PORT", inbound.port.to_string())
        .env("HOST", "127.0.0.1")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    contain(cfg, &mut cmd);
    Ok(cmd)
}

/// The egress proxy's socket in the box's folder.
pub fn egress_socket(box_dir: &Path) -> std::path::PathBuf {
    box_dir.join("egress.sock")
}

/// A finished process: how it ended, what it printed, and its structured output's reading.
struct Finished {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    transcript: Arc<Mutex<Transcript>>,
    structured: bool,
}

/// Runs the agent through `sh -c`, sandboxed when possible; fails on a non-zero exit, past
/// the timeout (`agent run timed out after N s`), or when its structured output shows refused
/// tool calls, a failed turn or a last tool call that failed.
pub async fn run(cfg: &BoxAgentConfig, run: Run<'_>, logs: &LogStream) -> Result<RunOutput> {
    let phase = run.phase;
    let Finished {
        status,
        stdout,
        stderr,
        transcript,
        structured,
    } = execute(cfg, run, logs).await?;
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        // bubblewrap says why it could not set the sandbox up on its first stderr line.
        if cfg.sandbox == AgentSandbox::Bwrap {
            if let Some(why) = stderr.lines().next().filter(|l| l.starts_with("bwrap:")) {
                bail!("the agent's sandbox did not start ({why}); the agent did not run");
            }
        }
        match (status.code(), status.signal()) {
            (Some(code), _) => bail!("the agent exited with code {code}"),
            (None, Some(sig)) => bail!("the agent was killed by signal {sig}"),
            _ => bail!("the agent failed: {status}"),
        }
    }
    let transcript = transcript.lock().expect("transcript lock");
    if let Err(why) = transcript.verdict(matches!(phase, "implement" | "changes")) {
        bail!("{why}");
    }
    if structured {
        return Ok(RunOutput {
            stdout: transcript.answer.clone(),
        });
    }
    Ok(RunOutput { stdout })
}

/// Runs the project's check command in the agent's sandbox (its output, stderr included, goes
/// to the task's log): the check, passed or not, with the end of its output. Fails only when
/// the command cannot be run at all.
pub async fn check(
    cfg: &BoxAgentConfig,
    command: &str,
    workspace: &Path,
    prompt_file: &Path,
    timeout: Duration,
    logs: &LogStream,
) -> Result<apiary_core::forge::Check> {
    use apiary_core::forge::{tail, MAX_LOG_TAIL_BYTES};
    let preset = crate::presets::Preset {
        command: format!("exec 2>&1\n{command}"),
        env: Vec::new(),
        home_files: Vec::new(),
        output: crate::transcript::Format::Plain,
    };
    let run = Run {
        preset: &preset,
        phase: "check",
        prompt_file,
        workspace,
        timeout,
    };
    let (passed, summary, output) = match execute(cfg, run, logs).await {
        Ok(f) => {
            use std::os::unix::process::ExitStatusExt;
            let summary = match (f.status.code(), f.status.signal()) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => f.status.to_string(),
            };
            (f.status.success(), summary, f.stdout)
        }
        Err(e) if e.to_string().contains("timed out") => (false, format!("{e:#}"), String::new()),
        Err(e) => return Err(e),
    };
    Ok(apiary_core::forge::Check {
        name: command.chars().take(200).collect(),
        passed,
        summary,
        log_tail: tail(&output, MAX_LOG_TAIL_BYTES).to_string(),
    })
}

async fn execute(cfg: &BoxAgentConfig, run: Run<'_>, logs: &LogStream) -> Result<Finished> {
    let preset = run.preset;
    let home = agent_home(&cfg.box_dir);
    std::fs::create_dir_all(&home).context("making the agent's home")?;
    for (rel, content) in &preset.home_files {
        write_home_file(&home, rel, content)?;
    }
    let mut cmd = agent_command(
        cfg,
        &preset.command,
        Some(run.prompt_file),
        run.workspace,
        None,
    );
    cmd.current_dir(run.workspace)
        .env("APIARY_PROMPT_FILE", run.prompt_file)
        .env("APIARY_PHASE", run.phase)
        .env("HOME", &home)
        // The admin's and the project's plain variables, then the preset's own (which win).
        .envs(&cfg.agent_env)
        .envs(preset.env.iter().cloned())
        .env("APIARY_GATEWAY_URL", gateway_url(cfg))
        .env("APIARY_AGENT_MODEL", &cfg.model);
    contain(cfg, &mut cmd);
    match (cfg.sandbox, &cfg.egress) {
        (AgentSandbox::None, _) => logs.line(
            "the agent runs without a sandbox, its network unrestricted (the box was started with --sandbox none)",
        ),
        (AgentSandbox::Bwrap, None) => logs.line("the agent has no network (no egress allowlist)"),
        (AgentSandbox::Bwrap, Some(allow)) => logs.line(format!(
            "the agent reaches the network only through Apiary's egress proxy, to: {}",
            allow.entries().join(", ")
        )),
    }
    let mut child = cmd.spawn().with_context(|| match cfg.sandbox {
        AgentSandbox::Bwrap => format!(
            "starting the agent's sandbox ({}); it is required unless Apiary runs with --sandbox none",
            cfg.bwrap
        ),
        AgentSandbox::None => "starting the agent".to_string(),
    })?;
    let pgid = child.id().map_or(0, |id| id as i32);
    let group = Group(pgid);
    logs.line(format!(
        "agent started ({} phase, process group {pgid})",
        run.phase
    ));
    let transcript = Arc::new(Mutex::new(Transcript::new(preset.output)));
    let (structured, watched) = {
        let t = transcript.lock().expect("transcript lock");
        (t.structured(), t.watched())
    };
    let out = pump(
        child.stdout.take().expect("piped"),
        logs.clone(),
        true,
        watched.then(|| transcript.clone()),
    );
    let err = pump(
        child.stderr.take().expect("piped"),
        logs.clone(),
        true,
        None,
    );
    let waited = tokio::time::timeout(run.timeout, child.wait()).await;
    // The whole group: the agent and anything it started (and left behind).
    drop(group);
    let status = match waited {
        Ok(status) => status.context("waiting for the agent")?,
        Err(_) => {
            let _ = child.wait().await;
            out.abort();
            err.abort();
            bail!("agent run timed out after {} s", run.timeout.as_secs());
        }
    };
    let grace = Duration::from_secs(5);
    let stdout = tokio::time::timeout(grace, out)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = tokio::time::timeout(grace, err)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr,
        transcript,
        structured,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BoxAgentConfig {
        BoxAgentConfig {
            apiary_url: "http://127.0.0.1:9".into(),
            task_id: "t1".into(),
            callback_token: "secret-callback-token".into(),
            control_token: "secret-control-token".into(),
            repo_url: String::new(),
            base_branch: "main".into(),
            branch: "b".into(),
            agent: String::new(),
            agent_command: String::new(),
            forge: "local".into(),
            spec_timeout_s: 5,
            impl_timeout_s: 5,
            box_dir: "/nonexistent".into(),
            control_bind: String::new(),
            github_api: String::new(),
            github_token: String::new(),
            sandbox: crate::config::AgentSandbox::Bwrap,
            bwrap: "bwrap".into(),
            orphan_s: 1800,
            egress: None,
            egress_upstream: None,
            gateway_token: String::new(),
            model: String::new(),
            agent_env: Default::default(),
        }
    }

    fn plain(command: &str) -> crate::presets::Preset {
        crate::presets::Preset {
            command: command.to_string(),
            env: Vec::new(),
            home_files: Vec::new(),
            output: crate::transcript::Format::Plain,
        }
    }

    async fn go(command: &str, timeout: Duration) -> (Result<RunOutput>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        std::fs::create_dir_all(&ws).unwrap();
        let prompt = dir.path().join("prompt-spec.md");
        std::fs::write(&prompt, "hello from the prompt").unwrap();
        let rec = Recorder::default();
        let logs = LogStream::start(rec.clone());
        let preset = plain(command);
        let run = Run {
            preset: &preset,
            phase: "spec",
            prompt_file: &prompt,
            workspace: &ws,
            timeout,
        };
        let mut cfg = cfg();
        cfg.box_dir = dir.path().to_path_buf();
        let out = super::run(&cfg, run, &logs).await;
        logs.flush().await;
        let lines = rec.0.lock().unwrap().concat();
        (out, lines)
    }

    #[tokio::test]
    async fn the_agent_gets_prompt_and_phase_but_never_the_tokens() {
        // Under the name the boot env uses, and under any other name.
        std::env::set_var("APIARY_CALLBACK_TOKEN", "secret-callback-token");
        std::env::set_var("SOME_COPY_OF_IT", "x secret-control-token x");
        let (out, lines) = go(
            "env; cat \"$APIARY_PROMPT_FILE\"; echo; echo \"phase=$APIARY_PHASE\"; printf 'bad \\377 utf8\\nno newline'",
            Duration::from_secs(10),
        )
        .await;
        let out = out.unwrap().stdout;
        assert!(!out.contains("secret-"), "{out}");
        assert!(!out.contains("SOME_COPY_OF_IT"), "{out}");
        assert!(out.contains("hello from the prompt") && out.contains("phase=spec"));
        assert!(lines.iter().any(|l| l == "phase=spec"), "{lines:?}");
        assert!(lines.iter().any(|l| l == "no newline"), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("bad ")), "{lines:?}");
    }

    #[tokio::test]
    async fn a_slow_agent_is_killed_with_its_group_and_a_failing_one_fails() {
        let started = std::time::Instant::now();
        let (out, lines) = go("sleep 30 & sleep 30", Duration::from_millis(500)).await;
        let err = out.err().unwrap().to_string();
        assert!(err.contains("timed out after 0 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pgid: i32 = lines
            .iter()
            .find_map(|l| l.strip_suffix(')')?.split("process group ").nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert!(pgid > 0);
        let (out, _) = go("echo before; exit 3", Duration::from_secs(5)).await;
        let err = out.err().unwrap().to_string();
        assert_eq!(err, "the agent exited with code 3");
    }

    #[tokio::test]
    async fn a_sandboxed_agent_cannot_plant_anything_in_the_boxs_git_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        let git_dir = crate::git::git_dir(dir.path());
        std::fs::create_dir_all(git_dir.join("hooks")).unwrap();
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(git_dir.join("config"), "[core]\n").unwrap();
        std::fs::write(ws.join(".git"), format!("gitdir: {}\n", git_dir.display())).unwrap();
        let prompt = dir.path().join("prompt-implement.md");
        std::fs::write(&prompt, "p").unwrap();
        let logs = LogStream::start(Recorder::default());
        let mut cfg = cfg();
        cfg.box_dir = dir.path().to_path_buf();
        let preset = plain(
            "g=$(sed -n 's/^gitdir: //p' .git); \
                      echo '[core] fsmonitor = ./evil' >> \"$g/config\" || echo config-refused; \
                      touch \"$g/hooks/pre-commit\" || echo hooks-refused; \
                      echo '../../evil' > \"$g/commondir\" || echo commondir-refused; \
                      ls ../control.json 2>/dev/null || echo box-hidden; echo ok > work.txt",
        );
        let run = Run {
            preset: &preset,
            phase: "implement",
            prompt_file: &prompt,
            workspace: &ws,
            timeout: Duration::from_secs(10),
        };
        let out = super::run(&cfg, run, &logs).await.unwrap().stdout;
        for want in [
            "config-refused",
            "hooks-refused",
            "commondir-refused",
            "box-hidden",
        ] {
            assert!(out.contains(want), "{want}: {out}");
        }
        assert_eq!(
            std::fs::read_to_string(git_dir.join("config")).unwrap(),
            "[core]\n"
        );
        assert!(!git_dir.join("commondir").exists());
        assert!(!git_dir.join("hooks/pre-commit").exists());
        assert_eq!(
            std::fs::read_to_string(ws.join("work.txt")).unwrap(),
            "ok\n"
        );
    }

    #[tokio::test]
    async fn a_sandbox_that_does_not_start_fails_the_run_instead_of_running_the_agent_bare() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        std::fs::create_dir_all(&ws).unwrap();
        let prompt = dir.path().join("prompt-spec.md");
        std::fs::write(&prompt, "p").unwrap();
        // As bubblewrap answers on a host without user namespaces.
        let broken = dir.path().join("bwrap");
        std::fs::write(
            &broken,
            "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
        let marker = dir.path().join("ran-bare");
        let command = plain(&format!("touch {}", marker.display()));
        for (bwrap, want) in [
            (
                "/nonexistent/bwrap".to_string(),
                "starting the agent's sandbox",
            ),
            (
                broken.display().to_string(),
                "the agent's sandbox did not start",
            ),
        ] {
            let mut cfg = cfg();
            cfg.box_dir = dir.path().to_path_buf();
            cfg.bwrap = bwrap;
            let logs = LogStream::start(Recorder::default());
            let run = Run {
                preset: &command,
                phase: "spec",
                prompt_file: &prompt,
                workspace: &ws,
                timeout: Duration::from_secs(10),
            };
            let err = format!("{:#}", super::run(&cfg, run, &logs).await.err().unwrap());
            assert!(err.contains(want), "{err}");
            assert!(!marker.exists(), "the agent ran without its sandbox");
        }
        // Only the admin's --sandbox none runs it bare, and the log says so.
        let mut cfg = cfg();
        cfg.box_dir = dir.path().to_path_buf();
        cfg.sandbox = AgentSandbox::None;
        let rec = Recorder::default();
        let logs = LogStream::start(rec.clone());
        let run = Run {
            preset: &command,
            phase: "spec",
            prompt_file: &prompt,
            workspace: &ws,
            timeout: Duration::from_secs(10),
        };
        super::run(&cfg, run, &logs).await.unwrap();
        logs.flush().await;
        assert!(marker.exists());
        let lines = rec.0.lock().unwrap().concat();
        assert!(
            lines.iter().any(|l| l.contains("without a sandbox")),
            "{lines:?}"
        );
    }

    #[test]
    fn home_files_never_follow_the_agents_links() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let victim = outside.join("config");
        std::fs::write(&victim, "precious").unwrap();
        // A file planted as a link to a file outside: replaced, the target untouched.
        std::os::unix::fs::symlink(&victim, home.join(".settings.json")).unwrap();
        write_home_file(&home, ".settings.json", "{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(home.join(".settings.json")).unwrap(),
            "{}"
        );
        // A folder planted as a link: the run stops, nothing is written outside.
        std::os::unix::fs::symlink(&outside, home.join(".gemini")).unwrap();
        let err = write_home_file(&home, ".gemini/config", "{}").unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        write_home_file(&home, ".aider/caches/list.json", "[]").unwrap();
        assert!(home.join(".aider/caches/list.json").is_file());
    }

    #[derive(Clone, Default)]
    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>);

    impl crate::logs::Sink for Recorder {
        async fn send(&self, lines: Vec<String>) {
            self.0.lock().unwrap().push(lines);
        }
    }
}
