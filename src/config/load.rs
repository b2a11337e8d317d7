//! Loading: defaults -> TOML file -> `OPCGW_<SECTION>__<FIELD>` environment, then secret
//! resolution (env > `*_file` > TOML) and validation. Every problem is collected, so one run
//! reports all of them.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;

use super::env::{env_var_for, EnvSnapshot};
use super::schema::*;
use super::secret::Secret;
use super::validate::validate;

/// A config file larger than this is not a configuration; refuse before parsing it.
pub const MAX_CONFIG_FILE_BYTES: u64 = 4 * 1024 * 1024;

const SECTIONS: &[&str] = &[
    "logging",
    "chirpstack",
    "opcua",
    "web",
    "storage",
    "control",
    "supervisor",
    "application",
];

/// One thing wrong with a configuration, tied to the key that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all (missing, unreadable, too large).
    #[error("cannot read configuration file {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    /// The file was read but what it (and the environment) says is not a valid configuration.
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

fn render_problems(path: &Path, problems: &[ConfigProblem]) -> String {
    let mut out = format!("Configuration validation failed ({}):", path.display());
    for problem in problems {
        out.push_str("\n  - ");
        out.push_str(&problem.to_string());
    }
    out
}

/// A configuration that passed validation, with the non-fatal findings.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: AppConfig,
    pub warnings: Vec<ConfigProblem>,
}

/// Loads and validates the configuration at `path` against the environment `env`.
pub fn load(path: &Path, env: &EnvSnapshot) -> Result<LoadedConfig, ConfigError> {
    let figment = read_figment(path, env)?;
    let mut problems = Vec::new();
    report_unknown_sections(&figment, &mut problems);

    let mut config = AppConfig {
        logging: section(&figment, "logging", &mut problems),
        chirpstack: section(&figment, "chirpstack", &mut problems),
        opcua: section(&figment, "opcua", &mut problems),
        web: section(&figment, "web", &mut problems),
        storage: section(&figment, "storage", &mut problems),
        control: section(&figment, "control", &mut problems),
        supervisor: section(&figment, "supervisor", &mut problems),
        applications: section(&figment, "application", &mut problems),
    };
    resolve_secrets(&mut config, env, &mut problems);

    let report = validate(&config);
    problems.extend(report.errors);
    if problems.is_empty() {
        Ok(LoadedConfig {
            config,
            warnings: report.warnings,
        })
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// The file (checked readable and bounded) with the environment layered on top, its TOML
/// syntax checked once (instead of once per section).
fn read_figment(path: &Path, env: &EnvSnapshot) -> Result<Figment, ConfigError> {
    check_readable(path)?;
    let figment = Figment::new()
        .merge(Toml::file_exact(path))
        .merge(env.overlay());
    if let Err(err) = figment.find_value("") {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: figment_problems(err, None),
        });
    }
    Ok(figment)
}

fn check_readable(path: &Path) -> Result<(), ConfigError> {
    let io = |reason: String| ConfigError::Io {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => io(
            "no such file (pass --config PATH or create it from config/config.example.toml)".into(),
        ),
        _ => io(e.to_string()),
    })?;
    if !meta.is_file() {
        return Err(io("not a regular file".into()));
    }
    if meta.len() > MAX_CONFIG_FILE_BYTES {
        return Err(io(format!("larger than {MAX_CONFIG_FILE_BYTES} bytes")));
    }
    std::fs::File::open(path).map_err(|e| io(e.to_string()))?;
    Ok(())
}

fn report_unknown_sections(figment: &Figment, problems: &mut Vec<ConfigProblem>) {
    let Ok(root) = figment.find_value("") else {
        return;
    };
    let Some(dict) = root.as_dict() else { return };
    for key in dict.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
        let from = figment
            .find_metadata(key)
            .map(|m| format!(" (from {})", m.name))
            .unwrap_or_default();
        problems.push(ConfigProblem::new(
            key.clone(),
            format!(
                "unknown section{from}; known sections: {}",
                SECTIONS.join(", ")
            ),
        ));
    }
}

