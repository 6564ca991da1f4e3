//! The code view: a read-only look at the box's workspace as it is now, through the control
//! plane (`GET /code/tree`, `GET /code/file?path=`). Each file is marked with how it differs:
//! `branch` (committed on the box's branch since the base), `uncommitted` (changed in the work
//! tree), `added` (new, not committed). Paths are relative to the workspace; a path that
//! leaves it, or passes through a link, is refused; links themselves are listed, never read.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::config::BoxAgentConfig;
use crate::git::Git;

/// Most files listed (then `truncated`).
pub const MAX_FILES: usize = 5000;
/// Most bytes of a file shown (then `truncated`).
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// One file of the workspace.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    /// `file` or `link`.
    pub kind: &'static str,
    /// How it differs from the base: `branch`, `uncommitted`, `added`, or none.
    pub change: Option<&'static str>,
}

/// Why a file cannot be shown: (HTTP status, message).
pub type Refusal = (u16, String);

/// How each changed path differs, from git (the box's own git, outside the workspace).
async fn changes(cfg: &BoxAgentConfig, ws: &Path) -> BTreeMap<String, &'static str> {
    let git = Git::new(cfg);
    let mut out = BTreeMap::new();
    let base = format!("refs/remotes/origin/{}", cfg.base_branch);
    if let Ok(names) = git
        .run(
            Some(ws),
            &["diff", "--name-only", "-z", &format!("{base}...HEAD")],
        )
        .await
    {
        for p in names.split('\0').filter(|p| !p.is_empty()) {
            out.insert(p.to_string(), "branch");
        }
    }
    if let Ok(status) = git
        .run(
            Some(ws),
            &["status", "--porcelain=v1", "-z", "--untracked-files=all"],
        )
        .await
    {
        let mut items = status.split('\0');
        while let Some(item) = items.next() {
            if item.len() < 4 {
                continue;
            }
            let (code, path) = item.split_at(3);
            // A rename names its source next: skip it.
            if code.starts_with('R') || code.starts_with('C') {
                items.next();
            }
            let change = if code.starts_with("??") {
                "added"
            } else {
                "uncommitted"
            };
            out.insert(path.to_string(), change);
        }
    }
    out
}

