//! Noticing that the database file was deleted or replaced under a running store.
//!
//! An open file outlives its name: after `rm opcgw.redb` redb keeps committing into the
//! unlinked inode, every commit "succeeds", and everything written is lost when the process
//! ends. So the store remembers the device and inode of the file it opened and compares them
//! with what the path names before each write (one `stat`, microseconds beside a durable
//! commit).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::StorageError;

/// The device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    /// The identity of the file `path` names now.
    pub(super) fn of(path: &Path) -> io::Result<Self> {
        let meta = fs::metadata(path)?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Fails with [`StorageError::FileGone`] when `path` no longer names this file. Other
    /// errors of the `stat` (a permission change on the directory) are left to the write that
    /// follows, which reports them with its own context.
    pub(super) fn check(&self, path: &Path) -> Result<(), StorageError> {
        let what = match Self::of(path) {
            Ok(now) if now == *self => return Ok(()),
            Ok(_) => "was replaced by another file",
            Err(e) if e.kind() == io::ErrorKind::NotFound => "was deleted",
            Err(_) => return Ok(()),
        };
        Err(StorageError::FileGone {
            path: path.to_path_buf(),
            what,
        })
    }
}
