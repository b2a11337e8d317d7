//! Loading: defaults -> TOML file -> `OPCGW_<SECTION>__<FIELD>` environment, then secret
//! resolution (env > `*_file` > TOML) and validation. Every problem is collected, so one run
//! reports all of them, each with its key and where it was set (file line and column, or the
//! environment variable), and none with the value at fault: a problem may concern a secret.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::value::Value;
use figment::Figment;
use serde::de::DeserializeOwned;

use super::env::{env_var_for, EnvSnapshot};
use super::include::{include_files, Placement};
use super::key_path::{KeyPath, Segment};
use super::probe::{describe, probe_section, FieldProblemKind};
use super::schema::*;
use super::secret::Secret;
use super::source::SourceFile;
use super::template::expand_templates;
use super::validate::{validate, validate_templates};

/// A config file larger than this is not a configuration; refuse before parsing it. It fits
/// 10,000 devices of 10 metrics written out in full (about 11-16 MB); the cap applies to each
/// included file on its own.
pub const MAX_CONFIG_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a file over [`MAX_CONFIG_FILE_BYTES`] is refused, and what to do instead.
pub(super) fn too_large() -> String {
    format!(
        "larger than {MAX_CONFIG_FILE_BYTES} bytes; split the devices over files with \
         include = [\"conf.d/*.toml\"], and share metric lists with [[device_template]] \
         (docs/configuration.md)"
    )
}

const SECTIONS: &[&str] = &[
    "logging",
    "chirpstack",
    "opcua",
    "web",
    "metrics",
    "storage",
    "control",
    "supervisor",
    "application",
    "device_template",
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
    /// SHA-256 of the file's bytes this configuration was loaded from (the console's drift
    /// check compares the file on disk with it).
    pub source_hash: crate::config::edit::ContentHash,
}

/// Loads and validates the configuration at `path` against the environment `env`.
pub fn load(path: &Path, env: &EnvSnapshot) -> Result<LoadedConfig, ConfigError> {
    load_sources(Sources::read(path, env)?, path)
}

/// Whether a file may skip the tree for its applications (`config::split`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnePass {
    Allowed,
    /// Tests: the full path, to compare both on the same text.
    #[cfg(test)]
    Never,
}

/// Loads and validates `text` as if it were the content of the file at `path` (messages name
/// `path`; relative `*_file` secrets resolve as for a load). The configuration editor validates
/// a candidate file this way before writing it, and the reload actor loads the very bytes it
/// hashed, so both see exactly what a load of those bytes would see, environment included.
pub fn load_text(
    path: &Path,
    text: String,
    env: &EnvSnapshot,
) -> Result<LoadedConfig, ConfigError> {
    load_text_with(path, text, env, OnePass::Allowed)
}

pub(super) fn load_text_with(
    path: &Path,
    text: String,
    env: &EnvSnapshot,
    one_pass: OnePass,
) -> Result<LoadedConfig, ConfigError> {
    if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(ConfigError::Io {
            path: path.to_path_buf(),
            reason: too_large(),
        });
    }
    let file = SourceFile::new(path, text);
    load_sources(Sources::from_file(file, path, env, one_pass)?, path)
}

