//! On a temp PKI directory with real certificates (made with async-opcua's X509 builder), and
//! checked against async-opcua's own `CertificateStore`: what the console calls trusted is
//! what the server then accepts.

use std::sync::OnceLock;
use std::time::Duration;

use ua::crypto::{CertificateStore, PrivateKey, SecurityPolicy, X509Data, X509};

use super::*;

const URI: &str = "urn:opcgw:scada-client";

/// One RSA key for every certificate of the module (1024 bits: generation is slow in debug).
fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::new(1024).expect("generate an RSA key"))
}

/// A self-signed client certificate, valid from now for `days` days (also used by the web
/// console's route tests).
pub(crate) fn certificate(common_name: &str, days: u32) -> X509 {
    let data = X509Data {
        key_size: 1024,
        common_name: common_name.into(),
        organization: "opcgw tests".into(),
        organizational_unit: "tests".into(),
        country: "IE".into(),
        state: "Dublin".into(),
        alt_host_names: X509Data::alt_host_names(URI, None, false, false, false),
        certificate_duration_days: days,
    };
    X509::from_pkey(key(), &data).expect("build a certificate")
}

struct Pki {
    _dir: tempfile::TempDir,
    root: PathBuf,
    certificates: ClientCertificates,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pki");
        crate::security::ensure_pki_layout(&root).unwrap();
        Self {
            certificates: ClientCertificates::new(&root),
            root,
            _dir: dir,
        }
    }

    /// Where async-opcua writes a certificate it refuses.
    fn reject_as_the_server_does(&self, cert: &X509) -> PathBuf {
        let path = self
            .root
            .join("rejected")
            .join(CertificateStore::cert_file_name(cert));
        std::fs::write(&path, cert.to_der().unwrap()).unwrap();
        path
    }

    fn files(&self, state: CertificateState) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join(state.dir_name()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    fn list(&self) -> CertificateList {
        self.certificates.list(Timestamp::now()).unwrap()
    }

    fn apply(
        &self,
        cert: &X509,
        action: CertificateAction,
    ) -> Result<ClientCertificate, CertificateError> {
        self.certificates
            .apply(&thumbprint_of(cert), action, Timestamp::now())
    }

    /// What async-opcua's server decides for a client presenting `cert` (Basic128Rsa15 fits
    /// the 1024-bit test key; the trust decision does not depend on the policy).
    fn server_accepts(&self, cert: &X509) -> bool {
        CertificateStore::new(&self.root)
            .validate_application_instance_cert(cert, SecurityPolicy::Basic128Rsa15, None, None)
            .is_ok()
    }
}

fn thumbprint_of(cert: &X509) -> Thumbprint {
    Thumbprint::parse(&cert.thumbprint().as_hex_string()).unwrap()
}

#[test]
fn a_certificate_the_server_rejected_is_listed_with_subject_uri_thumbprint_and_validity() {
    let pki = Pki::new();
    let cert = certificate("SCADA one", 30);
    pki.reject_as_the_server_does(&cert);
    let list = pki.list();
    assert!(!list.truncated);
    assert_eq!(list.certificates.len(), 1);
    let listed = &list.certificates[0];
    assert_eq!(
        listed.thumbprint.as_deref(),
        Some(cert.thumbprint().as_hex_string().as_str())
    );
    assert_eq!(listed.state, CertificateState::Rejected);
    assert!(
        listed.subject.as_deref().unwrap().contains("CN=SCADA one"),
        "{listed:?}"
    );
    assert_eq!(listed.application_uri.as_deref(), Some(URI));
    let now = Timestamp::now();
    assert!(listed.not_before.unwrap() <= now && now < listed.not_after.unwrap());
    assert!(!listed.expired);
    assert_eq!(listed.file, CertificateStore::cert_file_name(&cert));
    assert_eq!((listed.error.clone(), listed.warning.clone()), (None, None));
}

#[test]
fn trusting_lets_the_server_accept_the_client_and_rejecting_refuses_it_again() {
    let pki = Pki::new();
    let cert = certificate("SCADA two", 30);
    let server_name = CertificateStore::cert_file_name(&cert);
    pki.reject_as_the_server_does(&cert);
    assert!(!pki.server_accepts(&cert));

    let trusted = pki.apply(&cert, CertificateAction::Trust).unwrap();
    assert_eq!(trusted.state, CertificateState::Trusted);
    assert_eq!(trusted.file, server_name);
    assert_eq!(
        pki.files(CertificateState::Trusted),
        vec![server_name.clone()]
    );
    assert!(pki.files(CertificateState::Rejected).is_empty());
    assert!(
        pki.server_accepts(&cert),
        "the store reads trusted/ at every handshake"
    );
    assert!(matches!(
        pki.apply(&cert, CertificateAction::Trust),
        Err(CertificateError::AlreadyInState {
            state: CertificateState::Trusted,
            ..
        })
    ));

    let rejected = pki.apply(&cert, CertificateAction::Reject).unwrap();
    assert_eq!(rejected.state, CertificateState::Rejected);
    assert_eq!(pki.files(CertificateState::Rejected), vec![server_name]);
    assert!(pki.files(CertificateState::Trusted).is_empty());
    assert!(!pki.server_accepts(&cert));
    assert!(matches!(
        pki.apply(&cert, CertificateAction::Reject),
        Err(CertificateError::AlreadyInState {
            state: CertificateState::Rejected,
            ..
        })
    ));
}

