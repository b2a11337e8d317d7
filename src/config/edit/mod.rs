//! Editing the configuration file: one typed [`ConfigEdit`] at a time, applied to the file's
//! `toml_edit` document so that comments, key order and formatting outside the edited table stay
//! byte for byte. The reload actor is the only caller (it owns the file): it checks that the
//! file did not change on disk since it was loaded ([`content_hash`]), applies the edit, validates
//! the result exactly as a load would (environment overlay included), writes it atomically and
//! applies it as a reload, restoring the previous bytes when the reload refuses it.
//!
//! Ids (`application_id`, `device_id`, `command_name`) are immutable and case-sensitive.

mod document;
mod file;
mod included;
mod locks;
mod prepare;
mod view;

use serde::{Deserialize, Serialize};

use super::schema::{CommandConfig, MetricConfig};

pub use document::apply;
pub use file::{
    content_hash, editing_status, remove_stale_temps, replace_atomically, write_atomic, AtomicStep,
    AtomicWriteError, ContentHash,
};
pub use locks::{check_env_locks, env_locks};
pub use prepare::{commit_edit, prepare_edit, PreparedEdit};
pub use view::describe;

/// How the configuration file is replaced: [`write_atomic`] in the gateway; tests substitute a
/// writer that fails on demand (a restore that fails).
pub type ConfigWriter = fn(&std::path::Path, &[u8]) -> Result<(), EditError>;

/// One change to the `[[application]]` tree. JSON and TOML use the same key names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ConfigEdit {
    /// A new application without devices (at the end of the list).
    CreateApplication {
        application_id: String,
        application_name: String,
    },
    /// Renames an application.
    UpdateApplication {
        application_id: String,
        application_name: String,
    },
    /// Refused while the application has devices or is the only one.
    DeleteApplication { application_id: String },
    /// A new device (at the end of its application's list), with its metrics and commands.
    CreateDevice {
        application_id: String,
        device: DeviceSpec,
    },
    /// Replaces the name, the staleness override and the metric list; keeps the command table.
    UpdateDevice {
        application_id: String,
        device_id: String,
        device: DeviceUpdate,
    },
    DeleteDevice {
        application_id: String,
        device_id: String,
    },
    CreateCommand {
        application_id: String,
        device_id: String,
        command: CommandConfig,
    },
    /// Replaces a command; `command.command_name` must equal `command_name` (immutable).
    UpdateCommand {
        application_id: String,
        device_id: String,
        command_name: String,
        command: CommandConfig,
    },
    DeleteCommand {
        application_id: String,
        device_id: String,
        command_name: String,
    },
}

impl ConfigEdit {
    /// The application the edit is in, and the device when it touches one.
    pub fn target(&self) -> (&str, Option<&str>) {
        match self {
            Self::CreateApplication { application_id, .. }
            | Self::UpdateApplication { application_id, .. }
            | Self::DeleteApplication { application_id }
            | Self::CreateDevice { application_id, .. } => (application_id, None),
            Self::UpdateDevice {
                application_id,
                device_id,
                ..
            }
            | Self::DeleteDevice {
                application_id,
                device_id,
            }
            | Self::CreateCommand {
                application_id,
                device_id,
                ..
            }
            | Self::UpdateCommand {
                application_id,
                device_id,
                ..
            }
            | Self::DeleteCommand {
                application_id,
                device_id,
                ..
            } => (application_id, Some(device_id)),
        }
    }
}

/// A device as created (`POST .../devices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub device_id: String,
    pub device_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_threshold_seconds: Option<u64>,
    #[serde(default)]
    pub read_metric: Vec<MetricConfig>,
    #[serde(default)]
    pub command: Vec<CommandConfig>,
}

/// What `PUT .../devices/{device_id}` replaces (the command table stays as it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceUpdate {
    pub device_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_threshold_seconds: Option<u64>,
    #[serde(default)]
    pub read_metric: Vec<MetricConfig>,
}

/// What an edit touches, for audit events and answers: `application`, `device` or `command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EditSubject {
    Application,
    Device,
    Command,
}

impl EditSubject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::Device => "device",
            Self::Command => "command",
        }
    }
}

