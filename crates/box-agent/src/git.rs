//! The git the box does: clone, branch, commit, push. The agent never commits or pushes; the
//! box does, and only its own branch.
//!
//! The workspace's `.git` is reachable by the agent, so the box's own git runs with repository
//! hooks, fsmonitor, signing, credential helpers and askpass switched off, and without the
//! box's secrets in its environment. On the `github` forge the token reaches git as an HTTP
//! header scoped to the repository's URL, through `GIT_CONFIG_*` variables: in no argv and
//! no file.

use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::config::BoxAgentConfig;

/// Settings that keep repository-controlled programs out of the box's own git runs.
const SAFE: [&str; 10] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "credential.helper=",
    "-c",
    "core.askPass=",
];

/// Runs the box's git for one box.
pub struct Git<'a> {
    cfg: &'a BoxAgentConfig,
}

/// Standard base64, for the HTTP basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl<'a> Git<'a> {
    /// Git for the box described by `cfg`.
    pub fn new(cfg: &'a BoxAgentConfig) -> Self {
        Git { cfg }
    }

    fn command(&self, dir: Option<&Path>, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("git");
        if let Some(d) = dir {
            cmd.arg("-C").arg(d);
        }
        cmd.args(SAFE)
            .args(args)
            .stdin(Stdio::null())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .kill_on_drop(true);
        self.cfg.scrub_env(&mut cmd);
        let c = self.cfg;
        if c.forge == "github" && !c.github_token.is_empty() && c.repo_url.starts_with("http") {
            let basic = base64(format!("x-access-token:{}", c.github_token).as_bytes());
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env(
                    "GIT_CONFIG_KEY_0",
                    format!("http.{}.extraHeader", c.repo_url),
                )
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        cmd
    }

    /// Runs git in `dir` (or nowhere, for a clone) and returns its stdout.
    pub async fn run(&self, dir: Option<&Path>, args: &[&str]) -> Result<String> {
        let out = self
            .command(dir, args)
            .output()
            .await
            .context("running git")?;
        if !out.status.success() {
            bail!(
                "git {} failed: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether git in `dir` succeeds (for questions answered by the exit code).
    async fn check(&self, dir: &Path, args: &[&str]) -> Result<bool> {
        let out = self
            .command(Some(dir), args)
            .output()
            .await
            .context("running git")?;
        Ok(out.status.success())
    }

    /// Clones the repository at the base branch into `dir`, then checks out the box's branch:
    /// from the remote when it was pushed before (a resumed box; returns true), else as a new
    /// branch off the base. `.apiary/` is excluded so the spec is never committed.
    pub async fn prepare(&self, dir: &Path) -> Result<bool> {
        let (repo, base, branch) = (&self.cfg.repo_url, &self.cfg.base_branch, &self.cfg.branch);
        let d = dir.display().to_string();
        self.run(None, &["clone", "-q", "--branch", base, "--", repo, &d])
            .await?;
        self.run(Some(dir), &["config", "user.name", "Apiary Agent"])
            .await?;
        self.run(Some(dir), &["config", "user.email", "agent@apiary.local"])
            .await?;
        let info = dir.join(".git").join("info");
        std::fs::create_dir_all(&info).context("creating .git/info")?;
        let exclude = info.join("exclude");
        let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
        if !text.lines().any(|l| l.trim() == ".apiary/") {
            text.push_str("\n# the box's own files: the spec, never committed\n.apiary/\n");
            std::fs::write(&exclude, text).context("writing .git/info/exclude")?;
        }
        // The clone fetched every branch; the box's own is there when it was pushed before.
        let remote = format!("refs/remotes/origin/{branch}");
        let pushed = self
            .check(dir, &["show-ref", "--verify", "--quiet", &remote])
            .await?;
        if pushed {
            self.run(Some(dir), &["checkout", "-q", "-B", branch, &remote])
                .await?;
        } else {
            self.run(Some(dir), &["checkout", "-q", "-b", branch])
                .await?;
        }
        Ok(pushed)
    }

    /// Commits everything (an empty commit when nothing changed, so the PR exists), pushes the
    /// box's branch, and returns the new head.
    pub async fn commit_and_push(&self, dir: &Path, message: &str) -> Result<String> {
        self.run(Some(dir), &["add", "-A"]).await?;
        self.run(
            Some(dir),
            &[
                "commit",
                "-q",
                "--no-verify",
                "--allow-empty",
                "-m",
                message,
            ],
        )
        .await?;
        let refspec = format!("HEAD:refs/heads/{}", self.cfg.branch);
        self.run(Some(dir), &["push", "-q", "-f", "origin", &refspec])
            .await?;
        Ok(self
            .run(Some(dir), &["rev-parse", "HEAD"])
            .await?
            .trim()
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"x-access-token:ghp_abc"),
            "eC1hY2Nlc3MtdG9rZW46Z2hwX2FiYw=="
        );
    }
}
