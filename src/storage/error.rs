//! Storage errors: one enum, each variant naming the database path and what the operator can do.
//!
//! The actor, the OPC UA server, the web console and the control socket map errors through
//! [`StorageError::kind`], never by matching messages.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, coarsely: the one thing callers map to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageErrorKind {
    /// Another process (or another handle in this process) has the database open.
    Locked,
    /// The file is not an opcgw database, is truncated, or a row does not decode.
    Corrupt,
    /// The operating system refused an operation (permissions, disk full, read-only...).
    Io,
    /// The file was written by a newer opcgw.
    NewerSchema,
    /// History was asked for a series that was never stored (OPC UA `BadNodeIdUnknown`).
    UnknownSeries,
    /// The caller's request is invalid (an inverted range, a zero limit, an oversized value).
    InvalidQuery,
    /// A device already has as many unfinished commands as allowed (OPC UA
    /// `BadResourceUnavailable`); it accepts more once some complete.
    CommandQueueFull,
}

/// Who holds a locked database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Another handle in this process (an actor instance being replaced): it goes away soon.
    ThisProcess,
    /// Another process: waiting will not help until its operator stops it.
    OtherProcess,
}

/// An error of the storage library. The `Display` text is meant for an operator's log.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "database {path} is in use by another opcgw (pid {pid}): stop that instance, or point \
         [storage].database_path at another file"
    )]
    Locked {
        path: PathBuf,
        pid: String,
        holder: Holder,
    },

    #[error(
        "database {path} is corrupt or not an opcgw database ({detail}): move it aside \
         (mv {path} {path}.broken) to start with an empty database, or restore a backup"
    )]
    Corrupt { path: PathBuf, detail: String },

    /// The file at the path is no longer the one this store opened: whatever is written through
    /// the old handle would land in a deleted (or displaced) file and be lost.
    #[error(
        "database {path} {what} while opcgw was running: nothing more is written to the old \
         file; storage restarts and opens (or creates) {path} again. Restore a backup there if \
         the file was removed by mistake, and find what removed it"
    )]
    FileGone { path: PathBuf, what: &'static str },

    #[error("database {path}: cannot {action}: {source}; {}", io_advice(.path, .source))]
    Io {
        path: PathBuf,
        /// What was being done, as a verb phrase ("commit a batch of samples").
        action: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "database {path} was written by a newer opcgw (schema {found}, this binary knows \
         {known}): upgrade opcgw or restore a backup"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        known: u64,
    },

    #[error(
        "database {path} has no history for device {device_id:?} metric {metric:?}: check the \
         device id and metric name (nothing was ever stored for them)"
    )]
    UnknownSeries {
        path: PathBuf,
        device_id: String,
        metric: String,
    },

    #[error("database {path}: invalid request: {reason}; fix the request")]
    InvalidQuery { path: PathBuf, reason: String },

    #[error(
        "device {device_id:?} already has {limit} unfinished commands (queued or sent): wait for \
         them to be acknowledged, fail or expire, or raise [storage].max_queued_commands_per_device"
    )]
    CommandQueueFull {
        path: PathBuf,
        device_id: String,
        limit: usize,
    },
}

impl StorageError {
    pub fn kind(&self) -> StorageErrorKind {
        match self {
            Self::Locked { .. } => StorageErrorKind::Locked,
            Self::Corrupt { .. } => StorageErrorKind::Corrupt,
            Self::Io { .. } | Self::FileGone { .. } => StorageErrorKind::Io,
            Self::NewerSchema { .. } => StorageErrorKind::NewerSchema,
            Self::UnknownSeries { .. } => StorageErrorKind::UnknownSeries,
            Self::InvalidQuery { .. } => StorageErrorKind::InvalidQuery,
            Self::CommandQueueFull { .. } => StorageErrorKind::CommandQueueFull,
        }
    }

