//! What the console shows of the configuration: every knob outside the `[[application]]` tree
//! with its class and where its value comes from.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Value};

use super::locks::env_locks;
use super::{ConfigView, EditingStatus, SettingSource, SettingView};
use crate::config::diff::classify_knob;
use crate::config::env::{env_var_for, EnvSnapshot};
use crate::config::schema::AppConfig;
use crate::config::secret::REDACTED;

/// Knobs a rendering of the configuration leaves out when unset (optional paths, secrets):
/// listed so that the console shows them too.
const OPTIONAL_KNOBS: &[&str] = &[
    "chirpstack.api_token",
    "chirpstack.api_token_file",
    "opcua.user_password",
    "opcua.user_password_file",
    "web.static_dir",
    "control.socket_group",
    "control.token",
];

const SECRETS: &[&str] = &[
    "chirpstack.api_token",
    "opcua.user_password",
    "control.token",
];

/// The console's view. `file_text` is the config file as it is on disk (`None` when it cannot
/// be read: every value then shows as a default or from the environment).
pub fn describe(
    path: &Path,
    file_text: Option<&str>,
    live: &AppConfig,
    env: &EnvSnapshot,
    generation: u64,
    editing: EditingStatus,
) -> ConfigView {
    let file: Option<DocumentMut> = file_text.and_then(|t| t.parse().ok());
    let rendered: DocumentMut = live.to_redacted_toml().parse().unwrap_or_default();

    // Sections in the file's order, then those it does not have in the schema's order.
    let mut sections: Vec<String> = Vec::new();
    if let Some(file) = &file {
        for (name, item) in file.iter() {
            if item.is_table() && rendered.contains_key(name) {
                sections.push(name.to_string());
            }
        }
    }
    for (name, item) in rendered.iter() {
        if item.is_table() && !sections.iter().any(|s| s == name) {
            sections.push(name.to_string());
        }
    }

    let mut settings = Vec::new();
    for section in sections {
        let Some(table) = rendered.get(&section).and_then(Item::as_table) else {
            continue;
        };
        let mut keys: Vec<(String, Option<serde_json::Value>)> = table
            .iter()
            .filter_map(|(knob, item)| {
                Some((format!("{section}.{knob}"), Some(to_json(item.as_value()?))))
            })
            .collect();
        for optional in OPTIONAL_KNOBS {
            let in_section = optional.split('.').next() == Some(section.as_str());
            if in_section && !keys.iter().any(|(k, _)| k == optional) {
                keys.push((optional.to_string(), None));
            }
        }
        for (key, value) in keys {
            let in_file = file.as_ref().is_some_and(|f| {
                let (s, k) = key.split_once('.').unwrap_or((key.as_str(), ""));
                f.get(s)
                    .and_then(Item::as_table)
                    .is_some_and(|t| t.contains_key(k))
            });
            let (source, from) = source_of(&key, in_file, live, env);
            let value = if SECRETS.contains(&key.as_str()) {
                let set = value.is_some()
                    || matches!(source, SettingSource::Env | SettingSource::SecretFile);
                if set {
                    serde_json::Value::from(REDACTED)
                } else {
                    serde_json::Value::Null
                }
            } else {
                value.unwrap_or(serde_json::Value::Null)
            };
            settings.push(SettingView {
                class: classify_knob(&key),
                key,
                value,
                source,
                from,
            });
        }
    }
    ConfigView {
        path: path.display().to_string(),
        generation,
        editing,
        settings,
        env_locked: env_locks(env, live),
    }
}

fn source_of(
    key: &str,
    in_file: bool,
    live: &AppConfig,
    env: &EnvSnapshot,
) -> (SettingSource, Option<String>) {
    let variable = env_var_for(key);
    if env.raw(&variable).is_some() {
        return (SettingSource::Env, Some(variable));
    }
    let secret_file = match key {
        "chirpstack.api_token" => live.chirpstack.api_token_file.clone(),
        "opcua.user_password" => live.opcua.user_password_file.clone(),
        // The control actor reads (or generates) the token in this file at start.
        "control.token" => Some(live.control.token_file.clone()),
        _ => None,
    };
    if let Some(file) = secret_file {
        return (SettingSource::SecretFile, Some(file.display().to_string()));
    }
    if in_file {
        (SettingSource::File, None)
    } else {
        (SettingSource::Default, None)
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::String(s) => serde_json::Value::from(s.value().as_str()),
        Value::Integer(i) => serde_json::Value::from(*i.value()),
        Value::Float(f) => serde_json::Number::from_f64(*f.value())
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Boolean(b) => serde_json::Value::from(*b.value()),
        Value::Datetime(d) => serde_json::Value::from(d.value().to_string()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::InlineTable(table) => serde_json::Value::Object(
            table
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
    }
}
