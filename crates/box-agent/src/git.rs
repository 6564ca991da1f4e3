//! The git the box does: clone, branch, commit, push. The agent never commits or pushes; the
//! box does, and only its own branch.
//!
//! The box's git must not run anything the agent planted. The git directory lives outside the
//! workspace (`<box>/git`, cloned with `--separate-git-dir`); the agent sees it read-only, and
//! the box's own git is always told `--git-dir` and `--work-tree`, so a `.git` file or folder
//! the agent writes, moves or points elsewhere is never read. On top of that the box's git
//! runs with every program-running setting overridden (hooks, fsmonitor, ssh command, external
//! diff, signing, credential helpers, askpass, the `ext::` transport), without system
//! attributes, and without the box's secrets in its environment: with no config the agent can
//! write, a filter or driver named in a `.gitattributes` resolves to nothing. On the `github`
//! forge the token reaches git as an HTTP header scoped to the repository's URL, through
//! `GIT_CONFIG_*` variables (in no argv and no file), and only when that URL is on the
//! configured GitHub host.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::config::BoxAgentConfig;

/// Settings that keep repository-controlled programs out of the box's own git runs.
const SAFE: [&str; 28] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.sshCommand=ssh",
    "-c",
    "core.attributesFile=/dev/null",
    "-c",
    "diff.external=",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "credential.helper=",
    "-c",
    "core.askPass=",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "diff.ignoreSubmodules=all",
    "-c",
    "submodule.recurse=false",
    "-c",
    "status.submoduleSummary=false",
    "-c",
    "remote.origin.receivepack=git-receive-pack",
    "-c",
    "remote.origin.uploadpack=git-upload-pack",
];

/// Removes every `.git` below the workspace's root (never following a link): a nested
/// repository's own config (a filter, a driver) would be read by the git that `git add`
/// starts inside it to check a submodule, outside the agent's sandbox. Returns what went,
/// relative to the workspace.
pub fn remove_nested_git(workspace: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, gone: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if e.file_name() == ".git" && dir != root {
                let removed = if kind.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                if removed.is_ok() {
                    gone.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
                }
            } else if kind.is_dir() {
                walk(root, &path, gone);
            }
        }
    }
    let mut gone = Vec::new();
    walk(workspace, workspace, &mut gone);
    gone
}

/// Where the box keeps its git directory: beside the workspace, never inside it.
pub fn git_dir(box_dir: &Path) -> PathBuf {
    box_dir.join("git")
}

