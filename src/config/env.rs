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

    /// The `OPCGW_<SECTION>__<FIELD>` overrides as a figment provider, laid over `base` (the
    /// file's values): a segment of digits under a list names an entry of that list
    /// (`OPCGW_APPLICATION__0__APPLICATION_NAME`), and a value the file has as a string stays
    /// a string (`OPCGW_APPLICATION__0__APPLICATION_ID=42`). A variable naming an entry the
    /// list does not have is an [`IndexMissing`], not applied.
    pub fn overlay(&self, base: &Value) -> (EnvOverlay, Vec<IndexMissing>) {
        let mut root = Dict::new();
        let mut missing = Vec::new();
        for (name, raw) in &self.vars {
            let Some(key) = overlay_key(name) else {
                continue;
            };
            let segments: Vec<&str> = key.split('.').collect();
            if let Err(gap) = insert_nested(&mut root, Some(base), &segments, raw) {
                missing.push(IndexMissing {
                    variable: name.clone(),
                    list: segments[..gap.depth].join("."),
                    index: gap.index,
                    len: gap.len,
                });
            }
        }
        (EnvOverlay { root }, missing)
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
    root: Dict,
}

/// A variable that names a list entry the file does not have
/// (`OPCGW_APPLICATION__3__APPLICATION_NAME` with two applications).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexMissing {
    pub variable: String,
    /// The list, dotted (`application`, `application.0.device`).
    pub list: String,
    /// The position named; `None` when the segment is not a number.
    pub index: Option<usize>,
    /// How many entries the list has.
    pub len: usize,
}

/// The environment variable that sets `key` (`opcua.host_port` -> `OPCGW_OPCUA__HOST_PORT`).
pub fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

impl EnvOverlay {
    /// No variable sets anything.
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }
}

impl Provider for EnvOverlay {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_profile, keys| env_var_for(&keys.join(".")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        Ok(Profile::Default.collect(self.root.clone()))
    }
}

/// Where a path left the lists the file has: `depth` segments name the list.
struct Gap {
    depth: usize,
    index: Option<usize>,
    len: usize,
}

/// Sets `segments` in `dict` to `raw`. `base` is the file's value at the same place: a list
/// there is copied in and its entry patched (figment would replace the list by a map), and a
/// string there keeps `raw` a string.
fn insert_nested(
    dict: &mut Dict,
    base: Option<&Value>,
    segments: &[&str],
    raw: &str,
) -> Result<(), Gap> {
    let (head, rest) = match segments {
        [] => return Ok(()),
        [head, rest @ ..] => (*head, rest),
    };
    let base = base.and_then(Value::as_dict).and_then(|d| d.get(head));
    if rest.is_empty() {
        dict.insert(head.to_string(), parse_value(raw, base));
        return Ok(());
    }
    // A position where the file has no list (no `[[application]]` at all): nothing to patch.
    let is_list = |v: &Value| v.as_array().is_some();
    if rest[0].parse::<usize>().is_ok()
        && !dict.get(head).is_some_and(is_list)
        && !base.is_some_and(is_list)
    {
        return Err(Gap {
            depth: 1,
            index: rest[0].parse().ok(),
            len: 0,
        });
    }
    let entry = dict.entry(head.to_string()).or_insert_with(|| {
        base.filter(|b| b.as_array().is_some())
            .cloned()
            .unwrap_or_else(|| Value::from(Dict::new()))
    });
    match entry {
        Value::Array(_, items) => {
            let len = items.len();
            let index = rest[0].parse::<usize>().ok();
            let Some(item) = index.and_then(|i| items.get_mut(i)) else {
                return Err(Gap {
                    depth: 1,
                    index,
                    len,
                });
            };
            if rest.len() == 1 {
                let as_file = item.clone();
                *item = parse_value(raw, Some(&as_file));
                return Ok(());
            }
            if item.as_dict().is_none() {
                *item = Value::from(Dict::new());
            }
            let item_base = item.clone();
            let Value::Dict(_, inner) = item else {
                return Ok(());
            };
            insert_nested(inner, Some(&item_base), &rest[1..], raw).map_err(|gap| Gap {
                depth: gap.depth + 2,
                ..gap
            })
        }
        _ => {
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            let Value::Dict(_, inner) = entry else {
                return Ok(());
            };
            insert_nested(inner, base, rest, raw).map_err(|gap| Gap {
                depth: gap.depth + 1,
                ..gap
            })
        }
    }
}

/// `raw` parsed like figment's `Env` (`42` a number, `true` a bool, `[1, 2]` a list), except
/// where the file has a string: an id of digits must not become a number.
fn parse_value(raw: &str, base: Option<&Value>) -> Value {
    if matches!(base, Some(Value::String(..))) {
        return Value::from(raw.to_string());
    }
    raw.parse().unwrap_or_else(|_| Value::from(raw.to_string()))
}
