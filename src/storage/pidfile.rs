//! The `{database}.pid` sidecar: who holds the database, for the "in use by pid N" message.
//!
//! redb's file lock is what excludes a second opcgw; this file only names the holder. It is
//! written after a successful open (temp file + fsync + rename + fsync of the directory, so a
//! reader never sees half a pid) and removed when the store is dropped. A stale file (after a
//! kill -9) is harmless: it is read only when the lock is actually held, and overwritten by the
//! next successful open.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A pid file longer than this is not ours: do not read it whole into a log line.
const MAX_PID_FILE_BYTES: u64 = 32;

/// The sidecar path of a database: `opcgw.redb` -> `opcgw.redb.pid`.
pub fn pid_path(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push(".pid");
    PathBuf::from(name)
}

/// Writes this process's pid next to the database, atomically.
pub fn write(database: &Path) -> io::Result<PathBuf> {
    let target = pid_path(database);
    let mut temp_name = OsString::from(target.as_os_str());
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let result = (|| {
        let mut file = File::create(&temp)?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        sync_parent(&target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| target)
}

/// The pid recorded next to a locked database, or "unknown".
pub fn read(database: &Path) -> String {
    let mut text = String::new();
    let read = File::open(pid_path(database))
        .and_then(|f| f.take(MAX_PID_FILE_BYTES).read_to_string(&mut text));
    match read.ok().and_then(|_| text.trim().parse::<u32>().ok()) {
        Some(pid) => pid.to_string(),
        None => "unknown".to_string(),
    }
}

/// Makes a rename or a new directory entry durable (POSIX: fsync the directory).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_file_round_trips_and_garbage_reads_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("opcgw.redb");
        assert_eq!(read(&db), "unknown");
        let written = write(&db).unwrap();
        assert_eq!(written, dir.path().join("opcgw.redb.pid"));
        assert_eq!(read(&db), std::process::id().to_string());
        fs::write(&written, "not a pid\n").unwrap();
        assert_eq!(read(&db), "unknown");
        fs::write(&written, "1".repeat(100)).unwrap();
        assert_eq!(read(&db), "unknown");
    }
}
