//! Who holds the database file: this process, another process, or nobody.
//!
//! redb's exclusive lock answers "somebody"; whether that somebody is this process matters. A
//! storage actor restarting after a crash may find the lock still held by the instance it
//! replaces, which lets go within moments: retry. Another opcgw sharing the file will not let go
//! until its operator stops it: refuse to start (the preflight below) or, if it took the file
//! while this process was restarting its storage, stop rather than retry forever.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use redb::{Builder, DatabaseError};

use super::error::{Holder, StorageError};
use super::guard;
use super::pidfile;

/// Paths this process has open, with how many stores hold each (a second in-process open
/// fails on the lock, but a reopen briefly overlaps with nothing).
static OPEN_HERE: Mutex<Option<HashMap<PathBuf, usize>>> = Mutex::new(None);

/// The key a path is registered under: the canonical path when it can be resolved, so that
/// `./data/x.redb` and its absolute form are one file.
fn key(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Records that a store of this process opened `path`; undone by dropping the returned guard.
pub(super) fn register(path: &Path) -> Registration {
    let key = key(path);
    let mut open = OPEN_HERE.lock().unwrap_or_else(PoisonError::into_inner);
    *open
        .get_or_insert_with(HashMap::new)
        .entry(key.clone())
        .or_default() += 1;
    Registration { key }
}

/// Keeps `path` registered as open in this process while it lives.
#[derive(Debug)]
pub(super) struct Registration {
    key: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = OPEN_HERE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(map) = open.as_mut() {
            if let Some(count) = map.get_mut(&self.key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&self.key);
                }
            }
        }
    }
}

/// Who holds `path`, given that its lock is taken.
pub(super) fn holder_of(path: &Path) -> Holder {
    let open = OPEN_HERE.lock().unwrap_or_else(PoisonError::into_inner);
    let here = open
        .as_ref()
        .is_some_and(|map| map.contains_key(&key(path)));
    if here {
        Holder::ThisProcess
    } else {
        Holder::OtherProcess
    }
}

/// Start-up preflight: fails with [`StorageError::Locked`] when another process holds the
/// database at `path`, so a second opcgw sharing it refuses to start instead of running
/// without storage. Everything else (no file yet, a damaged file) passes: the storage actor
/// creates or reports it, and the rest of the gateway runs meanwhile.
///
/// The probe opens the file read-only: it never writes, never repairs, and an exclusive writer
/// elsewhere makes it fail with `DatabaseAlreadyOpen`.
pub fn check_not_in_use(path: &Path) -> Result<(), StorageError> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    if !meta.is_file() || meta.len() == 0 {
        return Ok(());
    }
    let probe = guard::shield(path, || {
        match Builder::new().open_read_only(path) {
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                Err(StorageError::locked(path, pidfile::read(path)))
            }
            // Closed at once; any other failure is the storage actor's to report.
            _ => Ok(()),
        }
    });
    match probe {
        Err(error @ StorageError::Locked { .. }) => Err(error),
        _ => Ok(()),
    }
}
