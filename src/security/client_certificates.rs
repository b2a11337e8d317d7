//! Client certificates in the OPC UA PKI directory, as the console manages them: the files of
//! `trusted/` and `rejected/`, and trusting, rejecting or deleting one by its thumbprint.
//!
//! The rules follow what async-opcua's `CertificateStore` does at every CreateSession on a
//! secured endpoint (it reads the disk each time, nothing is cached, so a change here applies
//! to the next connection without a restart):
//! - the thumbprint is the SHA-1 of the certificate's DER form, in lower-case hex;
//! - the store looks only for `<dir>/<CN> [<thumbprint>].der` (or `<thumbprint>.der` without a
//!   common name), the name [`CertificateStore::cert_file_name`] gives, and compares its DER
//!   with the presented certificate;
//! - `rejected/<that name>` is checked first and wins; then `trusted/<that name>` must exist.
//!
//! So a certificate is trusted or rejected *for the server* only under that name, in DER. A
//! move here always lands on that name (a PEM file is written as DER), and a file found under
//! another name is listed with a warning. Every file is opened without following symbolic
//! links and read up to [`MAX_CERTIFICATE_BYTES`]; a listing stops at [`MAX_LISTED_FILES`].

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha1::{Digest, Sha1};
use ua::crypto::{CertificateStore, X509};

use crate::model::Timestamp;

/// Files looked at per listing, both directories together; beyond, the listing is truncated.
pub const MAX_LISTED_FILES: usize = 1000;
/// Larger files are listed with an error and never read (a certificate is a few KiB).
pub const MAX_CERTIFICATE_BYTES: u64 = 64 * 1024;

/// Where a certificate file is, which is what the server makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateState {
    Trusted,
    Rejected,
}

impl CertificateState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trusted => "trusted",
            Self::Rejected => "rejected",
        }
    }

    /// The subdirectory of the PKI directory that holds certificates in this state.
    pub fn dir_name(self) -> &'static str {
        self.as_str()
    }

    fn other(self) -> Self {
        match self {
            Self::Trusted => Self::Rejected,
            Self::Rejected => Self::Trusted,
        }
    }
}

/// One file of `trusted/` or `rejected/`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCertificate {
    /// SHA-1 of the DER form in lower-case hex (as async-opcua computes it); for a file that
    /// is not a certificate, of its bytes (so it can still be deleted); `None` when the file
    /// was not read (a symbolic link, too large, unreadable).
    pub thumbprint: Option<String>,
    pub state: CertificateState,
    pub subject: Option<String>,
    /// The URI in the subjectAltName (OPC UA Part 6 §6.2.2: the client's ApplicationUri).
    pub application_uri: Option<String>,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    /// `not_after` is in the past (the server refuses such a certificate even when trusted).
    pub expired: bool,
    /// The file name inside its directory.
    pub file: String,
    /// Why the file could not be read as a certificate.
    pub error: Option<String>,
    /// Something the operator should know (the server ignores the file under this name).
    pub warning: Option<String>,
}

/// `trusted/` and `rejected/`: rejected first (what needs a decision), then by file name.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateList {
    pub certificates: Vec<ClientCertificate>,
    /// More than [`MAX_LISTED_FILES`] files: the rest were not looked at.
    pub truncated: bool,
}

/// A thumbprint as a client sent it, checked: exactly 40 hex digits, kept in lower case. It is
/// only ever compared with thumbprints computed from files, never used in a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbprint(String);

