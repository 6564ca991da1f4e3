//! The `local` forge: the box pushes its branch to the project's repository; the review page
//! shows `base...branch`; merging happens for real in a scratch clone and is pushed back.

use std::path::Path;
use std::process::Stdio;

/// Why a merge did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The branch does not merge cleanly; nothing was changed.
    #[error("merge conflict: {0}")]
    Conflict(String),
    #[error("{0}")]
    Git(String),
}

async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, ForgeError> {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    let out = cmd
        .args([
            "-c",
            "user.name=Apiary",
            "-c",
            "user.email=apiary@localhost",
        ])
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| ForgeError::Git(format!("cannot run git: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ForgeError::Git(format!(
            "git {} failed: {}{}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )))
    }
}

fn check_ref(name: &str) -> Result<(), ForgeError> {
    if name.is_empty()
        || name.starts_with('-')
        || name.contains("..")
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == ':' || c == '~' || c == '^')
    {
        return Err(ForgeError::Git(format!("bad branch name {name:?}")));
    }
    Ok(())
}

/// The unified diff of `base...branch` in the repository at `repo` (a path or URL git reads).
pub async fn diff(repo: &str, base: &str, branch: &str) -> Result<String, ForgeError> {
    check_ref(base)?;
    check_ref(branch)?;
    let scratch = tempfile::tempdir().map_err(|e| ForgeError::Git(e.to_string()))?;
    let dir = scratch.path().join("r");
    let dir_s = dir.display().to_string();
    git(None, &["clone", "-q", "--bare", "--", repo, &dir_s]).await?;
    git(
        Some(&dir),
        &["diff", "--no-color", &format!("{base}...{branch}")],
    )
    .await
}

/// Merges `branch` into `base` with a merge commit and pushes it; a conflict changes nothing.
pub async fn merge(
    repo: &str,
    base: &str,
    branch: &str,
    message: &str,
) -> Result<String, ForgeError> {
    check_ref(base)?;
    check_ref(branch)?;
    let scratch = tempfile::tempdir().map_err(|e| ForgeError::Git(e.to_string()))?;
    let dir = scratch.path().join("w");
    let dir_s = dir.display().to_string();
    git(None, &["clone", "-q", "--branch", base, "--", repo, &dir_s]).await?;
    git(Some(&dir), &["fetch", "-q", "origin", branch]).await?;
    if let Err(e) = git(
        Some(&dir),
        &["merge", "--no-ff", "-m", message, "FETCH_HEAD"],
    )
    .await
    {
        let _ = git(Some(&dir), &["merge", "--abort"]).await;
        return Err(ForgeError::Conflict(match e {
            ForgeError::Git(m) | ForgeError::Conflict(m) => m,
        }));
    }
    git(Some(&dir), &["push", "-q", "origin", base]).await?;
    Ok(git(Some(&dir), &["rev-parse", "HEAD"])
        .await?
        .trim()
        .to_string())
}

/// The pre-receive hook Apiary puts in a local repository: a push made from a box (its
/// environment names the box's branch in `APIARY_BRANCH`) may only update that branch. People
/// and Apiary's own merges are not affected.
pub const PRE_RECEIVE_HOOK: &str = r#"#!/bin/sh
# Installed by Apiary. A box may push only its own apiary/* branch.
[ -z "$APIARY_BRANCH" ] && exit 0
while read old new ref; do
  if [ "$ref" != "refs/heads/$APIARY_BRANCH" ]; then
    echo "apiary: a box may only push refs/heads/$APIARY_BRANCH (refused $ref)" >&2
    exit 1
  fi
done
exit 0
"#;

/// Installs [`PRE_RECEIVE_HOOK`] in a repository on this machine, unless it has a
/// pre-receive hook of its own. Returns whether the hook is Apiary's.
pub fn protect_local_repo(repo: &Path) -> std::io::Result<bool> {
    let hooks = if repo.join("hooks").is_dir() && !repo.join(".git").exists() {
        repo.join("hooks")
    } else {
        repo.join(".git").join("hooks")
    };
    let hook = hooks.join("pre-receive");
    if hook.exists() {
        return Ok(std::fs::read_to_string(&hook)?.contains("Installed by Apiary"));
    }
    std::fs::create_dir_all(&hooks)?;
    std::fs::write(&hook, PRE_RECEIVE_HOOK)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(true)
}
