//! Security building blocks shared by every surface: constant-time comparison, secret files
//! with safe modes, slowing failed logins per source address (OPC UA and the web console), and
//! sanitising untrusted text before it reaches a log.

pub mod client_certificates;
mod credentials;
mod file_mode;
pub mod login_throttle;
mod pki;
mod sanitize;

pub use client_certificates::{
    CertificateAction, CertificateDesk, CertificateError, CertificateList, CertificateState,
    ClientCertificate, ClientCertificates, Thumbprint,
};
pub use credentials::{CredentialRejection, CredentialVerifier, SecretVerifier};
pub use file_mode::{read_secret_file, SecretFileError, MAX_SECRET_FILE_BYTES};
pub use login_throttle::LoginThrottle;
pub use pki::{check_private_key, ensure_pki_layout, PkiError, PKI_DIRECTORIES};
pub use sanitize::sanitize_for_log;

/// Compares two byte strings in time that depends only on their lengths, never on where they
/// first differ. Lengths are not hidden; callers that must hide them compare fixed-size
/// digests instead.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    let longest = a.len().max(b.len());
    for i in 0..longest {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    // black_box keeps the optimiser from short-circuiting the loop above.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equal_and_unequal_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