impl Thumbprint {
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the console may do to a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateAction {
    /// rejected -> trusted: the client may connect on secured endpoints.
    Trust,
    /// trusted -> rejected: the client is refused, and its certificate kept for the record.
    Reject,
    /// Every file with the thumbprint removed (a client that connects again is rejected anew).
    Delete,
}

impl CertificateAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trust => "trust",
            Self::Reject => "reject",
            Self::Delete => "delete",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("no client certificate with thumbprint {thumbprint} in trusted/ or rejected/; list the certificates again")]
    NotFound { thumbprint: String },
    #[error("the certificate with thumbprint {thumbprint} is already {}", state.as_str())]
    AlreadyInState {
        thumbprint: String,
        state: CertificateState,
    },
    #[error("{file} is not a certificate the OPC UA server can use ({reason}); delete it instead")]
    NotACertificate { file: String, reason: String },
    #[error("{} already exists and is not this certificate; remove or rename it on the host", path.display())]
    NameTaken { path: PathBuf },
    #[error("{} changed while it was being moved; list the certificates again", path.display())]
    Changed { path: PathBuf },
    #[error("cannot {what} {}: {source}; check that the PKI directory exists and that opcgw may write it", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The blocking task doing the file work ended without an answer (a panic).
    #[error("the certificate task ended without an answer: {0}")]
    TaskFailed(String),
}

impl CertificateError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { what, path, source }
    }
}

/// The client certificates under one PKI directory (`[opcua].pki_dir`).
#[derive(Debug, Clone)]
pub struct ClientCertificates {
    pki_dir: PathBuf,
}

/// The console's way in: file work on a blocking thread, one action at a time per process
/// (clones share the turn), so two operators clicking at once cannot interleave a move. The
/// OPC UA server may still write `rejected/` meanwhile; every step tolerates that.
#[derive(Debug, Clone, Default)]
pub struct CertificateDesk {
    turn: Arc<Mutex<()>>,
}

impl CertificateDesk {
    pub async fn list(&self, pki_dir: PathBuf) -> Result<CertificateList, CertificateError> {
        let turn = Arc::clone(&self.turn);
        run_blocking(move || {
            let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
            ClientCertificates::new(pki_dir).list(Timestamp::now())
        })
        .await
    }

    pub async fn apply(
        &self,
        pki_dir: PathBuf,
        thumbprint: Thumbprint,
        action: CertificateAction,
    ) -> Result<ClientCertificate, CertificateError> {
        let turn = Arc::clone(&self.turn);
        run_blocking(move || {
            let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
            ClientCertificates::new(pki_dir).apply(&thumbprint, action, Timestamp::now())
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CertificateError> + Send + 'static,
) -> Result<T, CertificateError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CertificateError::TaskFailed(e.to_string()))?
}

/// A certificate file as read from disk.
struct Found {
    listed: ClientCertificate,
    path: PathBuf,
    /// Set when the file parsed as a certificate.
    parsed: Option<Parsed>,
}

struct Parsed {
    der: Vec<u8>,
    /// The file holds exactly the DER (not PEM): it can be renamed as it is.
    file_is_der: bool,
    /// The name the server looks for.
    server_name: String,
    /// (device, inode) of the file that was read, to recognise it after a rename.
    identity: (u64, u64),
}

impl ClientCertificates {
    pub fn new(pki_dir: impl Into<PathBuf>) -> Self {
        Self {
            pki_dir: pki_dir.into(),
        }
    }

    fn dir(&self, state: CertificateState) -> PathBuf {
        self.pki_dir.join(state.dir_name())
    }

    /// Both directories, bounded (a missing directory lists as empty).
    pub fn list(&self, now: Timestamp) -> Result<CertificateList, CertificateError> {
        let (found, truncated) = self.scan(now)?;
        Ok(CertificateList {
            certificates: found.into_iter().map(|f| f.listed).collect(),
            truncated,
        })
    }

    /// Trusts, rejects or deletes the certificate with `thumbprint`. Answers the certificate
    /// as it now is (trust, reject) or as it was (delete). The caller serialises actions.
    pub fn apply(
        &self,
        thumbprint: &Thumbprint,
        action: CertificateAction,
        now: Timestamp,
    ) -> Result<ClientCertificate, CertificateError> {
        let (found, _) = self.scan(now)?;
        let matches: Vec<Found> = found
            .into_iter()
            .filter(|f| f.listed.thumbprint.as_deref() == Some(thumbprint.as_str()))
            .collect();
        if matches.is_empty() {
            return Err(CertificateError::NotFound {
                thumbprint: thumbprint.as_str().to_string(),
            });
        }
        match action {
            CertificateAction::Delete => self.delete(matches),
            CertificateAction::Trust => self.make(CertificateState::Trusted, matches, now),
            CertificateAction::Reject => self.make(CertificateState::Rejected, matches, now),
        }
    }

