//! The config file on disk: its content hash (to notice edits made behind the gateway's back),
//! atomic replacement, and whether the gateway may write it at all.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{EditError, EditingStatus};

/// SHA-256 of a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentHash([u8; 32]);

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

pub fn content_hash(bytes: &[u8]) -> ContentHash {
    ContentHash(Sha256::digest(bytes).into())
}

/// The file a write to `path` replaces: a symbolic link is followed, so the link stays a link.
fn target_of(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary file name in `dir`, unique to this process and call, hidden from `ls`.
fn temp_path(dir: &Path, target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// Replaces the file at `path` with `bytes` so that a crash at any moment leaves either the old
/// file or the new one, whole: the bytes go to a temporary file in the same directory (same
/// file system, so the rename is atomic), which takes the old file's mode (and owner, when the
/// process may set it) and is flushed to disk before it is renamed over the old file; the
/// directory is then flushed so the rename itself survives a power loss.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EditError> {
    let target = target_of(path);
    let dir = directory_of(&target);
    let fail = |what: &str, err: std::io::Error| {
        EditError::Io(format!(
            "cannot {what} {}: {err}; the configuration file was not changed",
            target.display()
        ))
    };
    let old = fs::metadata(&target).ok();
    let mode = old
        .as_ref()
        .map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let temp = temp_path(&dir, &target);
    let written = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // The umask may have narrowed the mode at creation.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(old) = &old {
            // Only root may give a file away; another user keeps owning what it writes.
            let _ = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()));
        }
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(fail("write a temporary file beside", err));
    }
    if let Err(err) = fs::rename(&temp, &target) {
        let _ = fs::remove_file(&temp);
        return Err(fail("replace", err));
    }
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|err| {
        EditError::Io(format!(
            "replaced {} but could not flush its directory {}: {err}",
            target.display(),
            dir.display()
        ))
    })
}

/// Whether the console may edit the file at `path`, and why not.
///
/// Both the permission bits and the file system are asked, because neither alone is honest:
/// root passes every access(2) check, yet a file marked read-only (no write bit at all) says
/// the operator does not want it changed; and a read-only mount refuses writes whatever the
/// bits say, which only an actual attempt shows (a temporary file created and removed in the
/// directory, the file opened for writing without changing it).
pub fn editing_status(path: &Path) -> EditingStatus {
    match why_not_writable(path) {
        None => EditingStatus {
            enabled: true,
            reason: None,
        },
        Some(reason) => EditingStatus {
            enabled: false,
            reason: Some(reason),
        },
    }
}

fn why_not_writable(path: &Path) -> Option<String> {
    let target = target_of(path);
    let dir = directory_of(&target);
    let meta = match fs::metadata(&target) {
        Ok(meta) => meta,
        Err(err) => return Some(format!("cannot read {}: {err}", target.display())),
    };
    if !meta.is_file() {
        return Some(format!("{} is not a regular file", target.display()));
    }
    if let Some(reason) = mode_refuses(&target, &meta, "the configuration file") {
        return Some(reason);
    }
    match fs::metadata(&dir) {
        Ok(dir_meta) => {
            if let Some(reason) = mode_refuses(&dir, &dir_meta, "its directory") {
                return Some(reason);
            }
        }
        Err(err) => {
            return Some(format!(
                "cannot read the directory {}: {err}",
                dir.display()
            ))
        }
    }
    if let Err(err) = OpenOptions::new().write(true).open(&target) {
        return Some(format!(
            "{} cannot be opened for writing: {err}",
            target.display()
        ));
    }
    let probe = temp_path(&dir, &target);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            None
        }
        Err(err) => Some(format!(
            "no file can be created in {} (edits replace the file through a temporary file \
             beside it): {err}",
            dir.display()
        )),
    }
}

/// The write bit that applies to this process (owner, group or other), and for root any write
/// bit: a file nobody may write is read-only on purpose.
fn mode_refuses(path: &Path, meta: &fs::Metadata, what: &str) -> Option<String> {
    let mode = meta.permissions().mode();
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let writable = if euid == 0 {
        mode & 0o222 != 0
    } else if meta.uid() == euid {
        mode & 0o200 != 0
    } else if meta.gid() == egid {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    };
    (!writable).then(|| {
        format!(
            "{what} {} is read-only (mode {:04o}); make it writable for the gateway's user and \
             reload to edit from the console",
            path.display(),
            mode & 0o7777
        )
    })
}