/// Extracts one section (its default when absent), reporting type errors with where the value
/// came from and every key the schema does not know.
fn section<T: DeserializeOwned + Default>(
    figment: &Figment,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    let Ok(value) = figment.find_value(name) else {
        return T::default();
    };
    let mut unknown = Vec::new();
    let _: Result<T, _> = serde_ignored::deserialize(&value, |path| unknown.push(path.to_string()));
    for path in unknown {
        let key = format!("{name}.{path}");
        problems.push(ConfigProblem::new(
            key.clone(),
            format!(
                "unknown key{}; check the spelling against config/config.example.toml",
                origin(figment, &key)
            ),
        ));
    }
    match figment.extract_inner::<T>(name) {
        Ok(section) => section,
        Err(err) => {
            problems.extend(figment_problems(err, Some(name)));
            T::default()
        }
    }
}

fn origin(figment: &Figment, key: &str) -> String {
    // serde_ignored renders array elements as `application.0.device`; figment finds them the same way.
    match figment.find_metadata(key) {
        Some(meta) => match &meta.source {
            Some(figment::Source::File(path)) => format!(" (in {})", path.display()),
            _ => format!(" (from {})", env_var_for(key)),
        },
        None => String::new(),
    }
}

/// One problem per figment error; `section` is the section the error paths are relative to.
fn figment_problems(err: figment::Error, section: Option<&str>) -> Vec<ConfigProblem> {
    err.into_iter()
        .map(|e| {
            // extract_inner reports paths relative to the section, with the section name last.
            let mut path = e.path.clone();
            if let Some(section) = section {
                if path.last().map(String::as_str) == Some(section) {
                    path.pop();
                }
                path.insert(0, section.to_string());
            }
            let key = path.join(".");
            let source = match &e.metadata {
                Some(meta) => match &meta.source {
                    Some(figment::Source::File(path)) => format!(" (in {})", path.display()),
                    _ if meta.name.contains("environment") => {
                        format!(" (from {})", env_var_for(&key))
                    }
                    _ => String::new(),
                },
                None => String::new(),
            };
            // TOML syntax errors come as multi-line snippets; keep one line per problem.
            let kind = e.kind.to_string();
            let message = kind
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            ConfigProblem::new(key, format!("{message}{source}"))
        })
        .collect()
}

/// Where a secret comes from, strongest first: the raw environment variable, then its
/// `*_file`, then the TOML value.
fn resolve_secrets(config: &mut AppConfig, env: &EnvSnapshot, problems: &mut Vec<ConfigProblem>) {
    let chirpstack_file = config.chirpstack.api_token_file.clone();
    resolve_secret(
        &mut config.chirpstack.api_token,
        "chirpstack.api_token",
        chirpstack_file.as_deref(),
        env,
        problems,
    );
    let password_file = config.opcua.user_password_file.clone();
    resolve_secret(
        &mut config.opcua.user_password,
        "opcua.user_password",
        password_file.as_deref(),
        env,
        problems,
    );
    // The control token file is read (or generated) by the control actor when it binds its
    // socket, not here: a token generated at start must not look like a configuration change
    // to the next reload.
    if let Some(token) = env.raw(&env_var_for("control.token")) {
        config.control.token = Secret::new(token);
    }
}

fn resolve_secret(
    secret: &mut Secret,
    key: &str,
    file: Option<&Path>,
    env: &EnvSnapshot,
    problems: &mut Vec<ConfigProblem>,
) {
    if let Some(value) = env.raw(&env_var_for(key)) {
        *secret = Secret::new(value);
        return;
    }
    let Some(file) = file else { return };
    let file_key = format!("{key}_file");
    if !secret.is_empty() && !secret.is_placeholder() {
        problems.push(ConfigProblem::new(
            key,
            format!(
                "set either {key} or {file_key}, not both (prefer {file_key} or {})",
                env_var_for(key)
            ),
        ));
        return;
    }
    match crate::security::read_secret_file(file) {
        Ok(value) => *secret = Secret::new(value),
        Err(err) => problems.push(ConfigProblem::new(file_key, err.to_string())),
    }
}

/// Only the `[control]` section (with its environment overrides) of the file at `path`, for
/// `opcgw ctl`: an operator's shell need not hold the daemon's ChirpStack token or OPC UA
/// password to talk to its control socket.
pub fn load_control(path: &Path, env: &EnvSnapshot) -> Result<ControlConfig, ConfigError> {
    let figment = read_figment(path, env)?;
    let mut problems = Vec::new();
    let mut control: ControlConfig = section(&figment, "control", &mut problems);
    if let Some(token) = env.raw(&env_var_for("control.token")) {
        control.token = Secret::new(token);
    }
    if problems.is_empty() {
        Ok(control)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}
