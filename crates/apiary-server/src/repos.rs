//! Which repositories a project may point at. A remote git URL is anyone's to choose; a
//! repository on this host (an absolute path or a `file://` URL, or anything that is not a
//! remote URL) is host-level power: only an admin sets one, and only a git repository under
//! an allowed root (the data folder's `repos/` plus the admin's `local_repo_roots`), never
//! the data folder, its parents or anything else inside it. The check reads the file system
//! (no process is spawned).

use std::path::{Path, PathBuf};

/// Whether `url` is a remote git URL (`https://`, `http://`, `ssh://`, `git://` or scp-like
/// `user@host:path`); everything else is treated as a path on this host.
pub fn is_remote(url: &str) -> bool {
    // `transport::address` runs a remote helper (`ext::` runs a command); no spaces either.
    if url.contains("::") || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        return ["https", "http", "ssh", "git"].contains(&scheme.to_ascii_lowercase().as_str())
            && !rest.is_empty()
            && !rest.starts_with('/');
    }
    // scp-like: `[user@]host:path`, the host holding no slash (git's own rule).
    match url.split_once(':') {
        Some((host, path)) => {
            !host.is_empty()
                && !host.contains('/')
                && !host.contains('\\')
                && !host.starts_with('-')
                && !path.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@.-_[]".contains(c))
        }
        None => false,
    }
}

/// The roots a local repository may live under: `<data>/repos` (when the data folder is
/// known) and the configured ones, canonicalized; roots that do not exist are skipped.
pub fn allowed_roots(data_dir: Option<&Path>, configured: &[String]) -> Vec<PathBuf> {
    data_dir
        .map(|d| d.join("repos"))
        .into_iter()
        .chain(configured.iter().map(PathBuf::from))
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect()
}

/// Checks a local repository an admin chose; the error is the message for a 400 naming
/// `agent.repo_url`.
pub fn check_local(
    url: &str,
    data_dir: Option<&Path>,
    roots: &[PathBuf],
) -> Result<PathBuf, String> {
    let raw = url.strip_prefix("file://").unwrap_or(url);
    if !raw.starts_with('/') {
        return Err(
            "agent.repo_url: must be a remote git URL (https://, ssh://, git://, user@host:path) \
             or an absolute path"
                .into(),
        );
    }
    let path = std::fs::canonicalize(raw)
        .map_err(|_| format!("agent.repo_url: {raw} does not exist on this host"))?;
    let is_git = path.join(".git").exists()
        || (path.join("HEAD").is_file() && path.join("objects").is_dir());
    if !is_git {
        return Err(format!("agent.repo_url: {raw} is not a git repository"));
    }
    if let Some(data) = data_dir.and_then(|d| std::fs::canonicalize(d).ok()) {
        let repos = data.join("repos");
        if data.starts_with(&path) || (path.starts_with(&data) && !path.starts_with(&repos)) {
            return Err(format!(
                "agent.repo_url: {raw} is or holds Apiary's data folder; keep repositories in {}",
                repos.display()
            ));
        }
    }
    if !roots.iter().any(|r| path.starts_with(r)) {
        let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(format!(
            "agent.repo_url: {raw} is not under an allowed folder ({}); an admin adds folders in \
             the settings' local_repo_roots",
            if shown.is_empty() {
                "none configured".to_string()
            } else {
                shown.join(", ")
            }
        ));
    }
    Ok(path)
}

/// Checks an admin's `local_repo_roots`: none may be the data folder or inside it (its
/// `repos/` is allowed anyway).
pub fn check_roots(data_dir: Option<&Path>, roots: &[String]) -> Result<(), String> {
    let Some(data) = data_dir.and_then(|d| std::fs::canonicalize(d).ok()) else {
        return Ok(());
    };
    for r in roots {
        let p = std::fs::canonicalize(r).unwrap_or_else(|_| PathBuf::from(r));
        if p.starts_with(&data) {
            return Err(format!(
                "local_repo_roots: {r} is inside Apiary's data folder (its repos/ is allowed already)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_are_told_from_paths() {
        for remote in [
            "https://github.com/acme/site.git",
            "http://git.local/x.git",
            "ssh://git@host/x.git",
            "git://host/x",
            "git@github.com:acme/site.git",
            "host:repo",
        ] {
            assert!(is_remote(remote), "{remote}");
        }
        for local in [
            "/srv/git/x.git",
            "file:///srv/git/x.git",
            "file://host/x",
            "./x",
            "x.git",
            "../data",
            "ext::sh -c touch% /tmp/pwned",
            "https:///etc",
            "/a:b",
            "-u:x",
            "",
        ] {
            assert!(!is_remote(local), "{local}");
        }
    }

    #[test]
    fn local_repositories_must_sit_under_a_root_and_outside_the_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let data = root.join("data");
        let mk = |p: &Path| {
            std::fs::create_dir_all(p.join("objects")).unwrap();
            std::fs::write(p.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        };
        std::fs::create_dir_all(data.join("repos")).unwrap();
        let inside = data.join("repos").join("a.git");
        mk(&inside);
        let secret = data.join("boxes").join("b.git");
        mk(&secret);
        let beside = root.join("c.git");
        mk(&beside);
        let plain = root.join("plain");
        std::fs::create_dir_all(&plain).unwrap();

        let default = allowed_roots(Some(&data), &[]);
        assert!(check_local(inside.to_str().unwrap(), Some(&data), &default).is_ok());
        assert!(check_local(
            &format!("file://{}", inside.display()),
            Some(&data),
            &default
        )
        .is_ok());
        let e = check_local(beside.to_str().unwrap(), Some(&data), &default).unwrap_err();
        assert!(e.contains("not under an allowed folder"), "{e}");

        let wide = allowed_roots(Some(&data), &[root.display().to_string()]);
        assert!(check_local(beside.to_str().unwrap(), Some(&data), &wide).is_ok());
        for bad in [&secret, &data, &root] {
            let e = check_local(bad.to_str().unwrap(), Some(&data), &wide).unwrap_err();
            assert!(
                e.contains("data folder") || e.contains("not a git"),
                "{bad:?}: {e}"
            );
        }
        mk(&data);
        let e = check_local(data.to_str().unwrap(), Some(&data), &wide).unwrap_err();
        assert!(e.contains("data folder"), "{e}");
        let e = check_local(plain.to_str().unwrap(), Some(&data), &wide).unwrap_err();
        assert!(e.contains("not a git repository"), "{e}");
        let e = check_local("relative.git", Some(&data), &wide).unwrap_err();
        assert!(e.contains("absolute path"), "{e}");

        assert!(check_roots(Some(&data), &[root.display().to_string()]).is_ok());
        assert!(check_roots(Some(&data), &[data.display().to_string()]).is_err());
        assert!(check_roots(Some(&data), &[data.join("boxes").display().to_string()]).is_err());
    }
}
