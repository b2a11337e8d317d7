//! Secrets read from files: the file must be a regular file, not a symlink, owned by the user
//! running opcgw (or root), and readable by its owner only.
//!
//! Everything is checked on the descriptor that is then read (`fstat`, not `stat` then `open`),
//! so the file cannot be swapped between the check and the read. The last path component is
//! opened with `O_NOFOLLOW`: a symlink planted at the configured path (in a directory someone
//! else can write) would otherwise hand opcgw whatever file it points to.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

/// A secret file larger than this is not a token or password; refuse it rather than read it.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error(
        "{path} is a symbolic link, which secret files may not be (anyone able to replace it \
         could point opcgw at another file); name the real file in the configuration, or copy \
         it there (in Kubernetes, mount the secret with subPath or use the environment variable)"
    )]
    Symlink { path: PathBuf },
    #[error(
        "{path} belongs to uid {owner}, but opcgw runs as uid {uid}; a secret file must belong \
         to the user running opcgw or to root: run `chown {uid} {path}`"
    )]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error(
        "{path} has mode {mode:04o} and is readable by group or others; run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path} is larger than {MAX_SECRET_FILE_BYTES} bytes; it must hold only the secret")]
    TooLarge { path: PathBuf },
    #[error("{path} is not valid UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("{path} is empty")]
    Empty { path: PathBuf },
}

/// Opens `path` for reading without following a symlink in its last component, and without
/// blocking on a FIFO planted there (the type check that follows refuses it).
fn open_no_follow(path: &Path) -> Result<File, SecretFileError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path);
    opened.map_err(|source| {
        // ELOOP is how the kernel reports O_NOFOLLOW meeting a symlink.
        if source.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32)
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        {
            SecretFileError::Symlink {
                path: path.to_path_buf(),
            }
        } else {
            SecretFileError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Reads a secret from `path`, refusing a symlink, a file owned by another user (root
/// excepted), and a file that group or others may read (any of the 0o077 bits), so a token
/// never sits world-readable on disk or comes from a file someone else controls. Surrounding
/// whitespace (the trailing newline editors add) is trimmed.
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    let io = |source| SecretFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = open_no_follow(path)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SecretFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(SecretFileError::WrongOwner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn an_owner_only_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "token", "s3cret\n", 0o600);
        assert_eq!(read_secret_file(&path).unwrap(), "s3cret");
        let path = write(dir.path(), "token-ro", "s3cret", 0o400);
        assert_eq!(read_secret_file(&path).unwrap(), "s3cret");
    }

    #[test]
    fn a_group_or_world_readable_file_is_refused_with_the_chmod_recipe() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = write(dir.path(), "token", "s3cret", mode);
            let err = read_secret_file(&path).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, SecretFileError::TooOpen { .. }),
                "{mode:o}: {text}"
            );
            assert!(
                text.contains(&format!("{mode:04o}")) && text.contains("chmod 600"),
                "{text}"
            );
            assert!(!text.contains("s3cret"));
        }
    }

    #[test]
    fn missing_empty_and_oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_secret_file(&dir.path().join("nope")),
            Err(SecretFileError::Io { .. })
        ));
        let empty = write(dir.path(), "empty", " \n", 0o600);
        assert!(matches!(
            read_secret_file(&empty),
            Err(SecretFileError::Empty { .. })
        ));
        let big = write(dir.path(), "big", &"x".repeat(70_000), 0o600);
        assert!(matches!(
            read_secret_file(&big),
            Err(SecretFileError::TooLarge { .. })
        ));
        assert!(matches!(
            read_secret_file(dir.path()),
            Err(SecretFileError::NotAFile { .. })
        ));
    }
    #[test]
    fn a_symlink_is_refused_even_to_a_good_file_and_its_target_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let target = write(dir.path(), "real-token", "s3cret-behind-the-link", 0o600);
        let link = dir.path().join("token");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = read_secret_file(&link).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SecretFileError::Symlink { .. }), "{text}");
        assert!(
            text.contains(&link.display().to_string()) && text.contains("symbolic link"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        // A dangling link is a symlink too, not a missing file that opcgw may create.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(
            read_secret_file(&dangling),
            Err(SecretFileError::Symlink { .. })
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("token");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(
            read_secret_file(&fifo),
            Err(SecretFileError::NotAFile { .. })
        ));
    }

    #[test]
    fn a_file_of_another_user_is_refused_but_root_owned_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "token", "s3cret", 0o600);
        if !nix::unistd::geteuid().is_root() {
            // Only root can give a file away; as a normal user the owner is always us.
            assert_eq!(read_secret_file(&path).unwrap(), "s3cret");
            return;
        }
        std::os::unix::fs::chown(&path, Some(65_534), None).unwrap();
        let err = read_secret_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                SecretFileError::WrongOwner {
                    owner: 65_534,
                    uid: 0,
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains("chown 0") && !text.contains("s3cret"),
            "{text}"
        );
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        assert_eq!(read_secret_file(&path).unwrap(), "s3cret");
    }
}
