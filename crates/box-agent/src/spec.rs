//! Where a spec comes from (DESIGN §4): the file `.apiary/SPEC.md` the agent was asked to write
//! in the workspace, or its output when there is no such file. `.apiary/` is excluded from git
//! (see `git::prepare`), so the spec is never committed.

//!
//! The workspace belongs to the agent, and the box agent runs outside the agent's sandbox: a
//! `.apiary` or `SPEC.md` that is a symbolic link (to `/proc/self/environ`, say, or to a file
//! of the box) would make the box read or write whatever the link names. So the spec is only
//! ever opened relative to the workspace, one component at a time, without following links;
//! it must be a regular file of at most [`MAX_SPEC_BYTES`].

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use apiary_core::callback::MAX_SPEC_BYTES;

/// The spec file, relative to the workspace.
pub const SPEC_FILE: &str = ".apiary/SPEC.md";
const DIR: &str = ".apiary";
const FILE: &str = "SPEC.md";

/// The spec file in `workspace`.
#[cfg(test)]
pub fn path(workspace: &Path) -> PathBuf {
    workspace.join(SPEC_FILE)
}

fn c(name: &str) -> CString {
    CString::new(name).expect("no NUL in a constant name")
}

/// `openat(2)` that never follows a link in its last component; `Err` carries errno.
fn open_at(
    dir: Option<&OwnedFd>,
    name: &CString,
    flags: i32,
    mode: u32,
) -> std::io::Result<OwnedFd> {
    let base = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `name` is a valid C string; a returned descriptor is owned by nobody else.
    let fd = unsafe { libc::openat(base, name.as_ptr(), flags, mode) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unlink_at(dir: &OwnedFd, name: &CString, flags: i32) -> std::io::Result<()> {
    // SAFETY: a valid descriptor and C string.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(e);
        }
    }
    Ok(())
}

fn is_link_or_not_dir(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}

/// The workspace's `.apiary` folder, opened without following links. With `create`, a missing
/// folder is made and a link or file standing in its place is removed first; without it, a
/// missing folder is `None` and a link is refused.
fn spec_dir(workspace: &Path, create: bool) -> Result<Option<OwnedFd>> {
    let ws_path = CString::new(workspace.as_os_str().as_bytes()).context("workspace path")?;
    let ws = open_at(None, &ws_path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .with_context(|| format!("opening the workspace {}", workspace.display()))?;
    let dir = c(DIR);
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    match open_at(Some(&ws), &dir, flags, 0) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => Ok(None),
        Err(e) if !create && is_link_or_not_dir(&e) => {
            bail!("{DIR} in the workspace is a symbolic link or not a folder: refused")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || is_link_or_not_dir(&e) => {
            unlink_at(&ws, &dir, 0).context("removing what stands in place of .apiary/")?;
            // SAFETY: a valid descriptor and C string.
            if unsafe { libc::mkdirat(ws.as_raw_fd(), dir.as_ptr(), 0o755) } < 0 {
                return Err(std::io::Error::last_os_error()).context("creating .apiary/");
            }
            Ok(Some(
                open_at(Some(&ws), &dir, flags, 0).context("opening .apiary/")?,
            ))
        }
        Err(e) => Err(e).context("opening .apiary/"),
    }
}

/// Reads the spec file: `None` when there is none; an error when it is a link, not a regular
/// file, or larger than [`MAX_SPEC_BYTES`].
pub fn read(workspace: &Path) -> Result<Option<String>> {
    let Some(dir) = spec_dir(workspace, false)? else {
        return Ok(None);
    };
    let flags = libc::O_RDONLY | libc::O_NONBLOCK;
    let fd = match open_at(Some(&dir), &c(FILE), flags, 0) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            bail!("{SPEC_FILE} is a symbolic link: refused")
        }
        Err(e) => return Err(e).context(format!("opening {SPEC_FILE}")),
    };
    let mut file = std::fs::File::from(fd);
    let meta = file.metadata().context("reading the spec file's type")?;
    if !meta.file_type().is_file() {
        bail!("{SPEC_FILE} is not a regular file: refused");
    }
    if meta.len() > MAX_SPEC_BYTES as u64 {
        bail!("{SPEC_FILE} is larger than {MAX_SPEC_BYTES} bytes");
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_SPEC_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .context("reading the spec file")?;
    if bytes.len() > MAX_SPEC_BYTES {
        bail!("{SPEC_FILE} is larger than {MAX_SPEC_BYTES} bytes");
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| anyhow!("{SPEC_FILE} is not UTF-8 text"))
}

