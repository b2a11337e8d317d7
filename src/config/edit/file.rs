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

/// Removes the temporary files a killed process left beside the config file at `path` (a
/// write interrupted between creating its temporary file and the rename). Only names of the
/// form [`write_atomic`] uses, written by another process, and only regular files; returns how
/// many went.
pub fn remove_stale_temps(path: &Path) -> usize {
    let target = target_of(path);
    let dir = directory_of(&target);
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return 0;
    };
    let prefix = format!(".{name}.");
    let own_pid = std::process::id().to_string();
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut removed = 0;
    // A directory holding a config file is small; the bound is a guard, not a limit in use.
    for entry in entries.flatten().take(10_000) {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(middle) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some((pid, random)) = middle.split_once('.') else {
            continue;
        };
        let ours = pid.bytes().all(|b| b.is_ascii_digit())
            && !pid.is_empty()
            && random.len() == 16
            && random.bytes().all(|b| b.is_ascii_hexdigit());
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if ours && regular && pid != own_pid && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Replaces the file at `path` with `bytes` so that a crash at any moment leaves either the old
/// file or the new one, whole: the bytes go to a temporary file in the same directory (same
/// file system, so the rename is atomic), which takes the old file's mode (and owner, when the
/// process may set it) and is flushed to disk before it is renamed over the old file; the
/// directory is then flushed so the rename itself survives a power loss.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EditError> {
    replace_atomically(path, bytes).map_err(|failure| {
        let target = failure.target.display();
        let err = &failure.error;
        EditError::Io(match failure.step {
            AtomicStep::SyncDirectory => {
                format!("replaced {target} but could not flush its directory: {err}")
            }
            step => format!(
                "cannot {} {target}: {err}; the configuration file was not changed",
                step.as_str()
            ),
        })
    })
}

/// Which step of [`replace_atomically`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicStep {
    /// Writing the temporary file (the old file is untouched).
    WriteTemporary,
    /// Renaming it over the old file (the old file is untouched).
    Replace,
    /// Flushing the directory after the rename (the new file is in place).
    SyncDirectory,
}

impl AtomicStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WriteTemporary => "write a temporary file beside",
            Self::Replace => "replace",
            Self::SyncDirectory => "flush the directory of",
        }
    }
}

/// Why [`replace_atomically`] failed.
#[derive(Debug)]
pub struct AtomicWriteError {
    pub step: AtomicStep,
    pub target: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for AtomicWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.step.as_str(),
            self.target.display(),
            self.error
        )
    }
}

/// The atomic replacement [`write_atomic`] describes, for any file the gateway keeps (the
/// configuration, the discovered topology).
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    let target = target_of(path);
    let dir = directory_of(&target);
    let fail = |step, error| AtomicWriteError {
        step,
        target: target.clone(),
        error,
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
        return Err(fail(AtomicStep::WriteTemporary, err));
    }
    if let Err(err) = fs::rename(&temp, &target) {
        let _ = fs::remove_file(&temp);
        return Err(fail(AtomicStep::Replace, err));
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|err| fail(AtomicStep::SyncDirectory, err))
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