    fn delete(&self, matches: Vec<Found>) -> Result<ClientCertificate, CertificateError> {
        for found in &matches {
            match std::fs::remove_file(&found.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CertificateError::io("remove", &found.path)(e)),
            }
        }
        for state in [CertificateState::Trusted, CertificateState::Rejected] {
            if matches.iter().any(|f| f.listed.state == state) {
                sync_dir(&self.dir(state))?;
            }
        }
        // Report the copy the server was going by (the rejected one wins), else any.
        let reported = matches
            .iter()
            .position(|f| f.server_sees_it() && f.listed.state == CertificateState::Rejected)
            .or_else(|| matches.iter().position(Found::server_sees_it))
            .unwrap_or(0);
        let thumbprint = matches
            .first()
            .and_then(|f| f.listed.thumbprint.clone())
            .unwrap_or_default();
        matches
            .into_iter()
            .nth(reported)
            .map(|f| f.listed)
            .ok_or(CertificateError::NotFound { thumbprint })
    }

    /// Puts the certificate under the server's name in `target`'s directory and removes every
    /// copy from the other directory.
    fn make(
        &self,
        target: CertificateState,
        matches: Vec<Found>,
        now: Timestamp,
    ) -> Result<ClientCertificate, CertificateError> {
        let Some(parsed) = matches.iter().find_map(|f| f.parsed.as_ref()) else {
            let file = matches
                .first()
                .map(|f| f.listed.file.clone())
                .unwrap_or_default();
            let reason = matches
                .first()
                .and_then(|f| f.listed.error.clone())
                .unwrap_or_default();
            return Err(CertificateError::NotACertificate { file, reason });
        };
        let server_name = parsed.server_name.clone();
        let thumbprint = matches
            .first()
            .and_then(|f| f.listed.thumbprint.clone())
            .unwrap_or_default();
        let seen_in = |state: CertificateState| {
            matches
                .iter()
                .any(|f| f.listed.state == state && f.server_sees_it())
        };
        // The server's view: the rejected copy wins over the trusted one.
        let current = if seen_in(CertificateState::Rejected) {
            Some(CertificateState::Rejected)
        } else if seen_in(CertificateState::Trusted) {
            Some(CertificateState::Trusted)
        } else {
            None
        };
        if current == Some(target) {
            return Err(CertificateError::AlreadyInState {
                thumbprint,
                state: target,
            });
        }
        let target_dir = self.dir(target);
        let target_path = target_dir.join(&server_name);
        let already_there = matches
            .iter()
            .any(|f| f.listed.state == target && f.server_sees_it());
        let mut moved: Option<PathBuf> = None;
        if !already_there {
            if matches.iter().any(|f| f.path == target_path) {
                // Under the right name but not in DER form (PEM): rewritten in place.
                write_atomically(&target_dir, &target_path, &parsed.der)?;
            } else {
                match std::fs::symlink_metadata(&target_path) {
                    Ok(_) => return Err(CertificateError::NameTaken { path: target_path }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(CertificateError::io("inspect", &target_path)(e)),
                }
                // The copy to move: the one the server knows in the other directory, else
                // any parsed copy (one under another name, in either directory).
                let source = matches
                    .iter()
                    .filter_map(|f| Some((f, f.parsed.as_ref()?)))
                    .min_by_key(|(f, _)| (f.listed.state == target, !f.server_sees_it()));
                let Some((source, source_parsed)) = source else {
                    return Err(CertificateError::NotFound { thumbprint });
                };
                if source_parsed.file_is_der {
                    move_file(&source.path, &target_path, source_parsed.identity)?;
                } else {
                    write_atomically(&target_dir, &target_path, &source_parsed.der)?;
                    remove_if_present(&source.path)?;
                }
                moved = Some(source.path.clone());
            }
        }
        // Whatever stays in the other directory would still count (rejected wins) or mislead.
        let other = target.other();
        for found in matches.iter().filter(|f| f.listed.state == other) {
            if moved.as_deref() != Some(found.path.as_path()) {
                remove_if_present(&found.path)?;
            }
        }
        sync_dir(&target_dir)?;
        sync_dir(&self.dir(other))?;
        Ok(read_found(&target_path, target, &server_name, now).listed)
    }

    /// Reads both directories (rejected first), at most [`MAX_LISTED_FILES`] entries.
    fn scan(&self, now: Timestamp) -> Result<(Vec<Found>, bool), CertificateError> {
        let mut found = Vec::new();
        let mut looked_at = 0usize;
        let mut truncated = false;
        for state in [CertificateState::Rejected, CertificateState::Trusted] {
            let dir = self.dir(state);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(CertificateError::io("list", &dir)(e)),
            };
            let mut in_dir = Vec::new();
            for entry in entries {
                let entry = entry.map_err(CertificateError::io("list", &dir))?;
                if looked_at >= MAX_LISTED_FILES {
                    truncated = true;
                    break;
                }
                looked_at += 1;
                let name = entry.file_name().to_string_lossy().into_owned();
                // Our own temporary files, `.gitkeep` and the like.
                if name.starts_with('.') {
                    continue;
                }
                // DirEntry::metadata does not follow symbolic links.
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                let path = entry.path();
                if meta.file_type().is_symlink() {
                    in_dir.push(Found {
                        listed: problem(
                            state,
                            name,
                            None,
                            "a symbolic link: not followed; manage it on the host".into(),
                        ),
                        path,
                        parsed: None,
                    });
                } else if meta.is_file() {
                    in_dir.push(read_found(&path, state, &name, now));
                }
            }
            in_dir.sort_by(|a, b| a.listed.file.cmp(&b.listed.file));
            found.extend(in_dir);
            if truncated {
                break;
            }
        }
        Ok((found, truncated))
    }
}