/// The host (with its port, when it has one) that the GitHub token may go to: `github.com`
/// for the public API, else the API's own host (GitHub Enterprise, or a local stand-in).
fn github_host(api: &str) -> Option<String> {
    let url = reqwest::Url::parse(api).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    if host == "api.github.com" {
        return Some("github.com".into());
    }
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// Whether git may send the GitHub token to `repo_url`: https (or plain http on loopback, for
/// a local stand-in) on exactly the configured GitHub host.
pub fn token_may_go_to(repo_url: &str, github_api: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(repo_url) else {
        return false;
    };
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
    let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    let here = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    secure && github_host(github_api).is_some_and(|h| h == here)
}

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

    /// Git in the work tree `dir` with the box's own git directory (or nowhere, for a clone).
    fn command(&self, dir: Option<&Path>, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("git");
        if let Some(d) = dir {
            cmd.arg("--git-dir")
                .arg(git_dir(&self.cfg.box_dir))
                .arg("--work-tree")
                .arg(d)
                .current_dir(d);
        }
        cmd.args(SAFE);
        // A repository on the host, mounted into a container box, belongs to another user
        // than the box's: git (and the upload-pack a local clone starts, which sees no `-c`)
        // refuses it unless a global config trusts this one.
        if self.cfg.repo_url.starts_with('/') {
            // Written anew for every command: nothing else ever stands in it.
            let trust = self.cfg.box_dir.join("git-trust.conf");
            let _ = std::fs::write(
                &trust,
                format!("[safe]\n\tdirectory = {}\n", self.cfg.repo_url),
            );
            cmd.env("GIT_CONFIG_GLOBAL", trust);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ATTR_NOSYSTEM", "1")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_COMMON_DIR")
            .env_remove("GIT_CONFIG")
            .env_remove("GIT_CONFIG_PARAMETERS")
            .env_remove("GIT_EXEC_PATH")
            .kill_on_drop(true);
        self.cfg.scrub_env(&mut cmd);
        let c = self.cfg;
        if c.forge == "github"
            && !c.github_token.is_empty()
            && token_may_go_to(&c.repo_url, &c.github_api)
        {
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
        let g = git_dir(&self.cfg.box_dir).display().to_string();
        let separate = format!("--separate-git-dir={g}");
        self.run(
            None,
            &["clone", "-q", &separate, "--branch", base, "--", repo, &d],
        )
        .await?;
        self.run(Some(dir), &["config", "user.name", "Apiary Agent"])
            .await?;
        self.run(Some(dir), &["config", "user.email", "agent@apiary.local"])
            .await?;
        let info = git_dir(&self.cfg.box_dir).join("info");
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

    /// The GitHub host's refusal to carry the token elsewhere, as a line for the log (or
    /// `None` when the token goes, or there is none).
    pub fn token_withheld(&self) -> Option<String> {
        let c = self.cfg;
        (c.forge == "github"
            && !c.github_token.is_empty()
            && !token_may_go_to(&c.repo_url, &c.github_api))
            .then(|| {
                format!(
                    "the GitHub token is not sent to {}: only https URLs on the GitHub host of {} get it",
                    crate::phases::shown(&c.repo_url),
                    c.github_api
                )
            })
    }

    /// Commits everything (an empty commit when nothing changed, so the PR exists), pushes the
    /// box's branch, and returns the new head.
    /// Also returns the nested `.git`s it removed first (see [`remove_nested_git`]).
    pub async fn commit_and_push(
        &self,
        dir: &Path,
        message: &str,
    ) -> Result<(String, Vec<PathBuf>)> {
        let nested = remove_nested_git(dir);
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
        let head = self.run(Some(dir), &["rev-parse", "HEAD"]).await?;
        Ok((head.trim().to_string(), nested))
    }
}

#[cfg(test)]
mod tests {
    use super::{base64, token_may_go_to, Git};
    use crate::config::{AgentSandbox, BoxAgentConfig};

    fn github_box(repo_url: &str) -> BoxAgentConfig {
        BoxAgentConfig {
            apiary_url: "http://127.0.0.1:9".into(),
            task_id: "t1".into(),
            callback_token: "callback-secret-1".into(),
            control_token: "control-secret-1".into(),
            repo_url: repo_url.into(),
            base_branch: "main".into(),
            branch: "apiary/t1-x".into(),
            agent: "script".into(),
            agent_command: "true".into(),
            forge: "github".into(),
            spec_timeout_s: 1,
            impl_timeout_s: 1,
            box_dir: "/nonexistent".into(),
            control_bind: "127.0.0.1:0".into(),
            github_api: "https://api.github.com".into(),
            github_token: "ghp_the_projects_token".into(),
            sandbox: AgentSandbox::Bwrap,
            bwrap: "bwrap".into(),
            orphan_s: 1800,
            egress: None,
            egress_upstream: None,
            gateway_token: String::new(),
            model: String::new(),
            agent_env: Default::default(),
        }
    }

    /// Every value git's environment would carry for a push.
    fn git_env(cfg: &BoxAgentConfig) -> String {
        let cmd = Git::new(cfg).command(None, &["push"]);
        cmd.as_std()
            .get_envs()
            .filter_map(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_repository_url_on_another_host_never_gets_the_github_token() {
        let basic = base64(b"x-access-token:ghp_the_projects_token");
        let home = github_box("https://github.com/acme/site.git");
        assert!(git_env(&home).contains(&basic));
        assert!(Git::new(&home).token_withheld().is_none());
        let away = github_box("https://collector.evil.example/acme/site.git");
        assert!(!git_env(&away).contains(&basic));
        assert!(!git_env(&away).contains("ghp_the_projects_token"));
        let line = Git::new(&away).token_withheld().unwrap();
        assert!(line.contains("collector.evil.example"), "{line}");
    }

    #[test]
    fn nested_git_folders_and_files_are_removed_and_links_never_followed() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let w = ws.path();
        std::fs::write(w.join(".git"), "gitdir: /elsewhere\n").unwrap();
        std::fs::create_dir_all(w.join("sub/.git")).unwrap();
        std::fs::write(
            w.join("sub/.git/config"),
            "[filter \"x\"]\n\tclean = evil\n",
        )
        .unwrap();
        std::fs::create_dir_all(w.join("a/b")).unwrap();
        std::fs::write(w.join("a/b/.git"), "gitdir: ../../sub/.git\n").unwrap();
        // A link into a folder outside: not walked into, so nothing there is touched.
        std::fs::create_dir_all(outside.path().join(".git")).unwrap();
        std::os::unix::fs::symlink(outside.path(), w.join("link")).unwrap();
        let mut gone = super::remove_nested_git(w);
        gone.sort();
        assert_eq!(
            gone,
            vec![std::path::PathBuf::from("a/b/.git"), "sub/.git".into()]
        );
        assert!(w.join(".git").exists(), "the workspace's own .git stays");
        assert!(!w.join("sub/.git").exists() && !w.join("a/b/.git").exists());
        assert!(outside.path().join(".git").exists());
    }

    #[test]
    fn the_github_token_goes_only_to_the_github_host() {
        let public = "https://api.github.com";
        assert!(token_may_go_to("https://github.com/acme/site.git", public));
        assert!(token_may_go_to("https://GitHub.com/acme/site", public));
        for elsewhere in [
            "https://evil.example/acme/site.git",
            "https://github.com.evil.example/acme/site.git",
            "https://github.com:8443/acme/site.git",
            "http://github.com/acme/site.git",
            "git@github.com:acme/site.git",
            "/srv/site.git",
        ] {
            assert!(!token_may_go_to(elsewhere, public), "{elsewhere}");
        }
        let enterprise = "https://ghe.corp.example/api/v3";
        assert!(token_may_go_to(
            "https://ghe.corp.example/a/b.git",
            enterprise
        ));
        assert!(!token_may_go_to("https://github.com/a/b.git", enterprise));
        let stand_in = "http://127.0.0.1:4000";
        assert!(token_may_go_to("http://127.0.0.1:4000/a/b.git", stand_in));
        assert!(!token_may_go_to("http://127.0.0.1:4001/a/b.git", stand_in));
    }

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
