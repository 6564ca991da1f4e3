//! The git the box does: clone, branch, commit, push. The agent never pushes; the box does,
//! and only its own branch.

use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

/// Runs git in `dir` (or nowhere for a clone) and returns its stdout.
pub async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String> {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
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

/// Clones `repo` at `base` into `dir`, then checks out `branch`: from the remote when it was
/// pushed before (a resumed box; returns true), else as a new branch.
pub async fn prepare(repo: &str, base: &str, branch: &str, dir: &Path) -> Result<bool> {
    let d = dir.display().to_string();
    git(None, &["clone", "-q", "--branch", base, "--", repo, &d]).await?;
    git(Some(dir), &["config", "user.name", "Apiary Agent"]).await?;
    git(Some(dir), &["config", "user.email", "agent@apiary.local"]).await?;
    // The spec file lives in the workspace but is never committed.
    let exclude = dir.join(".git").join("info").join("exclude");
    let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
    text.push_str("\n.apiary/\n");
    std::fs::write(&exclude, text).context("writing .git/info/exclude")?;
    let remote = git(Some(dir), &["ls-remote", "--heads", "origin", branch]).await?;
    if remote.trim().is_empty() {
        git(Some(dir), &["checkout", "-q", "-b", branch]).await?;
        Ok(false)
    } else {
        git(Some(dir), &["fetch", "-q", "origin", branch]).await?;
        git(Some(dir), &["checkout", "-q", "-B", branch, "FETCH_HEAD"]).await?;
        Ok(true)
    }
}

/// Commits everything (an empty commit when nothing changed), pushes the branch, and returns
/// the new head.
pub async fn commit_and_push(dir: &Path, branch: &str, message: &str) -> Result<String> {
    git(Some(dir), &["add", "-A"]).await?;
    git(Some(dir), &["commit", "-q", "--allow-empty", "-m", message]).await?;
    git(
        Some(dir),
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ],
    )
    .await?;
    Ok(git(Some(dir), &["rev-parse", "HEAD"])
        .await?
        .trim()
        .to_string())
}