/// Why an edit was refused. Each maps to one HTTP status (`crate::web::error`) and one
/// `reason` of the `<subject>_crud_rejected` audit event ([`EditError::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// 404 `application_not_found` / `device_not_found` / `command_not_found`.
    #[error("{} {id:?} is not configured", .subject.as_str())]
    NotFound { subject: EditSubject, id: String },
    /// 409 `conflict`: a duplicate id, an application that still has devices or is the only one.
    #[error("{message}")]
    Conflict { message: String },
    /// 422 `immutable_field`: an id in the body differs from the one in the path.
    #[error("{field} cannot change; delete and create instead")]
    Immutable { field: String },
    /// 422 `validation`: the edited configuration would not load. `field` is the request field
    /// at fault when it can be told (`read_metric[2].metric_type`), else the config key.
    #[error("{}", .problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Validation { problems: Vec<FieldProblem> },
    /// 409 `env_override`: the value comes from the environment (`OPCGW_...`), which would win
    /// over the file; unset the variable to edit it here.
    #[error("{field} is set by the environment variable {variable}; unset it to edit it here")]
    EnvOverride { field: String, variable: String },
    /// 409 `ambient_drift`: the file changed on disk since it was last loaded; reload first.
    #[error("the configuration file changed on disk since it was loaded; reload it (SIGHUP, `opcgw ctl reload` or the console's Reload) and edit again")]
    AmbientDrift,
    /// 409 `unsupported_layout`: the file holds the tree in a shape the editor does not rewrite
    /// (an inline array, a dotted key); edit the file by hand.
    #[error("{0}")]
    UnsupportedLayout(String),
    /// 503 `editing_disabled`: the file or its directory is not writable (the text says which).
    #[error("configuration editing is off: {0}")]
    Disabled(String),
    /// 503 `poisoned`: a failed edit could not restore the previous file; restore it and restart.
    #[error("configuration editing is off until restart: a failed edit could not restore {0}; restore it from a backup, then restart opcgw")]
    Poisoned(String),
    /// 500 `reload_failed`: written, but the reload refused it (the previous bytes were restored).
    #[error("the reload refused the edited file (restored): {0}")]
    ReloadFailed(String),
    /// 500 `io`: reading or writing the file failed (the text names the file, never a value).
    #[error("{0}")]
    Io(String),
    /// 503 `unavailable`: the reload actor did not answer (restarting).
    #[error("the configuration owner is restarting; try again")]
    Unavailable,
    /// 409 `restart_required`: a reload from the console found a changed knob that only a
    /// restart applies (`knob` is its dotted key); nothing was applied.
    #[error("{knob} cannot change while the gateway runs; restart opcgw to apply it")]
    RestartRequired { knob: String },
}

impl EditError {
    /// The `reason` field of a `<subject>_crud_rejected` event.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound {
                subject: EditSubject::Application,
                ..
            } => "application_not_found",
            Self::NotFound {
                subject: EditSubject::Device,
                ..
            } => "device_not_found",
            Self::NotFound {
                subject: EditSubject::Command,
                ..
            } => "command_not_found",
            Self::Conflict { .. } => "conflict",
            Self::Immutable { .. } => "immutable_field",
            Self::Validation { .. } => "validation",
            Self::EnvOverride { .. } => "env_override",
            Self::AmbientDrift => "ambient_drift",
            Self::UnsupportedLayout(_) => "unsupported_layout",
            Self::Disabled(_) => "editing_disabled",
            Self::Poisoned(_) => "poisoned",
            Self::ReloadFailed(_) => "reload_failed",
            Self::Io(_) => "io",
            Self::Unavailable => "unavailable",
            Self::RestartRequired { .. } => "restart_required",
        }
    }
}

/// One field-level problem: `field` in the request's terms, `message` says what is wrong and
/// what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// A successful edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditOutcome {
    /// The configuration generation now live.
    pub generation: u64,
    /// Always `topology` for the edits above (applied live: OPC UA sessions and subscriptions
    /// survive).
    pub class: super::KnobClass,
}

/// Whether the console may edit, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditingStatus {
    pub enabled: bool,
    /// Why editing is off (not writable, poisoned); `None` when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the console shows of the configuration: where it lives, whether it can be edited, and
/// every non-topology knob with its class and where its value comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigView {
    /// The config file (as given on the command line).
    pub path: String,
    pub generation: u64,
    pub editing: EditingStatus,
    /// Every knob of every section but `[[application]]`, in file order of sections then key
    /// order of the schema. Secrets read `***REDACTED***`.
    pub settings: Vec<SettingView>,
    /// Parts of the `[[application]]` tree the environment sets (`OPCGW_APPLICATION__<n>__...`):
    /// shown read-only, edits to them refused with `env_override`.
    pub env_locked: Vec<EnvLock>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingView {
    /// Dotted key (`chirpstack.polling_frequency`).
    pub key: String,
    pub value: serde_json::Value,
    pub class: super::KnobClass,
    pub source: SettingSource,
    /// The environment variable or secret file the value comes from (`source` env/secret_file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// Not in the file: the built-in default.
    Default,
    File,
    /// An `OPCGW_...` environment variable (wins over the file; read-only in the console).
    Env,
    /// A `*_file` secret file (read-only in the console).
    SecretFile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvLock {
    pub application_id: String,
    /// `None`: the application's own keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub variable: String,
}

#[cfg(test)]
mod tests;
