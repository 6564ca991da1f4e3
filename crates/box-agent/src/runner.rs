//! Runs the coding agent: the rendered prompt in a file, the phase in `$APIARY_PHASE`, the
//! workspace as working directory, the box's secrets removed from its environment, its own
//! process group, every output line streamed, and the whole group killed when the run ends or
//! passes its timeout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::config::BoxAgentConfig;
use crate::logs::{LogStream, MAX_LINE};

/// Most stdout kept for the spec (a spec is far shorter).
const MAX_KEPT: usize = 1 << 20;

/// One run of the agent.
pub struct Run<'a> {
    /// The shell command (`sh -c`).
    pub command: &'a str,
    /// `spec`, `revise`, `implement` or `changes`.
    pub phase: &'a str,
    pub prompt_file: &'a Path,
    pub workspace: &'a Path,
    pub timeout: Duration,
}

/// What a finished run printed on stdout.
pub struct RunOutput {
    pub stdout: String,
}

/// Streams `reader` to the logs line by line (bytes, so output that is not UTF-8 never stops
/// the pipe from draining; a line longer than [`MAX_LINE`] goes out in pieces) and returns
/// the stdout it kept.
fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    logs: LogStream,
    keep: bool,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        let mut kept = Vec::new();
        let emit = |line: &mut Vec<u8>| {
            let text = String::from_utf8_lossy(line);
            logs.line(text.trim_end_matches(['\n', '\r']));
            line.clear();
        };
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
            if end || line.len() >= MAX_LINE {
                emit(&mut line);
            }
        }
        if !line.is_empty() {
            emit(&mut line);
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

/// Whether bubblewrap works here (probed once): the agent then runs in its own sandbox.
/// `APIARY_AGENT_SANDBOX=none` turns it off.
pub fn bwrap_available() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        std::env::var("APIARY_AGENT_SANDBOX")
            .map(|v| v != "none")
            .unwrap_or(true)
            && std::process::Command::new("bwrap")
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

/// The agent's command: inside bubblewrap when it works, so the agent sees the system
/// read-only, its workspace writable, its prompt, a private /tmp and home, none of the box's
/// other files, and — in its own PID namespace — none of the box agent's processes (nor their
/// environment in /proc). The workspace's git config, hooks and excludes stay read-only, so
/// the agent cannot plant programs for the box's own git to run.
fn agent_command(command: &str, prompt_file: &Path, workspace: &Path) -> tokio::process::Command {
    if !bwrap_available() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c").arg(command);
        return cmd;
    }
    let ws = workspace.display().to_string();
    let prompt = prompt_file.display().to_string();
    let mut cmd = tokio::process::Command::new("bwrap");
    cmd.args([
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-pid",
        "--die-with-parent",
    ]);
    // The box's folder becomes an empty scratch space with only the workspace and the prompt
    // in it, plus a private home and temp folder.
    let scratch = workspace
        .parent()
        .unwrap_or(workspace)
        .display()
        .to_string();
    let home = format!("{scratch}/agent-home");
    let tmp = format!("{scratch}/agent-tmp");
    cmd.args(["--tmpfs", &scratch, "--dir", &home, "--dir", &tmp]);
    cmd.args(["--bind", &ws, &ws]);
    for protected in ["config", "hooks", "info"] {
        let p = workspace.join(".git").join(protected);
        if p.exists() {
            let p = p.display().to_string();
            cmd.args(["--ro-bind", &p, &p]);
        }
    }
    cmd.args(["--ro-bind", &prompt, &prompt, "--chdir", &ws]);
    cmd.args(["--setenv", "HOME", &home, "--setenv", "TMPDIR", &tmp]);
    cmd.args(["--", "sh", "-c", command]);
    cmd
}

/// Runs the agent through `sh -c`, sandboxed when possible; fails on a non-zero exit or past
/// the timeout (`agent run timed out after N s`).
pub async fn run(cfg: &BoxAgentConfig, run: Run<'_>, logs: &LogStream) -> Result<RunOutput> {
    let mut cmd = agent_command(run.command, run.prompt_file, run.workspace);
    cmd.current_dir(run.workspace)
        .env("APIARY_PROMPT_FILE", run.prompt_file)
        .env("APIARY_PHASE", run.phase)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cfg.scrub_env(&mut cmd);
    let mut child = cmd.spawn().context("starting the agent")?;
    let pgid = child.id().map_or(0, |id| id as i32);
    let group = Group(pgid);
    logs.line(format!(
        "agent started ({} phase, process group {pgid})",
        run.phase
    ));
    let out = pump(child.stdout.take().expect("piped"), logs.clone(), true);
    let err = pump(child.stderr.take().expect("piped"), logs.clone(), false);
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
    let _ = tokio::time::timeout(grace, err).await;
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => bail!("the agent exited with code {code}"),
            (None, Some(sig)) => bail!("the agent was killed by signal {sig}"),
            _ => bail!("the agent failed: {status}"),
        }
    }
    Ok(RunOutput { stdout })
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
        let run = Run {
            command,
            phase: "spec",
            prompt_file: &prompt,
            workspace: &ws,
            timeout,
        };
        let out = super::run(&cfg(), run, &logs).await;
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
    async fn a_sandboxed_agent_cannot_plant_git_config_or_hooks() {
        if !bwrap_available() {
            return; // No sandbox here: nothing to check.
        }
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        std::fs::write(ws.join(".git/config"), "[core]\n").unwrap();
        let prompt = dir.path().join("prompt-implement.md");
        std::fs::write(&prompt, "p").unwrap();
        let logs = LogStream::start(Recorder::default());
        let run = Run {
            command: "echo '[core] fsmonitor = ./evil' >> .git/config || echo config-refused; \
                      touch .git/hooks/pre-commit || echo hooks-refused; \
                      ls ../control.json 2>/dev/null || echo box-hidden; echo ok > work.txt",
            phase: "implement",
            prompt_file: &prompt,
            workspace: &ws,
            timeout: Duration::from_secs(10),
        };
        let out = super::run(&cfg(), run, &logs).await.unwrap().stdout;
        for want in ["config-refused", "hooks-refused", "box-hidden"] {
            assert!(out.contains(want), "{want}: {out}");
        }
        assert_eq!(
            std::fs::read_to_string(ws.join(".git/config")).unwrap(),
            "[core]\n"
        );
        assert_eq!(
            std::fs::read_to_string(ws.join("work.txt")).unwrap(),
            "ok\n"
        );
    }

    #[derive(Clone, Default)]
    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>);

    impl crate::logs::Sink for Recorder {
        async fn send(&self, lines: Vec<String>) {
            self.0.lock().unwrap().push(lines);
        }
    }
}
