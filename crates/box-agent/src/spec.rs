//! Where a spec comes from (DESIGN §4): the file `.apiary/SPEC.md` the agent was asked to write
//! in the workspace, or its output when there is no such file. `.apiary/` is excluded from git
//! (see `git::prepare`), so the spec is never committed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The spec file, relative to the workspace.
pub const SPEC_FILE: &str = ".apiary/SPEC.md";

/// The spec file in `workspace`.
pub fn path(workspace: &Path) -> PathBuf {
    workspace.join(SPEC_FILE)
}

/// Readies the spec file before a run and returns what it held then. A first spec starts from
/// no file; a revision starts from the current spec, so an agent that edits files can edit it
/// in place.
pub fn prepare(workspace: &Path, current: Option<&str>) -> Result<Option<String>> {
    let file = path(workspace);
    match current.filter(|s| !s.trim().is_empty()) {
        None => {
            if file.exists() {
                std::fs::remove_file(&file).context("removing the old .apiary/SPEC.md")?;
            }
            Ok(None)
        }
        Some(spec) => {
            std::fs::create_dir_all(file.parent().expect("a parent"))
                .context("creating .apiary/")?;
            std::fs::write(&file, spec).context("writing .apiary/SPEC.md")?;
            Ok(Some(spec.to_string()))
        }
    }
}

/// The spec a run produced: the file when the agent wrote or changed it, else its output when
/// it printed any, else the file as it stands; `None` when there is nothing at all.
pub fn choose(before: Option<&str>, after: Option<String>, stdout: &str) -> Option<String> {
    let after = after.filter(|s| !s.trim().is_empty());
    match after {
        Some(file) if before != Some(file.as_str()) => Some(file),
        _ if !stdout.trim().is_empty() => Some(stdout.to_string()),
        file => file,
    }
}

/// Reads the spec file after a run and picks the spec (see [`choose`]).
pub fn collect(workspace: &Path, before: Option<&str>, stdout: &str) -> Option<String> {
    choose(
        before,
        std::fs::read_to_string(path(workspace)).ok(),
        stdout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_wins_over_the_output() {
        let ws = tempfile::tempdir().unwrap();
        assert_eq!(prepare(ws.path(), None).unwrap(), None);
        std::fs::create_dir_all(ws.path().join(".apiary")).unwrap();
        std::fs::write(path(ws.path()), "# Spec from the file\n").unwrap();
        assert_eq!(
            collect(ws.path(), None, "chatter on stdout").as_deref(),
            Some("# Spec from the file\n")
        );
    }

    #[test]
    fn without_a_file_the_output_is_the_spec() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join(".apiary")).unwrap();
        std::fs::write(path(ws.path()), "stale spec of an earlier run").unwrap();
        // A first spec never picks up a stale file.
        prepare(ws.path(), None).unwrap();
        assert_eq!(
            collect(ws.path(), None, "# Spec on stdout\n").as_deref(),
            Some("# Spec on stdout\n")
        );
        assert_eq!(collect(ws.path(), None, " \n"), None);
        assert_eq!(choose(None, Some("  ".into()), ""), None);
    }

    #[test]
    fn a_revision_starts_from_the_current_spec() {
        let ws = tempfile::tempdir().unwrap();
        let before = prepare(ws.path(), Some("v1")).unwrap();
        assert_eq!(std::fs::read_to_string(path(ws.path())).unwrap(), "v1");
        // Edited in place: the file.
        assert_eq!(
            choose(before.as_deref(), Some("v2".into()), "done").as_deref(),
            Some("v2")
        );
        // Untouched file, the revision printed: the output.
        assert_eq!(
            choose(before.as_deref(), Some("v1".into()), "v2 printed").as_deref(),
            Some("v2 printed")
        );
        // Untouched and silent: the spec as it stands.
        assert_eq!(
            choose(before.as_deref(), Some("v1".into()), "").as_deref(),
            Some("v1")
        );
    }
}
