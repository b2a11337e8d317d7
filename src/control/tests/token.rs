use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::{ControlConfig, Secret, Weakness};
use crate::control::{
    generate_token, read_client_token, resolve_token, write_token_file, TokenError, TokenSource,
    TokenVerifier, MIN_TOKEN_BYTES, TOKEN_BYTES,
};
use crate::security::SecretFileError;

const TOKEN: &str = "7c1e94d2a05b3f68e9d07a4c2b51f836";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn config(dir: &Path) -> ControlConfig {
    ControlConfig {
        token_file: dir.join("run").join("control.token"),
        ..ControlConfig::default()
    }
}

fn write_with_mode(path: &Path, content: &str, file_mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(file_mode)).unwrap();
}

#[test]
fn the_verifier_accepts_only_the_exact_token() {
    let verifier = TokenVerifier::new(TOKEN);
    assert!(verifier.verify(TOKEN));
    assert!(!verifier.verify(""));
    assert!(!verifier.verify(&TOKEN[..TOKEN.len() - 1]));
    assert!(!verifier.verify(&format!("{TOKEN}0")));
    assert!(!verifier.verify(&format!("{TOKEN}\n")));
    assert!(!verifier.verify(&TOKEN.to_uppercase()));
    assert!(!verifier.verify("7c1e94d2a05b3f68e9d07a4c2b51f83F"));
    assert!(!verifier.verify(&"x".repeat(64 * 1024)));
    // Two verifiers of one token agree although their keys differ.
    assert!(TokenVerifier::new(TOKEN).verify(TOKEN));
}

#[test]
fn an_empty_expected_token_authenticates_nobody() {
    let verifier = TokenVerifier::new("");
    assert!(!verifier.verify(""));
    assert!(!verifier.verify("anything"));
}

#[test]
fn the_verifier_never_prints_the_token_or_its_digest() {
    let text = format!("{:?}", TokenVerifier::new(TOKEN));
    assert_eq!(text, "TokenVerifier { .. }");
}

#[test]
fn generated_tokens_are_256_bit_lowercase_hex_and_look_random() {
    let tokens: Vec<String> = (0..200).map(|_| generate_token()).collect();
    for token in &tokens {
        assert_eq!(token.len(), TOKEN_BYTES * 2);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{token}"
        );
    }
    let mut unique = tokens.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), tokens.len());
    // About half of the 51,200 bits are set (the standard deviation is about 113).
    let ones: u32 = tokens
        .iter()
        .flat_map(|t| t.chars())
        .map(|c| c.to_digit(16).unwrap().count_ones())
        .sum();
    assert!((24_600..=26_600).contains(&ones), "{ones}");
}

#[test]
fn the_token_file_is_written_0600_atomically_into_a_new_0700_directory() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("state").join("run");
    let path = parent.join("control.token");
    write_token_file(&path, TOKEN).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{TOKEN}\n")
    );
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&parent), 0o700);
    let entries: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        ["control.token"],
        "no temporary file is left behind"
    );

    // Replacing a loose existing file leaves a private one.
    write_with_mode(&path, "old", 0o644);
    let other = "fedcba9876543210fedcba9876543210";
    write_token_file(&path, other).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{other}\n")
    );
    assert_eq!(mode(&path), 0o600);
    assert_eq!(std::fs::read_dir(&parent).unwrap().count(), 1);
}

#[test]
fn an_existing_directory_keeps_its_mode_and_bad_tokens_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    write_token_file(&dir.path().join("t"), TOKEN).unwrap();
    assert_eq!(mode(dir.path()), 0o750);
    for bad in ["", "two words", "line\nbreak"] {
        let err = write_token_file(&dir.path().join("bad"), bad).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
    assert!(!dir.path().join("bad").exists());
}

#[test]
fn the_environment_token_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    write_with_mode(
        &config.token_file,
        "fedcba9876543210fedcba9876543210",
        0o600,
    );
    config.token = Secret::new(format!(" {TOKEN}\n"));
    let (token, source) = resolve_token(&config).unwrap();
    assert_eq!((token.expose(), source), (TOKEN, TokenSource::Env));
    assert_eq!(read_client_token(&config).unwrap().expose(), TOKEN);
}

