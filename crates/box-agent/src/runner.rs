//! Runs the coding agent: the rendered prompt in a file, the phase in `$APIARY_PHASE`, the
//! workspace as working directory, the box's tokens removed from its environment, its own
//! process group, every output line streamed, and the whole group killed at the timeout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::logs::LogStream;

/// Variables the agent must never see.
const SECRETS: [&str; 3] = [
    "APIARY_CALLBACK_TOKEN",
    "APIARY_CONTROL_TOKEN",
    "APIARY_GITHUB_TOKEN",
];

/// What a finished run printed on stdout.
pub struct RunOutput {
    pub stdout: String,
}

fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    logs: LogStream,
    keep: bool,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        let mut kept = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if keep && kept.len() < 1_000_000 {
                kept.push_str(&line);
                kept.push('\n');
            }
            logs.line(line);
        }
        kept
    })
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
/// environment in /proc).
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
    cmd.args([
        "--bind",
        &ws,
        &ws,
        "--ro-bind",
        &prompt,
        &prompt,
        "--chdir",
        &ws,
    ]);
    cmd.args(["--setenv", "HOME", &home, "--setenv", "TMPDIR", &tmp]);
    cmd.args(["--", "sh", "-c", command]);
    cmd
}

/// Runs `command` through `sh -c`, sandboxed when possible; fails on a non-zero exit or past
/// `timeout`.
pub async fn run(
    command: &str,
    phase: &str,
    prompt_file: &Path,
    workspace: &Path,
    timeout: Duration,
    logs: &LogStream,
) -> Result<RunOutput> {
    let mut cmd = agent_command(command, prompt_file, workspace);
    cmd.current_dir(workspace)
        .env("APIARY_PROMPT_FILE", prompt_file)
        .env("APIARY_PHASE", phase)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for s in SECRETS {
        cmd.env_remove(s);
    }
    let mut child = cmd.spawn().context("starting the agent")?;
    let pgid = child.id().unwrap_or(0) as i32;
    let out = pump(child.stdout.take().expect("piped"), logs.clone(), true);
    let err = pump(child.stderr.take().expect("piped"), logs.clone(), false);
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.context("waiting for the agent")?,
        Err(_) => {
            // The whole group: the agent and anything it started.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait().await;
            out.abort();
            err.abort();
            bail!("agent run timed out after {} s", timeout.as_secs());
        }
    };
    let stdout = out.await.unwrap_or_default();
    let _ = err.await;
    if !status.success() {
        bail!("the agent exited with {status}");
    }
    Ok(RunOutput { stdout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_agent_never_sees_the_tokens_and_a_slow_one_is_killed() {
        std::env::set_var("APIARY_CALLBACK_TOKEN", "secret-callback");
        let dir = tempfile::tempdir().unwrap();
        let prompt = dir.path().join("p.md");
        std::fs::write(&prompt, "hello").unwrap();
        let logs = LogStream::start(NullSink);
        let out = run(
            "env; cat \"$APIARY_PROMPT_FILE\"; echo \"phase=$APIARY_PHASE\"",
            "spec",
            &prompt,
            dir.path(),
            Duration::from_secs(10),
            &logs,
        )
        .await
        .unwrap();
        assert!(!out.stdout.contains("secret-callback"), "{}", out.stdout);
        assert!(out.stdout.contains("hello") && out.stdout.contains("phase=spec"));

        let started = std::time::Instant::now();
        let err = run(
            "sleep 30 & sleep 30",
            "spec",
            &prompt,
            dir.path(),
            Duration::from_millis(500),
            &logs,
        )
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("timed out after 0 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let failed = run(
            "exit 3",
            "spec",
            &prompt,
            dir.path(),
            Duration::from_secs(5),
            &logs,
        )
        .await;
        assert!(failed.is_err());
    }

    struct NullSink;
    impl crate::logs::Sink for NullSink {
        async fn send(&self, _lines: Vec<String>) {}
    }
}