    /// The database file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Locked { path, .. }
            | Self::Corrupt { path, .. }
            | Self::FileGone { path, .. }
            | Self::Io { path, .. }
            | Self::NewerSchema { path, .. }
            | Self::UnknownSeries { path, .. }
            | Self::InvalidQuery { path, .. }
            | Self::CommandQueueFull { path, .. } => path,
        }
    }

    /// Whether another process holds the database, so retrying cannot help until an operator
    /// acts (as opposed to another handle of this process, released shortly).
    pub fn is_locked_by_another_process(&self) -> bool {
        matches!(
            self,
            Self::Locked {
                holder: Holder::OtherProcess,
                ..
            }
        )
    }

    /// Whether the store cannot go on and must be dropped and opened afresh: the file it has
    /// open is no longer the one at its path.
    pub fn requires_reopen_by_owner(&self) -> bool {
        matches!(self, Self::FileGone { .. })
    }

    pub(super) fn locked(path: &Path, pid: String) -> Self {
        Self::Locked {
            path: path.to_path_buf(),
            pid,
            holder: super::ownership::holder_of(path),
        }
    }

    pub(super) fn corrupt(path: &Path, detail: impl fmt::Display) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        }
    }

    pub(super) fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub(super) fn invalid(path: &Path, reason: impl fmt::Display) -> Self {
        Self::InvalidQuery {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// Translates a redb error met while doing `action`. `DatabaseAlreadyOpen` is handled by the
    /// open (it needs the pid file), so here it only reports a lock without a pid.
    pub(super) fn from_redb(path: &Path, action: &'static str, error: redb::Error) -> Self {
        match error {
            redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
                Self::locked(path, "unknown".to_string())
            }
            redb::Error::Corrupted(detail) => Self::corrupt(path, detail),
            // redb reports a file without its magic number as InvalidData ("Not a redb database").
            redb::Error::Io(source) if source.kind() == io::ErrorKind::InvalidData => {
                Self::corrupt(path, source)
            }
            redb::Error::Io(source) => Self::io(path, action, source),
            redb::Error::PreviousIo => Self::io(
                path,
                action,
                io::Error::other(
                    "an earlier write failed and the handle was closed for safety; the next \
                     write reopens it",
                ),
            ),
            redb::Error::UpgradeRequired(version) => Self::corrupt(
                path,
                format!("redb file format {version} is too old for this opcgw"),
            ),
            redb::Error::ValueTooLarge(len) => Self::invalid(
                path,
                format!("a value of {len} bytes is too large to store"),
            ),
            redb::Error::TableTypeMismatch { .. }
            | redb::Error::TypeDefinitionChanged { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_) => Self::corrupt(
                path,
                format!("not an opcgw database (unexpected table layout: {error})"),
            ),
            other => Self::io(path, action, io::Error::other(other.to_string())),
        }
    }

    /// Whether the redb handle may be unusable after this error, so the store should reopen it
    /// before the next write (redb latches every I/O failure until the database is reopened).
    pub(super) fn poisons_handle(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Corrupt { .. })
    }
}

/// Attaches the path and the action to any redb error.
pub(super) trait RedbResultExt<T> {
    fn at(self, path: &Path, action: &'static str) -> Result<T, StorageError>;
}

impl<T, E: Into<redb::Error>> RedbResultExt<T> for Result<T, E> {
    fn at(self, path: &Path, action: &'static str) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::from_redb(path, action, e.into()))
    }
}

/// What the operator can do about an I/O error, from its errno.
fn io_advice(path: &Path, error: &io::Error) -> String {
    use io::ErrorKind as K;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match error.kind() {
        K::PermissionDenied => format!(
            "check that the user running opcgw may read and write {} and its directory {}",
            path.display(),
            dir.display()
        ),
        K::ReadOnlyFilesystem => format!(
            "{} is on a read-only file system: point [storage].database_path at a writable place",
            dir.display()
        ),
        K::StorageFull | K::FileTooLarge | K::QuotaExceeded => {
            "free disk space (or raise the file size limit / quota); data committed before this \
             error is intact"
                .to_string()
        }
        K::IsADirectory => format!(
            "{} is a directory: [storage].database_path must name a file (e.g. {}/opcgw.redb)",
            path.display(),
            path.display()
        ),
        K::NotADirectory => format!(
            "a component of {} is not a directory: fix [storage].database_path",
            dir.display()
        ),
        _ => "check the disk and the file system; data committed before this error is intact"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_names_the_path_and_a_remedy() {
        let path = Path::new("/var/lib/opcgw/opcgw.redb");
        let errors = [
            StorageError::Locked {
                path: path.into(),
                pid: "42".into(),
                holder: Holder::OtherProcess,
            },
            StorageError::FileGone {
                path: path.into(),
                what: "was deleted",
            },
            StorageError::corrupt(path, "File truncated"),
            StorageError::io(
                path,
                "commit a batch of samples",
                io::Error::from_raw_os_error(28),
            ),
            StorageError::NewerSchema {
                path: path.into(),
                found: 3,
                known: 1,
            },
            StorageError::UnknownSeries {
                path: path.into(),
                device_id: "d".into(),
                metric: "m".into(),
            },
            StorageError::invalid(path, "limit must be > 0"),
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.contains("/var/lib/opcgw/opcgw.redb"), "{text}");
            assert_eq!(error.path(), path);
            assert!(
                [
                    "stop",
                    "Restore a backup",
                    "move it aside",
                    "free disk",
                    "upgrade",
                    "check",
                    "fix"
                ]
                .iter()
                .any(|remedy| text.contains(remedy)),
                "no remedy in: {text}"
            );
        }
    }

    #[test]
    fn redb_errors_map_to_kinds() {
        let path = Path::new("db.redb");
        let kind = |e: redb::Error| StorageError::from_redb(path, "read", e).kind();
        assert_eq!(
            kind(redb::Error::DatabaseAlreadyOpen),
            StorageErrorKind::Locked
        );
        assert_eq!(
            kind(redb::Error::Corrupted("x".into())),
            StorageErrorKind::Corrupt
        );
        assert_eq!(
            kind(redb::Error::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "Not a redb database"
            ))),
            StorageErrorKind::Corrupt
        );
        assert_eq!(
            kind(redb::Error::Io(io::Error::from_raw_os_error(27))),
            StorageErrorKind::Io
        );
        assert_eq!(kind(redb::Error::PreviousIo), StorageErrorKind::Io);
    }
}