#[test]
fn the_file_beats_generation_and_a_generated_token_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    assert!(matches!(
        read_client_token(&config),
        Err(TokenError::Missing { .. })
    ));
    assert!(
        !config.token_file.exists(),
        "the client never creates a token"
    );

    let (generated, source) = resolve_token(&config).unwrap();
    assert_eq!(source, TokenSource::Generated);
    assert_eq!(generated.expose().len(), TOKEN_BYTES * 2);
    assert_eq!(mode(&config.token_file), 0o600);
    assert_eq!(mode(config.token_file.parent().unwrap()), 0o700);

    let (again, source) = resolve_token(&config).unwrap();
    assert_eq!(source, TokenSource::File);
    assert_eq!(again.expose(), generated.expose());
    assert_eq!(
        read_client_token(&config).unwrap().expose(),
        generated.expose()
    );
}

#[test]
fn a_group_or_world_readable_token_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    write_with_mode(&config.token_file, TOKEN, 0o644);
    let err = resolve_token(&config).unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::File(SecretFileError::TooOpen { mode: 0o644, .. })
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("chmod 600") && !text.contains(TOKEN),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&config.token_file).unwrap(), TOKEN);
    assert!(matches!(
        read_client_token(&config),
        Err(TokenError::File(_))
    ));
}

#[test]
fn a_symlinked_token_file_is_refused_and_neither_followed_nor_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    // A link planted where the daemon and `opcgw ctl` look for the token, to a file that would
    // pass every other check.
    let elsewhere = dir.path().join("elsewhere.token");
    write_with_mode(&elsewhere, TOKEN, 0o600);
    std::fs::create_dir_all(config.token_file.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &config.token_file).unwrap();
    let err = resolve_token(&config).unwrap_err();
    assert!(
        matches!(err, TokenError::File(SecretFileError::Symlink { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("symbolic link") && !text.contains(TOKEN),
        "{text}"
    );
    assert!(matches!(
        read_client_token(&config),
        Err(TokenError::File(SecretFileError::Symlink { .. }))
    ));
    assert!(std::fs::symlink_metadata(&config.token_file)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), TOKEN);
}

#[test]
fn short_weak_and_placeholder_tokens_are_refused_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.token = Secret::new("k3Rv9qZ");
    let err = resolve_token(&config).unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Weak {
                weakness: Weakness::TooShort { min_chars: 16 },
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("OPCGW_CONTROL__TOKEN") && text.contains(&MIN_TOKEN_BYTES.to_string()));
    assert!(!text.contains("k3Rv9qZ"));

    // Long enough, but guessable: the same rule as every other secret.
    for weak in [
        "changeme-changeme",
        "0123456789abcdef0123456789abcdef",
        "aaaaaaaaaaaaaaaaaaaa",
    ] {
        config.token = Secret::new(weak);
        let err = resolve_token(&config).unwrap_err();
        assert!(matches!(err, TokenError::Weak { .. }), "{weak}: {err:?}");
        assert!(!err.to_string().contains(weak));
    }

    config.token = Secret::new("REPLACE_ME_WITH_OPCGW_CONTROL__TOKEN_ENV_VAR");
    assert!(matches!(
        resolve_token(&config),
        Err(TokenError::Placeholder)
    ));

    config.token = Secret::default();
    write_with_mode(&config.token_file, "short", 0o600);
    let err = resolve_token(&config).unwrap_err();
    assert!(matches!(
        err,
        TokenError::Weak {
            origin: "control.token_file",
            ..
        }
    ));
}

#[test]
fn token_sources_have_log_names() {
    assert_eq!(TokenSource::Env.to_string(), "env");
    assert_eq!(TokenSource::File.as_str(), "file");
    assert_eq!(TokenSource::Generated.as_str(), "generated");
}
