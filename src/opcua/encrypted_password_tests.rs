//! The patched `legacy_decrypt_secret` (vendor/async-opcua-crypto) refuses every malformed
//! encrypted password with `BadIdentityTokenInvalid` instead of panicking: the secret arrives
//! in an ActivateSession request before any authentication, so its lengths are hostile.

use std::sync::OnceLock;

use ua::crypto::{legacy_decrypt_secret, PrivateKey, PublicKey, SecurityPolicy};
use ua::types::{ByteString, StatusCode, UAString, UserNameIdentityToken};

const NONCE: [u8; 32] = [7; 32];

/// One RSA key for the whole module (1024 bits: generation is slow in debug builds).
fn server_key() -> &'static (PrivateKey, PublicKey) {
    static KEY: OnceLock<(PrivateKey, PublicKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let private = PrivateKey::new(1024).expect("generate an RSA key");
        let public = private.to_public_key();
        (private, public)
    })
}

/// The three padding algorithms a client may name, by a policy that uses each.
const POLICIES: [SecurityPolicy; 3] = [
    SecurityPolicy::Basic128Rsa15,
    SecurityPolicy::Basic256Sha256,
    SecurityPolicy::Aes256Sha256RsaPss,
];

fn token(policy: SecurityPolicy, secret: Vec<u8>) -> UserNameIdentityToken {
    UserNameIdentityToken {
        policy_id: UAString::from("userpass"),
        user_name: UAString::from("operator"),
        password: ByteString::from(secret),
        encryption_algorithm: UAString::from(
            policy
                .asymmetric_encryption_algorithm()
                .expect("an asymmetric policy"),
        ),
    }
}

/// `plaintext` encrypted with the server's public key, as a hostile client can do freely.
fn encrypt(policy: SecurityPolicy, plaintext: &[u8]) -> Vec<u8> {
    let public = &server_key().1;
    let mut cipher = vec![0u8; policy.calculate_cipher_text_size(plaintext.len(), public)];
    let size = policy
        .asymmetric_encrypt(public, plaintext, &mut cipher)
        .expect("encrypt");
    cipher.truncate(size);
    cipher
}

/// Part 4, 7.36.2.2: u32 length of the rest, the secret, the nonce.
fn well_formed(secret: &[u8]) -> Vec<u8> {
    let mut plain = ((secret.len() + NONCE.len()) as u32).to_le_bytes().to_vec();
    plain.extend_from_slice(secret);
    plain.extend_from_slice(&NONCE);
    plain
}

fn decrypt(policy: SecurityPolicy, secret: Vec<u8>) -> Result<Vec<u8>, StatusCode> {
    legacy_decrypt_secret(&token(policy, secret), &NONCE, &server_key().0)
        .map(|b| b.value.unwrap_or_default())
        .map_err(|e| e.status())
}

#[test]
fn a_well_formed_encrypted_password_decrypts() {
    for policy in POLICIES {
        let cipher = encrypt(policy, &well_formed(b"s3cret-pass"));
        assert_eq!(
            decrypt(policy, cipher),
            Ok(b"s3cret-pass".to_vec()),
            "{policy:?}"
        );
    }
}

#[test]
fn secrets_that_are_not_whole_rsa_blocks_are_refused_not_panicked_on() {
    for policy in POLICIES {
        let block = encrypt(policy, &well_formed(b"x"));
        let mut two_blocks_minus_one = block.clone();
        two_blocks_minus_one.extend_from_slice(&block[..block.len() - 1]);
        for secret in [
            vec![],
            vec![1, 2, 3],
            vec![0, 0, 0, 4],
            vec![0xff; 5],
            block[..block.len() - 1].to_vec(),
            two_blocks_minus_one,
        ] {
            let len = secret.len();
            assert_eq!(
                decrypt(policy, secret),
                Err(StatusCode::BadIdentityTokenInvalid),
                "{policy:?}, {len} bytes"
            );
        }
    }
}

#[test]
fn hostile_length_prefixes_are_refused() {
    let long_enough = well_formed(b"password");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nothing decrypted", vec![]),
        ("three bytes, shorter than the prefix", vec![1, 2, 3]),
        ("a prefix and nothing else", 0u32.to_le_bytes().to_vec()),
        ("a prefix larger than the buffer", {
            let mut p = u32::MAX.to_le_bytes().to_vec();
            p.extend_from_slice(&long_enough[4..]);
            p
        }),
        ("a prefix one past the decrypted data", {
            let mut p = ((long_enough.len() - 4 + 1) as u32).to_le_bytes().to_vec();
            p.extend_from_slice(&long_enough[4..]);
            p
        }),
        ("a prefix shorter than the nonce, zero padded", {
            let mut p = 4u32.to_le_bytes().to_vec();
            p.extend_from_slice(&[0; 40]);
            p
        }),
        ("a zero prefix, zero padded", {
            let mut p = 0u32.to_le_bytes().to_vec();
            p.extend_from_slice(&[0; 40]);
            p
        }),
        ("non-zero padding after the nonce", {
            let mut p = long_enough.clone();
            p.push(1);
            p
        }),
        (
            "another nonce",
            well_formed(b"password")
                .iter()
                .map(|b| if *b == 7 { 8 } else { *b })
                .collect(),
        ),
    ];
    for policy in POLICIES {
        for (case, plaintext) in &cases {
            let cipher = encrypt(policy, plaintext);
            assert_eq!(
                decrypt(policy, cipher),
                Err(StatusCode::BadIdentityTokenInvalid),
                "{policy:?}: {case}"
            );
        }
    }
}

#[test]
fn a_secret_that_is_not_encrypted_for_this_key_is_refused() {
    for policy in POLICIES {
        let block_size = encrypt(policy, &well_formed(b"x")).len();
        assert_eq!(
            decrypt(policy, vec![0x5a; block_size]),
            Err(StatusCode::BadIdentityTokenInvalid),
            "{policy:?}"
        );
    }
}