#[test]
fn deleting_removes_every_copy_and_then_the_thumbprint_is_unknown() {
    let pki = Pki::new();
    let cert = certificate("SCADA three", 30);
    pki.reject_as_the_server_does(&cert);
    // A stray copy under another name in trusted/ as well.
    std::fs::write(pki.root.join("trusted/copy.der"), cert.to_der().unwrap()).unwrap();
    let deleted = pki.apply(&cert, CertificateAction::Delete).unwrap();
    assert_eq!(
        deleted.state,
        CertificateState::Rejected,
        "the copy the server went by"
    );
    assert!(pki.files(CertificateState::Rejected).is_empty());
    assert!(pki.files(CertificateState::Trusted).is_empty());
    assert!(matches!(
        pki.apply(&cert, CertificateAction::Delete),
        Err(CertificateError::NotFound { .. })
    ));
    assert!(matches!(
        pki.apply(&cert, CertificateAction::Trust),
        Err(CertificateError::NotFound { .. })
    ));
}

#[test]
fn a_thumbprint_is_forty_hex_digits_and_nothing_else() {
    let hex = "0123456789abcdefABCDEF0123456789abcdef01";
    assert_eq!(
        Thumbprint::parse(hex).unwrap().as_str(),
        hex.to_ascii_lowercase()
    );
    for bad in [
        "",
        &hex[..39],
        &format!("{hex}0"),
        "../../../../etc/passwd/../../../../../..",
        "0123456789abcdef0123456789abcdef0123456g",
        "0123456789abcdef0123456789abcdef012345 7",
        "０123456789abcdef0123456789abcdef0123456",
    ] {
        assert_eq!(Thumbprint::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_pem_file_under_its_own_name_is_flagged_and_trusting_stores_it_as_the_server_reads_it() {
    let pki = Pki::new();
    let cert = certificate("SCADA pem", 30);
    let der = cert.to_der().unwrap();
    let pem = x509_cert::der::pem::encode_string(
        "CERTIFICATE",
        x509_cert::der::pem::LineEnding::LF,
        &der,
    )
    .unwrap();
    std::fs::write(pki.root.join("rejected/scada.pem"), pem).unwrap();
    let listed = &pki.list().certificates[0];
    assert_eq!(
        listed.thumbprint.as_deref(),
        Some(cert.thumbprint().as_hex_string().as_str())
    );
    assert!(
        listed
            .warning
            .as_deref()
            .unwrap()
            .contains("ignores this file"),
        "{listed:?}"
    );
    pki.apply(&cert, CertificateAction::Trust).unwrap();
    let server_name = CertificateStore::cert_file_name(&cert);
    assert_eq!(
        pki.files(CertificateState::Trusted),
        vec![server_name.clone()]
    );
    assert_eq!(
        std::fs::read(pki.root.join("trusted").join(&server_name)).unwrap(),
        der
    );
    assert!(pki.files(CertificateState::Rejected).is_empty());
    assert!(pki.server_accepts(&cert));
    assert_eq!(pki.list().certificates[0].warning, None);
}

#[test]
fn a_certificate_in_both_directories_is_rejected_as_the_server_sees_it_and_trust_clears_that() {
    let pki = Pki::new();
    let cert = certificate("SCADA both", 30);
    pki.reject_as_the_server_does(&cert);
    let server_name = CertificateStore::cert_file_name(&cert);
    std::fs::write(
        pki.root.join("trusted").join(&server_name),
        cert.to_der().unwrap(),
    )
    .unwrap();
    assert!(!pki.server_accepts(&cert), "rejected/ wins in the store");
    assert!(matches!(
        pki.apply(&cert, CertificateAction::Reject),
        Err(CertificateError::AlreadyInState { .. })
    ));
    pki.apply(&cert, CertificateAction::Trust).unwrap();
    assert!(pki.files(CertificateState::Rejected).is_empty());
    assert!(pki.server_accepts(&cert));
}

#[test]
fn files_that_are_not_certificates_are_listed_with_the_reason_and_can_only_be_deleted() {
    let pki = Pki::new();
    std::fs::write(pki.root.join("trusted/notes.txt"), "not a certificate").unwrap();
    let big = vec![0u8; MAX_CERTIFICATE_BYTES as usize + 1];
    std::fs::write(pki.root.join("rejected/huge.der"), big).unwrap();
    let list = pki.list();
    assert_eq!(list.certificates.len(), 2, "{list:?}");
    let huge = &list.certificates[0];
    assert_eq!(
        (huge.file.as_str(), huge.thumbprint.clone()),
        ("huge.der", None)
    );
    assert!(
        huge.error.as_deref().unwrap().contains("not read"),
        "{huge:?}"
    );
    let notes = &list.certificates[1];
    assert!(notes.error.as_deref().unwrap().contains("not an X.509"));
    let thumbprint = Thumbprint::parse(notes.thumbprint.as_deref().unwrap()).unwrap();
    assert!(matches!(
        pki.certificates
            .apply(&thumbprint, CertificateAction::Trust, Timestamp::now()),
        Err(CertificateError::NotACertificate { .. })
    ));
    pki.certificates
        .apply(&thumbprint, CertificateAction::Delete, Timestamp::now())
        .unwrap();
    assert!(pki.files(CertificateState::Trusted).is_empty());
}

#[test]
fn symbolic_links_are_listed_but_never_followed_or_moved() {
    let pki = Pki::new();
    let cert = certificate("SCADA link", 30);
    let elsewhere = pki.root.join("elsewhere.der");
    std::fs::write(&elsewhere, cert.to_der().unwrap()).unwrap();
    let link = pki
        .root
        .join("rejected")
        .join(CertificateStore::cert_file_name(&cert));
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let listed = &pki.list().certificates[0];
    assert_eq!(listed.thumbprint, None, "{listed:?}");
    assert!(listed.error.as_deref().unwrap().contains("symbolic link"));
    assert!(matches!(
        pki.apply(&cert, CertificateAction::Trust),
        Err(CertificateError::NotFound { .. })
    ));
    assert!(pki.files(CertificateState::Trusted).is_empty());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_foreign_file_under_the_servers_name_is_never_overwritten() {
    let pki = Pki::new();
    let cert = certificate("SCADA taken", 30);
    pki.reject_as_the_server_does(&cert);
    let taken = pki
        .root
        .join("trusted")
        .join(CertificateStore::cert_file_name(&cert));
    std::fs::write(&taken, "someone else's file").unwrap();
    assert!(matches!(
        pki.apply(&cert, CertificateAction::Trust),
        Err(CertificateError::NameTaken { .. })
    ));
    assert_eq!(std::fs::read(&taken).unwrap(), b"someone else's file");
    assert_eq!(pki.files(CertificateState::Rejected).len(), 1);
}

#[test]
fn an_expired_certificate_says_so() {
    let pki = Pki::new();
    // Valid for zero days: not_after is its creation time.
    let cert = certificate("SCADA expired", 0);
    pki.reject_as_the_server_does(&cert);
    let later = Timestamp::now().saturating_add(Duration::from_secs(3600));
    let listed = &pki.certificates.list(later).unwrap().certificates[0];
    assert!(listed.expired, "{listed:?}");
}

#[test]
fn a_listing_stops_at_its_bound_and_says_it_was_cut() {
    let pki = Pki::new();
    for i in 0..MAX_LISTED_FILES + 5 {
        let dir = if i % 2 == 0 { "rejected" } else { "trusted" };
        std::fs::write(
            pki.root.join(dir).join(format!("junk-{i:04}.der")),
            [i as u8],
        )
        .unwrap();
    }
    let list = pki.list();
    assert!(list.truncated);
    assert_eq!(list.certificates.len(), MAX_LISTED_FILES);
}

#[test]
fn a_broken_directory_is_an_io_error_naming_it_and_nothing_moves() {
    let pki = Pki::new();
    let cert = certificate("SCADA broken", 30);
    pki.reject_as_the_server_does(&cert);
    // trusted/ is a file, not a directory (works for root too, unlike a read-only mode).
    let trusted = pki.root.join("trusted");
    std::fs::remove_dir(&trusted).unwrap();
    std::fs::write(&trusted, "").unwrap();
    let error = pki.apply(&cert, CertificateAction::Trust).unwrap_err();
    assert!(matches!(error, CertificateError::Io { .. }), "{error}");
    assert!(error.to_string().contains("trusted"), "{error}");
    assert_eq!(pki.files(CertificateState::Rejected).len(), 1);
}

#[test]
fn a_missing_pki_directory_lists_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let list = ClientCertificates::new(dir.path().join("absent"))
        .list(Timestamp::now())
        .unwrap();
    assert!(list.certificates.is_empty() && !list.truncated);
}
