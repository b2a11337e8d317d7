//! Weak secrets: values an attacker tries first (placeholders, common passwords, the user name,
//! one repeated character or pattern, keyboard or counting sequences) and values too short to
//! resist guessing. The verdict names the rule, never the value.

use std::fmt;

/// Shortest OPC UA password and ChirpStack API token accepted.
pub const MIN_SECRET_CHARS: usize = 12;

/// Shortest control token accepted from the environment or a file. A short shared secret on a
/// socket any local process may try is guessable; 16 bytes is the floor of a 128-bit hex token.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Passwords and placeholders found first in every wordlist, plus the names of this product.
/// Compared after [`core`]: case, separators, common letter substitutions and leading or
/// trailing digits and punctuation do not make one of them strong (`P@ssw0rd2024!` is
/// `password`).
const WEAK_WORDS: &[&str] = &[
    "password",
    "passwort",
    "passwd",
    "pass",
    "pwd",
    "changeme",
    "change_me",
    "changeit",
    "admin",
    "administrator",
    "root",
    "toor",
    "secret",
    "topsecret",
    "opcua",
    "opc-ua",
    "opcgw",
    "opcua-user",
    "chirpstack",
    "lorawan",
    "gateway",
    "default",
    "letmein",
    "welcome",
    "qwerty",
    "qwertz",
    "azerty",
    "qwertyuiop",
    "asdfgh",
    "asdfghjkl",
    "zxcvbnm",
    "1qaz2wsx",
    "iloveyou",
    "monkey",
    "dragon",
    "master",
    "login",
    "test",
    "testing",
    "guest",
    "user",
    "token",
    "apitoken",
    "api-token",
    "apikey",
    "api-key",
    "abc",
    "trustno1",
    "sunshine",
    "football",
    "baseball",
    "superman",
    "princess",
    "hunter2",
    "example",
    "sample",
    "demo",
    "placeholder",
    "replaceme",
    "replace_me",
    "none",
    "null",
    "empty",
    "temp",
    "temporary",
];

/// Why a secret is refused. The message completes "`<key>` ..." and never holds the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    TooShort { min_chars: usize },
    WellKnown,
    UserName,
    Repeated,
    Sequence,
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min_chars } => write!(f, "is shorter than {min_chars} characters"),
            Self::WellKnown => f.write_str("is a well-known weak value"),
            Self::UserName => f.write_str("is the user name (or a variant of it)"),
            Self::Repeated => f.write_str("is one character or pattern repeated"),
            Self::Sequence => f.write_str("is a keyboard or counting sequence"),
        }
    }
}

/// The first rule `value` breaks, or `None` for an acceptable secret. `user_name` is the login
/// the secret belongs to, when there is one.
pub fn weakness(value: &str, min_chars: usize, user_name: Option<&str>) -> Option<Weakness> {
    let value = value.trim();
    let lower = value.to_lowercase();
    let core = core(&lower);
    let is_word = |word: &str| !core.is_empty() && (core == word || repeats(&core, word));
    if WEAK_WORDS.iter().any(|w| is_word(&self::core(w))) {
        return Some(Weakness::WellKnown);
    }
    if let Some(user) = user_name.map(|u| self::core(&u.trim().to_lowercase())) {
        if !user.is_empty() && is_word(&user) {
            return Some(Weakness::UserName);
        }
    }
    if (1..=lower.chars().count() / 2).any(|unit| is_repetition(&lower, unit)) {
        return Some(Weakness::Repeated);
    }
    if is_sequence(&lower) {
        return Some(Weakness::Sequence);
    }
    if value.chars().count() < min_chars {
        return Some(Weakness::TooShort { min_chars });
    }
    None
}

/// The word a weak secret is built on: lowercase, leading and trailing digits and punctuation
/// dropped, `@$0135!` read as the letters they imitate, separators removed.
fn core(lower: &str) -> String {
    lower
        .trim_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace())
        .chars()
        .map(|c| match c {
            '@' => 'a',
            '$' => 's',
            '0' => 'o',
            '1' | '!' => 'i',
            '3' => 'e',
            '5' => 's',
            other => other,
        })
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// `text` is `word` written two or more times.
fn repeats(text: &str, word: &str) -> bool {
    !word.is_empty() && text.len() % word.len() == 0 && text == word.repeat(text.len() / word.len())
}

/// `text` is its first `unit` characters over and over (`aaaa`, `abab`).
fn is_repetition(text: &str, unit: usize) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars.len() % unit == 0 && chars.iter().enumerate().all(|(i, c)| *c == chars[i % unit])
}

