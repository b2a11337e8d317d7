//! Secrets compared without timing leaks: control tokens, and the OPC UA / web user name and
//! password.
//!
//! Both sides are reduced to HMAC-SHA-256 digests under a key drawn at random when the verifier
//! is made, and the fixed-length digests are compared in constant time. The random key makes
//! the stored digest useless outside this process; comparing digests instead of the secrets
//! hides the secret's length (a direct compare leaks it through its timing).

use std::fmt;

use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

use super::constant_time_eq;

type HmacSha256 = Hmac<Sha256>;

/// Checks candidates against one expected secret.
pub struct SecretVerifier {
    /// Keyed with the random key; cloned per verification.
    mac: HmacSha256,
    expected: [u8; 32],
    /// An empty expected secret matches nothing (fail closed on a misconfiguration).
    usable: bool,
}

impl SecretVerifier {
    pub fn new(secret: &str) -> Self {
        let mut key = Key::<HmacSha256>::default();
        OsRng.fill_bytes(key.as_mut_slice());
        let mac = <HmacSha256 as KeyInit>::new(&key);
        let expected = digest(&mac, secret);
        Self {
            mac,
            expected,
            usable: !secret.is_empty(),
        }
    }

    pub fn verify(&self, candidate: &str) -> bool {
        let matches = constant_time_eq(&digest(&self.mac, candidate), &self.expected);
        matches && self.usable
    }
}

impl fmt::Debug for SecretVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretVerifier { .. }")
    }
}

fn digest(mac: &HmacSha256, text: &str) -> [u8; 32] {
    mac.clone()
        .chain_update(text.as_bytes())
        .finalize()
        .into_bytes()
        .into()
}

/// Why a user name / password pair was refused (for the audit log only: the peer always gets
/// the same answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialRejection {
    UserMismatch,
    PasswordMismatch,
}

impl CredentialRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserMismatch => "user_mismatch",
            Self::PasswordMismatch => "password_mismatch",
        }
    }
}

/// The configured user name and password (shared by OPC UA and the web console).
#[derive(Debug)]
pub struct CredentialVerifier {
    user: SecretVerifier,
    password: SecretVerifier,
}

impl CredentialVerifier {
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            user: SecretVerifier::new(user),
            password: SecretVerifier::new(password),
        }
    }

    /// Both parts are always checked, so the time taken does not say which one was wrong.
    pub fn verify(&self, user: &str, password: &str) -> Result<(), CredentialRejection> {
        let user_ok = self.user.verify(user);
        let password_ok = self.password.verify(password);
        match (user_ok, password_ok) {
            (true, true) => Ok(()),
            (false, _) => Err(CredentialRejection::UserMismatch),
            (true, false) => Err(CredentialRejection::PasswordMismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        let verifier = SecretVerifier::new("s3cret-token");
        assert!(verifier.verify("s3cret-token"));
        for wrong in ["", "s3cret-toke", "s3cret-token!", "S3CRET-TOKEN"] {
            assert!(!verifier.verify(wrong), "{wrong:?}");
        }
        assert!(
            !SecretVerifier::new("").verify(""),
            "an empty secret matches nothing"
        );
        assert_eq!(format!("{verifier:?}"), "SecretVerifier { .. }");
    }

    #[test]
    fn credentials_name_the_wrong_part_for_the_audit_log() {
        let verifier = CredentialVerifier::new("operator", "pw-1234");
        assert_eq!(verifier.verify("operator", "pw-1234"), Ok(()));
        assert_eq!(
            verifier.verify("operator", "nope"),
            Err(CredentialRejection::PasswordMismatch)
        );
        assert_eq!(
            verifier.verify("someone", "pw-1234"),
            Err(CredentialRejection::UserMismatch)
        );
        assert!(!format!("{verifier:?}").contains("pw-1234"));
    }
}