/// The workspace's files (no `.git`, no `.apiary`), sorted, at most [`MAX_FILES`].
pub async fn tree(cfg: &BoxAgentConfig, ws: &Path) -> (Vec<Entry>, bool) {
    let marks = changes(cfg, ws).await;
    let mut out = Vec::new();
    let mut truncated = false;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(read) = std::fs::read_dir(ws.join(&rel)) else {
            continue;
        };
        for e in read.flatten() {
            let name = e.file_name();
            if rel.as_os_str().is_empty() && (name == ".git" || name == ".apiary") {
                continue;
            }
            let path = rel.join(&name);
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if out.len() >= MAX_FILES {
                truncated = true;
                continue;
            }
            let shown = path.to_string_lossy().to_string();
            out.push(Entry {
                change: marks.get(&shown).copied(),
                path: shown,
                size: meta.len(),
                kind: if meta.file_type().is_symlink() {
                    "link"
                } else {
                    "file"
                },
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    (out, truncated)
}

/// A file's text (`None` when it is not UTF-8: binary), whether it was cut, and its change.
pub async fn file(
    cfg: &BoxAgentConfig,
    ws: &Path,
    rel: &str,
) -> Result<(Option<String>, u64, bool, Option<&'static str>), Refusal> {
    let bad = || (400, format!("{rel:?} is not a path in the workspace"));
    let path = Path::new(rel);
    if rel.is_empty()
        || rel.len() > 4096
        || !path.components().all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(bad());
    }
    // No link on the way: the file must really be inside the workspace.
    let mut at = ws.to_path_buf();
    for c in path.components() {
        at.push(c);
        let meta = at
            .symlink_metadata()
            .map_err(|_| (404, format!("no file {rel:?}")))?;
        if meta.file_type().is_symlink() {
            return Err((
                400,
                format!("{rel:?} passes through a link; links are not followed"),
            ));
        }
    }
    let meta = at
        .symlink_metadata()
        .map_err(|_| (404, format!("no file {rel:?}")))?;
    if !meta.is_file() {
        return Err((400, format!("{rel:?} is not a file")));
    }
    let mut bytes = Vec::new();
    use std::io::Read;
    std::fs::File::open(&at)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| (500, format!("reading {rel:?}: {e}")))?;
    let truncated = bytes.len() > MAX_FILE_BYTES;
    bytes.truncate(MAX_FILE_BYTES);
    let text = match String::from_utf8(bytes) {
        Ok(t) => Some(t),
        // Cut inside a character: keep what is whole.
        Err(e) if truncated && e.utf8_error().error_len().is_none() => {
            let valid = e.utf8_error().valid_up_to();
            let mut b = e.into_bytes();
            b.truncate(valid);
            String::from_utf8(b).ok()
        }
        Err(_) => None,
    };
    let change = changes(cfg, ws).await.get(rel).copied();
    Ok((text, meta.len(), truncated, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(box_dir: &Path) -> BoxAgentConfig {
        let vars = std::collections::HashMap::from([
            ("APIARY_URL", "http://127.0.0.1:9".to_string()),
            ("APIARY_TASK_ID", "t1".to_string()),
            ("APIARY_CALLBACK_TOKEN", "c".to_string()),
            ("APIARY_CONTROL_TOKEN", "k".to_string()),
            ("APIARY_REPO_URL", "https://example.test/r.git".to_string()),
            ("APIARY_BASE_BRANCH", "main".to_string()),
            ("APIARY_BRANCH", "apiary/t1".to_string()),
            ("APIARY_AGENT_COMMAND", "true".to_string()),
            ("APIARY_BOX_DIR", box_dir.display().to_string()),
        ]);
        BoxAgentConfig::from_vars(|k| vars.get(k).cloned()).unwrap()
    }

    #[tokio::test]
    async fn the_code_view_shows_workspace_files_and_nothing_through_a_link_or_outside() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::create_dir_all(ws.join(".apiary")).unwrap();
        std::fs::write(ws.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(ws.join(".apiary/SPEC.md"), "# Spec\n").unwrap();
        std::fs::write(ws.join("blob.bin"), [0xff, 0xfe, 0x00]).unwrap();
        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, "box token").unwrap();
        std::os::unix::fs::symlink(&secret, ws.join("leak")).unwrap();
        std::os::unix::fs::symlink(dir.path(), ws.join("up")).unwrap();
        let cfg = cfg(dir.path());

        let (files, truncated) = tree(&cfg, &ws).await;
        assert!(!truncated);
        let names: Vec<(&str, &str)> = files.iter().map(|f| (f.path.as_str(), f.kind)).collect();
        assert_eq!(
            names,
            vec![
                ("blob.bin", "file"),
                ("leak", "link"),
                ("src/main.rs", "file"),
                ("up", "link")
            ]
        );

        let (text, size, cut, _) = file(&cfg, &ws, "src/main.rs").await.unwrap();
        assert_eq!(
            (text.as_deref(), size, cut),
            (Some("fn main() {}\n"), 13, false)
        );
        assert_eq!(
            file(&cfg, &ws, "blob.bin").await.unwrap().0,
            None,
            "binary: no text"
        );
        for (bad, status) in [
            ("leak", 400),
            ("up/secret.txt", 400),
            ("../secret.txt", 400),
            ("/etc/passwd", 400),
            ("src", 400),
            ("nope.txt", 404),
            ("", 400),
        ] {
            let got = file(&cfg, &ws, bad).await.unwrap_err();
            assert_eq!(got.0, status, "{bad}: {got:?}");
        }
    }
}
