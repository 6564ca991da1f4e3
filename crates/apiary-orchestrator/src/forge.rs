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

/// Longest diff the review page gets, in bytes; a longer one is cut with a marker line.
pub const MAX_DIFF_BYTES: usize = 4 * 1024 * 1024;
/// Diffs kept in memory, keyed by repository and the two heads.
const DIFF_CACHE: usize = 32;

type DiffKey = (String, String, String);
static DIFFS: std::sync::Mutex<Option<std::collections::HashMap<DiffKey, std::sync::Arc<String>>>> =
    std::sync::Mutex::new(None);

/// Whether `repo` names a repository on this host (an absolute path or a `file://` URL): the
/// local forge reads nothing else, so a project's `repo_url` cannot make the server fetch
/// from the network.
pub fn is_local_repo(repo: &str) -> bool {
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    Path::new(path).is_absolute()
}

/// The commit a branch of `repo` points at.
async fn head(repo: &str, branch: &str) -> Result<String, ForgeError> {
    let out = git(
        None,
        &[
            "ls-remote",
            "--heads",
            "--",
            repo,
            &format!("refs/heads/{branch}"),
        ],
    )
    .await?;
    out.split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| ForgeError::Git(format!("no branch {branch} in the repository")))
}

/// The unified diff of `base...branch` in the repository at `repo` (on this host), at most
/// [`MAX_DIFF_BYTES`]; computed once per pair of heads.
pub async fn diff(repo: &str, base: &str, branch: &str) -> Result<String, ForgeError> {
    check_ref(base)?;
    check_ref(branch)?;
    if !is_local_repo(repo) {
        return Err(ForgeError::Git(
            "the local forge reads a repository on this host (an absolute path)".into(),
        ));
    }
    let key = (
        repo.to_string(),
        head(repo, base).await?,
        head(repo, branch).await?,
    );
    if let Some(hit) = DIFFS
        .lock()
        .expect("diff cache")
        .as_ref()
        .and_then(|m| m.get(&key).cloned())
    {
        return Ok(hit.to_string());
    }
    let diff = std::sync::Arc::new(diff_capped(repo, &key.1, &key.2).await?);
    let mut cache = DIFFS.lock().expect("diff cache");
    let map = cache.get_or_insert_with(Default::default);
    if map.len() >= DIFF_CACHE {
        map.clear();
    }
    map.insert(key, diff.clone());
    Ok(diff.to_string())
}