fn load_sources(mut sources: Sources<'_>, path: &Path) -> Result<LoadedConfig, ConfigError> {
    let mut problems = sources.env_problems.clone();
    sources.report_unknown_sections(&mut problems);

    let mut config = AppConfig {
        logging: sources.section("logging", &mut problems),
        chirpstack: sources.section("chirpstack", &mut problems),
        opcua: sources.section("opcua", &mut problems),
        web: sources.section("web", &mut problems),
        metrics: sources.section("metrics", &mut problems),
        storage: sources.section("storage", &mut problems),
        control: sources.section("control", &mut problems),
        supervisor: sources.section("supervisor", &mut problems),
        applications: sources.applications(&mut problems),
        templates: Vec::new(),
        discovered: Default::default(),
    };
    let templates: Vec<DeviceTemplate> = sources.section("device_template", &mut problems);
    let mut template_report = super::validate::ValidationReport::default();
    let valid_templates = validate_templates(&templates, &mut template_report);
    problems.extend(template_report.errors);
    expand_templates(
        &mut config.applications,
        sources.value("application"),
        &templates,
        &valid_templates,
        |key| sources.origin(key),
        &mut problems,
    );
    config.templates = templates;
    resolve_secrets(&mut config, sources.env, &mut problems);

    let mut report = validate(&config);
    report.warnings.extend(template_report.warnings);
    // A key that could not be read is validated as its default: one problem per key is enough.
    let unreadable: HashSet<String> = problems.iter().map(|p| p.key.clone()).collect();
    problems.extend(
        report
            .errors
            .into_iter()
            .filter(|p| !unreadable.contains(&p.key))
            .map(|p| sources.located(p)),
    );
    let warnings: Vec<ConfigProblem> = std::mem::take(&mut report.warnings)
        .into_iter()
        .map(|p| sources.located(p))
        .collect();
    report.warnings = warnings;
    if problems.is_empty() {
        Ok(LoadedConfig {
            config,
            warnings: report.warnings,
            source_hash: crate::config::edit::content_hash(sources.file.text().as_bytes()),
        })
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// The file (read once, its syntax checked) with the environment layered on top, and the
/// means to say where a key came from.
struct Sources<'a> {
    file: SourceFile,
    /// The files `include` names, in order.
    included: Vec<SourceFile>,
    /// Which file each entry of the lists included files extend comes from.
    placement: Placement,
    env: &'a EnvSnapshot,
    /// The file with the environment on top: every section is read from here (by reference:
    /// a fleet's tree is large, and each copy of it costs).
    root: Value,
    /// Variables naming list entries the file does not have.
    env_problems: Vec<ConfigProblem>,
    /// The applications read typed in one pass (`config::split`); `root` then holds the
    /// other sections only. Taken by the one extraction of the section.
    applications: Option<Vec<ApplicationConfig>>,
}

impl<'a> Sources<'a> {
    fn read(path: &Path, env: &'a EnvSnapshot) -> Result<Self, ConfigError> {
        Self::from_file(SourceFile::read(path)?, path, env, OnePass::Allowed)
    }

    fn from_file(
        file: SourceFile,
        path: &Path,
        env: &'a EnvSnapshot,
        one_pass: OnePass,
    ) -> Result<Self, ConfigError> {
        let split = match one_pass {
            OnePass::Allowed => super::split::split(file.text(), env),
            #[cfg(test)]
            OnePass::Never => None,
        };
        let (applications, mut base) = match split {
            Some((applications, rest)) => (Some(applications), rest),
            None => (None, file.tree()?),
        };
        let (included, placement) = include_files(path, &mut base)?;
        let (overlay, missing) = env.overlay(&base);
        let env_problems = missing.iter().map(index_missing_problem).collect();
        let root = if overlay.is_empty() {
            base
        } else {
            // The overlay goes over the files' merged tree, as the environment's indexes count.
            let merged = Figment::new()
                .merge(figment::providers::Serialized::defaults(&base))
                .merge(overlay);
            drop(base);
            merged.find_value("").map_err(|err| ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: figment_problems(err, None),
            })?
        };
        Ok(Self {
            file,
            included,
            placement,
            env,
            root,
            env_problems,
            applications,
        })
    }

    /// The `[[application]]` list: as read in one pass, else extracted from the tree.
    fn applications(&mut self, problems: &mut Vec<ConfigProblem>) -> Vec<ApplicationConfig> {
        match self.applications.take() {
            Some(applications) => applications,
            None => self.section("application", problems),
        }
    }

    /// Where `key` is written: in the main file, or for an entry of a list that included
    /// files extend, in the file that holds it, at its position there.
    fn locate(&self, key: &KeyPath) -> Option<String> {
        if let [Segment::Key(list), Segment::Index(index), rest @ ..] = key.segments() {
            if let Some((file, local)) = self.placement.find(list, *index) {
                let mut local_key = KeyPath::root(list).index(local);
                for segment in rest {
                    local_key = match segment {
                        Segment::Key(name) => local_key.key(name),
                        Segment::Index(i) => local_key.index(*i),
                    };
                }
                return match file {
                    0 => self.file.locate(&local_key),
                    n => self.included.get(n - 1)?.locate(&local_key),
                };
            }
        }
        self.file.locate(key)
    }

    /// The value of top-level section `name`, if the file or the environment sets it.
    fn value(&self, name: &str) -> Option<&Value> {
        self.root.as_dict()?.get(name)
    }

    /// `problem` (found by a validation rule, which knows keys but not files) with where its
    /// key was set: its own place, else the nearest entry holding it (a metric a template gave
    /// a device is located at the device). Unchanged when the key is set nowhere (a default).
    fn located(&self, mut problem: ConfigProblem) -> ConfigProblem {
        let mut key = KeyPath::parse(&problem.key).map(|key| self.within_written(key));
        while let Some(path) = key {
            let origin = self.origin(&path);
            if !origin.is_empty() {
                problem.message.push_str(&origin);
                break;
            }
            key = path.parent().filter(|p| p.segments().len() >= 2);
        }
        problem
    }

    /// `key`, or the device holding it when it is in the metrics or commands of a device on a
    /// template: those lists are the template's entries and then the device's own, so an index
    /// in them is not the index of an entry in the file.
    fn within_written(&self, key: KeyPath) -> KeyPath {
        use super::key_path::Segment;
        let [Segment::Key(list), Segment::Index(a), Segment::Key(devices), Segment::Index(d), Segment::Key(child), ..] =
            key.segments()
        else {
            return key;
        };
        let in_list = child == "read_metric" || child == "command";
        if list != "application" || devices != "device" || !in_list {
            return key;
        }
        let on_template = self
            .value("application")
            .and_then(|apps| apps.as_array()?.get(*a)?.as_dict()?.get("device"))
            .and_then(|devices| devices.as_array()?.get(*d)?.as_dict())
            .is_some_and(|device| device.contains_key(super::probe::TEMPLATE_KEY));
        if on_template {
            KeyPath::root(list).index(*a).key(devices).index(*d)
        } else {
            key
        }
    }

    /// " (from OPCGW_…)" or " (in <file>, line L, column C)": where `key` was set.
    fn origin(&self, key: &KeyPath) -> String {
        let from_env = self.env.overlay_var(&key.dotted());
        match (from_env, self.locate(key)) {
            (Some(var), _) => format!(" (from {var})"),
            (None, Some(location)) => format!(" ({location})"),
            (None, None) => String::new(),
        }
    }

    fn report_unknown_sections(&self, problems: &mut Vec<ConfigProblem>) {
        let Some(dict) = self.root.as_dict() else {
            return;
        };
        for key in dict.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
            let origin = self.origin(&KeyPath::root(key));
            problems.push(ConfigProblem::new(
                key.clone(),
                format!(
                    "unknown section{origin}; known sections: {}",
                    SECTIONS.join(", ")
                ),
            ));
        }
    }

    /// Extracts one section (its default when absent or mistyped), reporting every key of
    /// the wrong type and every key the schema does not know, each with where it was set.
    fn section<T: DeserializeOwned + Default>(
        &self,
        name: &str,
        problems: &mut Vec<ConfigProblem>,
    ) -> T {
        let Some(value) = self.value(name) else {
            return T::default();
        };
        let mut mistyped = Vec::new();
        for found in probe_section(name, value) {
            let key = found.path.to_string();
            let origin = self.origin(&found.path);
            problems.push(match found.kind {
                FieldProblemKind::Unknown => ConfigProblem::new(
                    key,
                    format!(
                        "unknown key{origin}; check the spelling against config/config.example.toml"
                    ),
                ),
                FieldProblemKind::Invalid(message) => {
                    mistyped.push(found.path);
                    ConfigProblem::new(key, format!("{message}{origin}"))
                }
            });
        }
        if !mistyped.is_empty() {
            // The other fields are still validated (a weak secret beside a mistyped port is
            // reported in the same run), without a "required" error for a field that is set.
            return without_fields(value, &mistyped)
                .and_then(|rest| T::deserialize(&rest).ok())
                .unwrap_or_default();
        }
        match T::deserialize(value) {
            Ok(section) => section,
            Err(err) => {
                problems.extend(figment_problems(err, Some(name)));
                T::default()
            }
        }
    }
}

