//! Secrets read from files: the file must be a regular file readable by its owner only.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// Reads a secret from `path`, refusing files that group or others may read (any of the
/// 0o077 bits) so a token never sits world-readable on disk. Surrounding whitespace (the
/// trailing newline editors add) is trimmed.
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    let io = |source| SecretFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(SecretFileError::NotAFile {
            path: path.to_path_buf(),
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
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_SECRET_FILE_BYTES + 1)
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
}
