//! The OPC UA PKI directory: its layout, created with safe modes, and the start-up check that
//! refuses a private key others could read.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Subdirectories of the PKI directory and the mode each is created with. `private/` holds the
/// server key and is tightened to 0700 when found looser.
pub const PKI_DIRECTORIES: [(&str, u32); 4] = [
    ("own", 0o755),
    ("private", 0o700),
    ("trusted", 0o755),
    ("rejected", 0o755),
];

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot prepare PKI directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "private key {path} has mode {mode:04o}: it must be readable by its owner only; run `chmod 600 {path}` and `chmod 700 {dir}`",
        dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    KeyTooOpen { path: PathBuf, mode: u32 },
}

/// One directory of the layout and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiDirectory {
    pub path: PathBuf,
    pub mode: u32,
    pub created: bool,
    pub tightened: bool,
}

/// Creates the missing PKI subdirectories with their modes and tightens a loose `private/`.
pub fn ensure_pki_layout(pki_dir: &Path) -> Result<Vec<PkiDirectory>, PkiError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PkiError::Io { path, source }
    };
    let mut report = Vec::new();
    for (name, mode) in PKI_DIRECTORIES {
        let path = pki_dir.join(name);
        let created = !path.exists();
        if created {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(&path)
                .map_err(io(&path))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io(&path))?;
        }
        let current = std::fs::metadata(&path)
            .map_err(io(&path))?
            .permissions()
            .mode()
            & 0o7777;
        let tightened = name == "private" && current & 0o077 != 0;
        if tightened {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&path))?;
        }
        report.push(PkiDirectory {
            path,
            mode: if tightened { 0o700 } else { current },
            created,
            tightened,
        });
    }
    Ok(report)
}

/// Refuses a private key that group or others may read (any of the 0o077 bits). A missing key
/// is not an error here: the server reports it (or generates one in development).
pub fn check_private_key(path: &Path) -> Result<(), PkiError> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(PkiError::KeyTooOpen {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PkiError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_layout_is_created_with_its_modes_and_a_loose_private_dir_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let report = ensure_pki_layout(&pki).unwrap();
        assert!(report.iter().all(|d| d.created));
        for (name, expected) in PKI_DIRECTORIES {
            assert_eq!(mode(&pki.join(name)), expected, "{name}");
        }
        std::fs::set_permissions(pki.join("private"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let report = ensure_pki_layout(&pki).unwrap();
        assert!(report
            .iter()
            .any(|d| d.tightened && d.path.ends_with("private")));
        assert_eq!(mode(&pki.join("private")), 0o700);
    }

    #[test]
    fn a_readable_private_key_is_refused_with_the_mode_and_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("private.pem");
        assert!(
            check_private_key(&key).is_ok(),
            "missing is not this check's business"
        );
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----").unwrap();
        for ok in [0o600, 0o400] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(ok)).unwrap();
            assert!(check_private_key(&key).is_ok(), "{ok:o}");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = check_private_key(&key).unwrap_err().to_string();
        assert!(
            text.contains("0644") && text.contains("chmod 600") && text.contains("chmod 700"),
            "{text}"
        );
    }
}