/// Readies the spec file before a run and returns what it held then. A first spec starts from
/// no file; a revision starts from the current spec, so an agent that edits files can edit it
/// in place. The file is always made anew (never written through what stands there).
pub fn prepare(workspace: &Path, current: Option<&str>) -> Result<Option<String>> {
    let dir = spec_dir(workspace, true)?.expect("created");
    let file = c(FILE);
    unlink_at(&dir, &file, 0).context("removing the old .apiary/SPEC.md")?;
    match current.filter(|s| !s.trim().is_empty()) {
        None => Ok(None),
        Some(spec) => {
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
            let fd =
                open_at(Some(&dir), &file, flags, 0o644).context("creating .apiary/SPEC.md")?;
            std::fs::File::from(fd)
                .write_all(spec.as_bytes())
                .context("writing .apiary/SPEC.md")?;
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

/// Reads the spec file after a run and picks the spec (see [`choose`]); a spec file that is a
/// link or not a regular file fails the run.
pub fn collect(workspace: &Path, before: Option<&str>, stdout: &str) -> Result<Option<String>> {
    Ok(choose(before, read(workspace)?, stdout))
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
            collect(ws.path(), None, "chatter on stdout")
                .unwrap()
                .as_deref(),
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
            collect(ws.path(), None, "# Spec on stdout\n")
                .unwrap()
                .as_deref(),
            Some("# Spec on stdout\n")
        );
        assert_eq!(collect(ws.path(), None, " \n").unwrap(), None);
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

    #[test]
    fn a_linked_spec_is_never_read_through() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("environ");
        std::fs::write(&secret, "APIARY_CALLBACK_TOKEN=stolen").unwrap();
        std::fs::create_dir_all(ws.path().join(".apiary")).unwrap();
        // The file a link ...
        std::os::unix::fs::symlink("/proc/self/environ", path(ws.path())).unwrap();
        let err = collect(ws.path(), None, "out").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        std::fs::remove_file(path(ws.path())).unwrap();
        std::os::unix::fs::symlink(&secret, path(ws.path())).unwrap();
        assert!(collect(ws.path(), None, "out").is_err());
        // ... the folder a link ...
        std::fs::remove_dir_all(ws.path().join(".apiary")).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join(".apiary")).unwrap();
        std::fs::rename(&secret, outside.path().join("SPEC.md")).unwrap();
        let err = collect(ws.path(), None, "out").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        // ... a FIFO (which would hang a plain read) and an oversized file.
        std::fs::remove_file(ws.path().join(".apiary")).unwrap();
        std::fs::create_dir(ws.path().join(".apiary")).unwrap();
        let fifo = CString::new(path(ws.path()).as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let err = collect(ws.path(), None, "out").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::remove_file(path(ws.path())).unwrap();
        std::fs::write(path(ws.path()), "x".repeat(MAX_SPEC_BYTES + 1)).unwrap();
        let err = collect(ws.path(), None, "out").unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn a_revision_never_writes_through_a_link() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("state.json");
        std::fs::write(&target, "the box's own file").unwrap();
        // SPEC.md a link to a file outside the workspace.
        std::fs::create_dir_all(ws.path().join(".apiary")).unwrap();
        std::os::unix::fs::symlink(&target, path(ws.path())).unwrap();
        prepare(ws.path(), Some("v1")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "the box's own file"
        );
        assert_eq!(read(ws.path()).unwrap().as_deref(), Some("v1"));
        // .apiary a link to a folder outside.
        std::fs::remove_dir_all(ws.path().join(".apiary")).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join(".apiary")).unwrap();
        prepare(ws.path(), Some("v2")).unwrap();
        assert!(!outside.path().join("SPEC.md").exists());
        assert_eq!(read(ws.path()).unwrap().as_deref(), Some("v2"));
        // A first spec removes a link rather than what it points at.
        std::fs::remove_file(path(ws.path())).unwrap();
        std::os::unix::fs::symlink(&target, path(ws.path())).unwrap();
        prepare(ws.path(), None).unwrap();
        assert!(target.exists());
        assert_eq!(read(ws.path()).unwrap(), None);
    }
}