impl Found {
    /// The file is where the server looks for its certificate.
    fn server_sees_it(&self) -> bool {
        self.parsed
            .as_ref()
            .is_some_and(|p| p.file_is_der && p.server_name == self.listed.file)
    }
}

/// A listing entry for a file that could not be used as a certificate.
fn problem(
    state: CertificateState,
    file: String,
    thumbprint: Option<String>,
    error: String,
) -> ClientCertificate {
    ClientCertificate {
        thumbprint,
        state,
        subject: None,
        application_uri: None,
        not_before: None,
        not_after: None,
        expired: false,
        file,
        error: Some(error),
        warning: None,
    }
}

fn read_found(path: &Path, state: CertificateState, name: &str, now: Timestamp) -> Found {
    let (bytes, identity) = match read_bounded(path) {
        Ok(read) => read,
        Err(reason) => {
            return Found {
                listed: problem(state, name.to_string(), None, reason),
                path: path.to_path_buf(),
                parsed: None,
            }
        }
    };
    let parsed = if bytes.starts_with(b"-----BEGIN") {
        X509::from_pem(&bytes)
    } else {
        X509::from_der(&bytes)
    };
    let der = parsed
        .ok()
        .and_then(|cert| Some((cert.to_der().ok()?, cert)));
    let Some((der, cert)) = der else {
        return Found {
            listed: problem(
                state,
                name.to_string(),
                Some(sha1_hex(&bytes)),
                "not an X.509 certificate in DER or PEM form".into(),
            ),
            path: path.to_path_buf(),
            parsed: None,
        };
    };
    let thumbprint = sha1_hex(&der);
    // Safe to call now: the certificate re-encodes (async-opcua unwraps that encoding).
    let server_name = CertificateStore::cert_file_name(&cert);
    if !is_plain_file_name(&server_name) {
        return Found {
            listed: problem(
                state,
                name.to_string(),
                Some(thumbprint),
                "its common name gives no usable file name".into(),
            ),
            path: path.to_path_buf(),
            parsed: None,
        };
    }
    let file_is_der = bytes == der;
    let warning = (!file_is_der || server_name != name).then(|| {
        format!(
            "the OPC UA server ignores this file: it looks for this certificate in DER form as {}/{server_name}; {} it from the console to store it under that name",
            state.dir_name(),
            match state {
                CertificateState::Trusted => "reject and trust",
                CertificateState::Rejected => "trust or reject",
            }
        )
    });
    let not_before = cert
        .not_before()
        .ok()
        .map(|t| Timestamp::from_micros(t.timestamp_micros()));
    let not_after = cert
        .not_after()
        .ok()
        .map(|t| Timestamp::from_micros(t.timestamp_micros()));
    Found {
        listed: ClientCertificate {
            thumbprint: Some(thumbprint),
            state,
            subject: Some(cert.subject_name()),
            application_uri: application_uri(&der),
            not_before,
            not_after,
            expired: not_after.is_some_and(|t| t < now),
            file: name.to_string(),
            error: None,
            warning,
        },
        path: path.to_path_buf(),
        parsed: Some(Parsed {
            der,
            file_is_der,
            server_name,
            identity,
        }),
    }
}

