//! The `{database}.pid` sidecar: who holds the database, for the "in use by pid N" message.
//!
//! redb's file lock is what excludes a second opcgw; this file only names the holder. It is
//! written after a successful open (temp file + fsync + rename + fsync of the directory, so a
//! reader never sees half a pid) and removed when the store is dropped. A stale file (after a
//! kill -9) is harmless: it is read only when the lock is actually held, and overwritten by the
//! next successful open.
//!
//! The temporary file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`: the directory may be
//! writable by others (a shared data directory), and a symlink planted at the temporary name
//! must never make opcgw truncate and write the file it points to.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use super::file_identity::FileIdentity;

/// A pid file longer than this is not ours: do not read it whole into a log line.
const MAX_PID_FILE_BYTES: u64 = 32;

/// The pid is no secret: other users (an operator's shell) may read it.
const PID_FILE_MODE: u32 = 0o644;

/// The sidecar path of a database: `opcgw.redb` -> `opcgw.redb.pid`.
pub fn pid_path(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push(".pid");
    PathBuf::from(name)
}

/// The temporary name the pid file is written under: `opcgw.redb.pid.tmp-<pid>`.
fn temp_path(target: &Path) -> PathBuf {
    let mut name = OsString::from(target.as_os_str());
    name.push(format!(".tmp-{}", std::process::id()));
    PathBuf::from(name)
}

/// A pid file this process wrote.
#[derive(Debug)]
pub struct Written {
    path: PathBuf,
    identity: Option<FileIdentity>,
}

impl Written {
    /// Removes the file unless it was replaced meanwhile: after the database was deleted and
    /// reopened, the new store's pid file has the same name and must outlive the old store.
    pub fn remove_if_ours(self) {
        if self.identity.is_some() && FileIdentity::of(&self.path).ok() == self.identity {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes this process's pid next to the database, atomically.
pub fn write(database: &Path) -> io::Result<Written> {
    let target = pid_path(database);
    let temp = temp_path(&target);
    let result = (|| {
        let mut file = create_exclusive(&temp)?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        sync_parent(&target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| Written {
        identity: FileIdentity::of(&target).ok(),
        path: target,
    })
}

/// Creates `path` as a new file, never through a symlink. Whatever already sits at the name
/// (our own leftover after a crash, or something planted) is unlinked — the link itself, not
/// its target — and the creation tried once more.
fn create_exclusive(path: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .mode(PID_FILE_MODE)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            open()
        }
        other => other,
    }
}

/// The pid recorded next to a locked database, or "unknown".
pub fn read(database: &Path) -> String {
    let mut text = String::new();
    let read = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(pid_path(database))
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
        assert_eq!(written.path, dir.path().join("opcgw.redb.pid"));
        let written = written.path;
        assert_eq!(read(&db), std::process::id().to_string());
        fs::write(&written, "not a pid\n").unwrap();
        assert_eq!(read(&db), "unknown");
        fs::write(&written, "1".repeat(100)).unwrap();
        assert_eq!(read(&db), "unknown");
    }
    #[test]
    fn a_symlink_planted_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("opcgw.redb");
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        let planted = temp_path(&pid_path(&db));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();

        let written = write(&db).unwrap().path;
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(read(&db), std::process::id().to_string());
        assert!(!fs::symlink_metadata(&written)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(
            fs::symlink_metadata(&planted).is_err(),
            "the temporary name is gone after the rename"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&written).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !PID_FILE_MODE, 0, "mode {mode:o}");
    }

    #[test]
    fn a_symlink_at_the_pid_file_itself_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("opcgw.redb");
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, pid_path(&db)).unwrap();
        assert_eq!(read(&db), "unknown", "a pid is never read through a link");
        write(&db).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(read(&db), std::process::id().to_string());
    }
}