/// `git diff base...head` in the repository itself (no clone), read up to the cap.
async fn diff_capped(repo: &str, base: &str, head: &str) -> Result<String, ForgeError> {
    use tokio::io::AsyncReadExt;
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    let mut child = tokio::process::Command::new("git")
        .arg("-C")
        .arg(path)
        .args([
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            &format!("{base}...{head}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ForgeError::Git(format!("cannot run git: {e}")))?;
    let mut out = Vec::new();
    let stdout = child.stdout.take().expect("piped stdout");
    stdout
        .take(MAX_DIFF_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .await
        .map_err(|e| ForgeError::Git(e.to_string()))?;
    if out.len() > MAX_DIFF_BYTES {
        let _ = child.kill().await;
        out.truncate(MAX_DIFF_BYTES);
        let mut text = String::from_utf8_lossy(&out).into_owned();
        text.push_str(&format!(
            "\n… diff cut at {} MB; see the branch itself for the rest\n",
            MAX_DIFF_BYTES / (1024 * 1024)
        ));
        return Ok(text);
    }
    let done = child
        .wait_with_output()
        .await
        .map_err(|e| ForgeError::Git(e.to_string()))?;
    if !done.status.success() {
        return Err(ForgeError::Git(format!(
            "git diff failed: {}",
            String::from_utf8_lossy(&done.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Settings for git run by the host in a repository a box can write: none of the programs its
/// config or hooks could name run (a box may have planted them).
const HOST_SAFE: [&str; 10] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "core.alternateRefsCommand=true",
];

/// A repository on this host (a path or `file://`), which the host merges in place.
fn local_repo(repo: &str) -> Option<&Path> {
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    path.starts_with('/').then(|| Path::new(path))
}

/// Plumbing in a local repository with [`HOST_SAFE`]: (success, stdout, stderr).
async fn plumbing(repo: &Path, args: &[&str]) -> Result<(bool, String, String), ForgeError> {
    let git_dir = if repo.join(".git").is_dir() {
        repo.join(".git")
    } else {
        repo.to_path_buf()
    };
    let out = tokio::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(HOST_SAFE)
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
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

/// Merges in a repository on this host without a clone or a push: `merge-tree`, then
/// `commit-tree`, then a compare-and-swap `update-ref`, all plumbing that runs no hook and no
/// program the repository's (box-writable) config names.
async fn merge_in_place(
    repo: &Path,
    base: &str,
    branch: &str,
    message: &str,
) -> Result<String, ForgeError> {
    let sha = |name: String| async move {
        match plumbing(repo, &["rev-parse", "--verify", "--quiet", &name]).await? {
            (true, out, _) => Ok(out),
            _ => Err(ForgeError::Git(format!(
                "no branch {name} in the repository"
            ))),
        }
    };
    let old = sha(format!("refs/heads/{base}^{{commit}}")).await?;
    let head = sha(format!("refs/heads/{branch}^{{commit}}")).await?;
    let tree = match plumbing(repo, &["merge-tree", "--write-tree", &old, &head]).await? {
        (true, out, _) => out.lines().next().unwrap_or_default().to_string(),
        (false, out, err) => {
            let why: Vec<&str> = out.lines().skip(1).filter(|l| !l.is_empty()).collect();
            return Err(ForgeError::Conflict(if why.is_empty() {
                err
            } else {
                why.join("; ")
            }));
        }
    };
    let commit = match plumbing(
        repo,
        &["commit-tree", &tree, "-p", &old, "-p", &head, "-m", message],
    )
    .await?
    {
        (true, out, _) => out,
        (false, _, err) => return Err(ForgeError::Git(format!("git commit-tree failed: {err}"))),
    };
    let target = format!("refs/heads/{base}");
    match plumbing(
        repo,
        &["update-ref", "-m", "apiary: merge", &target, &commit, &old],
    )
    .await?
    {
        (true, _, _) => Ok(commit),
        (false, _, err) => Err(ForgeError::Conflict(format!(
            "{base} moved while merging ({err}); nothing changed"
        ))),
    }
}

/// Merges `branch` into `base` with a merge commit; a conflict changes nothing. A repository on
/// this host is merged in place (no hook of it runs); any other is cloned, merged and pushed.
pub async fn merge(
    repo: &str,
    base: &str,
    branch: &str,
    message: &str,
) -> Result<String, ForgeError> {
    check_ref(base)?;
    check_ref(branch)?;
    if let Some(path) = local_repo(repo) {
        return merge_in_place(path, base, branch, message).await;
    }
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

#[cfg(test)]
mod diff_tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    #[tokio::test]
    async fn the_diff_reads_only_this_host_is_cut_at_the_cap_and_kept_per_head() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("r");
        std::fs::create_dir(&repo).unwrap();
        sh(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        sh(&repo, &["add", "."]);
        sh(&repo, &["commit", "-q", "-m", "base"]);
        sh(&repo, &["checkout", "-q", "-b", "apiary/t1"]);
        let line = "x".repeat(99) + "\n";
        std::fs::write(repo.join("big.txt"), line.repeat(60_000)).unwrap();
        sh(&repo, &["add", "."]);
        sh(&repo, &["commit", "-q", "-m", "big"]);
        let path = repo.display().to_string();

        let d = diff(&path, "main", "apiary/t1").await.unwrap();
        assert!(d.len() < MAX_DIFF_BYTES + 200, "{}", d.len());
        assert!(d.ends_with("… diff cut at 4 MB; see the branch itself for the rest\n"));
        let cached = DIFFS.lock().unwrap().as_ref().unwrap().len();
        assert!(cached >= 1);
        assert_eq!(diff(&path, "main", "apiary/t1").await.unwrap(), d);

        for remote in [
            "http://169.254.169.254/repo.git",
            "ssh://host/x",
            "relative/path",
            "ext::sh -c id",
        ] {
            let e = diff(remote, "main", "apiary/t1").await.unwrap_err();
            assert!(e.to_string().contains("on this host"), "{remote}: {e}");
        }
    }

    #[tokio::test]
    async fn a_merge_in_a_local_repository_runs_none_of_the_hooks_a_box_planted() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("w");
        let bare = tmp.path().join("r.git");
        std::fs::create_dir(&work).unwrap();
        sh(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("a.txt"), "a\n").unwrap();
        sh(&work, &["add", "."]);
        sh(&work, &["commit", "-q", "-m", "base"]);
        sh(&work, &["checkout", "-q", "-b", "apiary/t1"]);
        std::fs::write(work.join("b.txt"), "b\n").unwrap();
        sh(&work, &["add", "."]);
        sh(&work, &["commit", "-q", "-m", "box work"]);
        sh(
            tmp.path(),
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        // What a box with the repository mounted writable could plant.
        let marker = tmp.path().join("PWNED");
        let evil = format!("#!/bin/sh\ntouch {}\n", marker.display());
        let planted = tmp.path().join("planted-hooks");
        std::fs::create_dir_all(&planted).unwrap();
        for dir in [bare.join("hooks"), planted.clone()] {
            std::fs::create_dir_all(&dir).unwrap();
            for hook in [
                "pre-receive",
                "update",
                "post-receive",
                "post-update",
                "reference-transaction",
                "pre-auto-gc",
            ] {
                let f = dir.join(hook);
                std::fs::write(&f, &evil).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        sh(
            &bare,
            &["config", "core.hooksPath", planted.to_str().unwrap()],
        );
        sh(
            &bare,
            &[
                "config",
                "core.alternateRefsCommand",
                &format!("touch {}", marker.display()),
            ],
        );

        let path = bare.display().to_string();
        let merged = merge(&path, "main", "apiary/t1", "Merge apiary/t1")
            .await
            .unwrap();
        assert!(!marker.exists(), "a planted hook ran on the host");
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&bare)
            .args(["log", "-1", "--format=%H %P %s", "main"])
            .output()
            .unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], merged, "{line}");
        assert_eq!(
            words[3..],
            ["Merge", "apiary/t1"],
            "a merge commit with two parents: {line}"
        );
        let tree = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&bare)
            .args(["ls-tree", "--name-only", "main"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(tree.stdout).unwrap(), "a.txt\nb.txt\n");
    }
}
