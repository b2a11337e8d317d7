//! The environment layer of the figment chain: `OPCGW_<SECTION>__<FIELD>` overrides.
//!
//! The loader works on a snapshot of the environment rather than the process environment so
//! that tests (and reloads) are deterministic and do not race on `std::env`.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

pub const ENV_PREFIX: &str = "OPCGW_";

/// Secrets are read raw (see [`EnvSnapshot::raw`]) and kept out of the figment layer: figment
/// parses values TOML-like, so a token such as `0123456` would become a number and fail (or
/// lose its leading zero).
pub const SECRET_ENV_VARS: &[&str] = &[
    "OPCGW_CHIRPSTACK__API_TOKEN",
    "OPCGW_OPCUA__USER_PASSWORD",
    "OPCGW_CONTROL__TOKEN",
];

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct EnvSnapshot {
    vars: Vec<(String, String)>,
}

impl EnvSnapshot {
    /// The current process environment (variables that are not UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The names of the variables in the snapshot (values stay inside: some are secrets).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(name, _)| name.as_str())
    }

    /// The raw string value of `name`, exactly as set.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `OPCGW_<SECTION>__<FIELD>` overrides as a figment provider.
    pub fn overlay(&self) -> EnvOverlay {
        let entries = self
            .vars
            .iter()
            .filter_map(|(k, v)| Some((overlay_key(k)?, v.clone())))
            .collect();
        EnvOverlay { entries }
    }

    /// The variable of the overlay that sets `key` or a key below it (`opcua` finds
    /// `OPCGW_OPCUA__HOST_PORT`), as it is spelled in the environment.
    pub fn overlay_var(&self, key: &str) -> Option<&str> {
        self.vars.iter().rev().find_map(|(name, _)| {
            let set = overlay_key(name)?;
            let below = set
                .strip_prefix(key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'));
            below.then_some(name.as_str())
        })
    }
}

/// The dotted key a variable sets through the overlay (`OPCGW_OPCUA__HOST_PORT` ->
/// `opcua.host_port`); none for other variables and for secrets, which are read raw.
fn overlay_key(name: &str) -> Option<String> {
    let accepted =
        name.starts_with(ENV_PREFIX) && name.contains("__") && !SECRET_ENV_VARS.contains(&name);
    accepted.then(|| {
        name[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace("__", ".")
    })
}

/// Nested keys (`chirpstack.polling_frequency`) with values parsed like figment's `Env`.
pub struct EnvOverlay {
    entries: Vec<(String, String)>,
}

/// The environment variable that sets `key` (`opcua.host_port` -> `OPCGW_OPCUA__HOST_PORT`).
pub fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

impl Provider for EnvOverlay {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_profile, keys| env_var_for(&keys.join(".")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut root = Dict::new();
        for (path, raw) in &self.entries {
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            insert_nested(&mut root, path, value);
        }
        Ok(Profile::Default.collect(root))
    }
}

fn insert_nested(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_nested(inner, rest, value);
            }
        }
    }
}
