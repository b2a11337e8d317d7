//! A secret string (API token, password, control token) that never prints itself.

use std::fmt;

/// Prefix of the placeholders shipped in `config/config.toml`; a secret that still starts
/// with it means the operator forgot to inject the real value.
pub const PLACEHOLDER_PREFIX: &str = "REPLACE_ME_WITH_";

/// What is printed wherever a secret would otherwise appear.
pub const REDACTED: &str = "***REDACTED***";

/// A secret value. `Debug`, `Display` and `Serialize` all print [`REDACTED`], so a
/// `format!("{config:?}")` or `check-config` output can never leak it; only
/// [`Secret::expose`] hands out the value, and its callers are few and greppable.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Never log or format what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_placeholder(&self) -> bool {
        self.0.trim_start().starts_with(PLACEHOLDER_PREFIX)
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

/// Constant-time in the length of the longer value, so comparing a candidate secret does
/// not reveal how many leading bytes matched.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        crate::security::constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_formats_its_value() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret}"), REDACTED);
        let toml = toml::to_string(&std::collections::BTreeMap::from([("k", &secret)])).unwrap();
        assert!(!toml.contains("hunter2"), "{toml}");
    }

    #[test]
    fn placeholders_are_recognised() {
        assert!(
            Secret::new("REPLACE_ME_WITH_OPCGW_CHIRPSTACK__API_TOKEN_ENV_VAR").is_placeholder()
        );
        assert!(!Secret::new("real-token").is_placeholder());
    }
}