/// "OPCGW_APPLICATION__3__APPLICATION_NAME names application[3], which the file does not
/// have", keyed by the entry.
fn index_missing_problem(missing: &crate::config::env::IndexMissing) -> ConfigProblem {
    let list = KeyPath::default()
        .join_dotted(missing.list.split('.'))
        .to_string();
    let has = match missing.len {
        0 => format!("the file has no {list} entries"),
        1 => format!("the file has one {list} entry, [0]"),
        n => format!("the file has {n} {list} entries, [0] to [{}]", n - 1),
    };
    match missing.index {
        Some(index) => ConfigProblem::new(
            format!("{list}[{index}]"),
            format!(
                "{} names {list}[{index}], which does not exist: {has}; the environment \
                 changes entries of the file, it does not add them (add the entry to the file)",
                missing.variable
            ),
        ),
        None => ConfigProblem::new(
            list.clone(),
            format!(
                "{} does not name a position in {list} (expected a number: {}__0__...; {has})",
                missing.variable,
                env_var_for(&missing.list)
            ),
        ),
    }
}

/// `section` without its fields at `failed`; none when a failure is not a field of it (an
/// element of a list, the section itself).
fn without_fields(section: &Value, failed: &[KeyPath]) -> Option<Value> {
    let Value::Dict(tag, fields) = section else {
        return None;
    };
    let mut fields = fields.clone();
    for path in failed {
        match path.segments().get(1) {
            Some(Segment::Key(key)) => fields.remove(key),
            _ => return None,
        };
    }
    Some(Value::Dict(*tag, fields))
}

/// One problem per figment error (the probe found none, so these are unexpected); `section`
/// is the section the error paths are relative to. Like the probe, never shows a value.
pub(super) fn figment_problems(err: figment::Error, section: Option<&str>) -> Vec<ConfigProblem> {
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
            let message = match &e.kind {
                // A TOML syntax error: its first line is the position, the rest quotes the
                // file (which may hold a secret).
                figment::error::Kind::Message(text) if text.starts_with("TOML parse error") => {
                    format!(
                        "{} (the line is not shown: it may hold a secret)",
                        text.lines().next().unwrap_or_default()
                    )
                }
                kind => describe(kind),
            };
            ConfigProblem::new(key, message)
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
    let sources = Sources::read(path, env)?;
    let mut problems = Vec::new();
    let mut control: ControlConfig = sources.section("control", &mut problems);
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