/// Digits or letters counting up or down by one (`1234567890`, `987654`, `abcdef`), the
/// digits wrapping around (`7890123`).
fn is_sequence(text: &str) -> bool {
    let position = |c: char| match c {
        '0'..='9' => Some((0u8, c as u8 - b'0', 10u8)),
        'a'..='z' => Some((1, c as u8 - b'a', 26)),
        _ => None,
    };
    let Some(positions) = text.chars().map(position).collect::<Option<Vec<_>>>() else {
        return false;
    };
    if positions.len() < 2 || positions.iter().any(|p| p.0 != positions[0].0) {
        return false;
    }
    let modulus = positions[0].2;
    let steps: Vec<u8> = positions
        .windows(2)
        .map(|w| (w[1].1 + modulus - w[0].1) % modulus)
        .collect();
    steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == modulus - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(value: &str) -> Option<Weakness> {
        weakness(value, MIN_SECRET_CHARS, Some("opcua-user"))
    }

    #[test]
    fn strong_random_values_pass() {
        for value in [
            "9f1c2e7a4b3d5e6f7a8b9c0d",
            "demo-9f1c2e7a4b3d5e6f7a8b9c0d",
            "test-opcua-password-91bc",
            "correct horse battery staple",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        ] {
            assert_eq!(verdict(value), None, "{value}");
        }
    }

    #[test]
    fn well_known_values_are_weak_whatever_the_case_or_decoration() {
        for value in [
            "password",
            "PASSWORD",
            "Password123456",
            "P@ssw0rd2024!",
            "changeme",
            "ChangeMe!!!!",
            "admin",
            "admin12345678",
            "AdminAdminAdmin",
            "secret",
            "opcua",
            "OPCUA-2024-2025",
            "default",
            "letmein",
            "qwerty",
            "qwertyuiop12",
            "1qaz2wsx",
            "changemechangeme",
        ] {
            assert_eq!(verdict(value), Some(Weakness::WellKnown), "{value}");
        }
        // Only whole words (and their repetitions) count: a passphrase holding one is fine.
        assert_eq!(verdict("my-admin-console-7f3a"), None);
    }

    #[test]
    fn the_user_name_is_weak() {
        let with_user = |value| weakness(value, MIN_SECRET_CHARS, Some("operator7"));
        assert_eq!(with_user("operator7"), Some(Weakness::UserName));
        assert_eq!(with_user("Operator7!2024"), Some(Weakness::UserName));
        assert_eq!(with_user("operatoroperator"), Some(Weakness::UserName));
        assert_eq!(
            weakness("operator7", MIN_SECRET_CHARS, None),
            Some(Weakness::TooShort { min_chars: 12 })
        );
    }

    #[test]
    fn one_repeated_character_or_pattern_is_weak() {
        for value in [
            "aaaaaaaaaaaaaaaa",
            "000000000000",
            "xyxyxyxyxyxy",
            "Zq9Zq9Zq9Zq9",
        ] {
            assert_eq!(verdict(value), Some(Weakness::Repeated), "{value}");
        }
    }

    #[test]
    fn counting_sequences_are_weak() {
        for value in [
            "123456789012",
            "1234567890123",
            "987654321098",
            "abcdefghijklmn",
            "zyxwvutsrqpo",
        ] {
            assert_eq!(verdict(value), Some(Weakness::Sequence), "{value}");
        }
        assert_eq!(verdict("123456"), Some(Weakness::Sequence));
    }

    #[test]
    fn short_values_are_weak_and_the_length_is_the_floor() {
        assert_eq!(
            verdict("x7Rk2pQ9vLm"),
            Some(Weakness::TooShort { min_chars: 12 })
        );
        assert_eq!(verdict("x7Rk2pQ9vLmW"), None);
        // Surrounding whitespace does not count towards the length.
        assert_eq!(
            verdict("  x7Rk2pQ9vLm  "),
            Some(Weakness::TooShort { min_chars: 12 })
        );
        assert_eq!(
            weakness("x7Rk2pQ9vLmW", 16, None),
            Some(Weakness::TooShort { min_chars: 16 })
        );
    }

    #[test]
    fn a_verdict_never_holds_the_value() {
        for value in [
            "password",
            "aaaaaaaaaaaaa",
            "123456789012",
            "tiny7",
            "opcua-user",
        ] {
            let text = verdict(value).unwrap().to_string();
            assert!(!text.contains(value), "{text}");
        }
    }
}