/// The first URI of the subjectAltName extension.
fn application_uri(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let (_, names) = cert.tbs_certificate.get::<SubjectAltName>().ok()??;
    names.0.iter().find_map(|name| match name {
        GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_string()),
        _ => None,
    })
}

fn sha1_hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// The bytes of a regular file (never through a symbolic link, never more than
/// [`MAX_CERTIFICATE_BYTES`]) and its (device, inode); else why not, for the listing.
fn read_bounded(path: &Path) -> Result<(Vec<u8>, (u64, u64)), String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // No symbolic links; no waiting on a FIFO swapped in after the directory was read.
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_CERTIFICATE_BYTES {
        return Err(format!(
            "{} bytes: larger than {MAX_CERTIFICATE_BYTES}, not read",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_CERTIFICATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_CERTIFICATE_BYTES {
        return Err(format!(
            "larger than {MAX_CERTIFICATE_BYTES} bytes, not read"
        ));
    }
    Ok((bytes, (meta.dev(), meta.ino())))
}

/// Renames `from` to `to` (same file system: atomic), then checks that what arrived is the
/// file that was read; if it was swapped meanwhile, the arrival is removed.
fn move_file(from: &Path, to: &Path, identity: (u64, u64)) -> Result<(), CertificateError> {
    std::fs::rename(from, to).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CertificateError::Changed {
                path: from.to_path_buf(),
            }
        } else {
            CertificateError::io("move", from)(e)
        }
    })?;
    let arrived = std::fs::symlink_metadata(to).map_err(CertificateError::io("inspect", to))?;
    if (arrived.dev(), arrived.ino()) != identity || !arrived.is_file() {
        remove_if_present(to)?;
        return Err(CertificateError::Changed {
            path: from.to_path_buf(),
        });
    }
    Ok(())
}

/// Temporary file in the same directory, fsync, rename over `path` (the directory is synced by
/// the caller).
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), CertificateError> {
    let temp = dir.join(format!(
        ".opcgw-certificate-{}-{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(CertificateError::io("create", &temp))?;
        file.write_all(bytes)
            .map_err(CertificateError::io("write", &temp))?;
        file.sync_all()
            .map_err(CertificateError::io("sync", &temp))?;
        std::fs::rename(&temp, path).map_err(CertificateError::io("rename", &temp))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn remove_if_present(path: &Path) -> Result<(), CertificateError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CertificateError::io("remove", path)(e)),
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), CertificateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(CertificateError::io("sync", dir))
}

#[cfg(test)]
#[path = "client_certificates_tests.rs"]
pub(crate) mod tests;
