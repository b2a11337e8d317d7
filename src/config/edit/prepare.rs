//! One edit from the file's current text to a validated candidate, and from the candidate to
//! the live configuration (write, reload, restore the previous bytes if the reload refuses).

use std::path::Path;

use toml_edit::DocumentMut;
use tracing::error;

use super::document::apply;
use super::locks::check_env_locks;
use super::{ConfigEdit, EditError, FieldProblem};
use crate::config::env::EnvSnapshot;
use crate::config::load::{load_text, ConfigError};
use crate::config::schema::AppConfig;

/// A candidate file that loads: what will be written, and what it loads as.
#[derive(Debug, Clone)]
pub struct PreparedEdit {
    pub text: String,
    pub config: AppConfig,
}

/// Applies `edit` to `current` (the text of the file at `path`) and validates the result
/// exactly as a load of the file would (the environment `env` included). Nothing is written.
pub fn prepare_edit(
    path: &Path,
    current: &str,
    live: &AppConfig,
    env: &EnvSnapshot,
    edit: &ConfigEdit,
) -> Result<PreparedEdit, EditError> {
    check_env_locks(env, live, edit)?;
    let mut doc: DocumentMut = current.parse().map_err(|_| {
        EditError::Io(format!(
            "{} is no longer valid TOML; fix it and reload",
            path.display()
        ))
    })?;
    apply(&mut doc, live, edit)?;
    let text = doc.to_string();
    match load_text(path, text.clone(), env) {
        Ok(loaded) => Ok(PreparedEdit {
            text,
            config: loaded.config,
        }),
        Err(ConfigError::Io { reason, .. }) => Err(EditError::Io(format!(
            "the edited {} would not load: {reason}",
            path.display()
        ))),
        Err(ConfigError::Invalid { problems, .. }) => {
            let prefix = subject_key(&doc, edit);
            Err(EditError::Validation {
                problems: problems
                    .into_iter()
                    .map(|p| FieldProblem {
                        field: request_field(&p.key, prefix.as_deref()),
                        message: p.message,
                    })
                    .collect(),
            })
        }
    }
}

/// The config key of the item an edit creates or replaces (`application[0].device[2]`), as
/// the loader numbers it in the edited document.
fn subject_key(doc: &DocumentMut, edit: &ConfigEdit) -> Option<String> {
    let position = |tables: &toml_edit::ArrayOfTables, key: &str, id: &str| {
        tables
            .iter()
            .position(|t| t.get(key).and_then(|v| v.as_str()) == Some(id))
    };
    let apps = doc.get("application")?.as_array_of_tables()?;
    let app_of = |id: &str| {
        let a = position(apps, "application_id", id)?;
        Some((a, apps.get(a)?))
    };
    let device_of = |app_id: &str, device_id: &str| {
        let (a, app) = app_of(app_id)?;
        let devices = app.get("device")?.as_array_of_tables()?;
        let d = position(devices, "device_id", device_id)?;
        Some((a, d, devices.get(d)?))
    };
    match edit {
        ConfigEdit::CreateApplication { application_id, .. }
        | ConfigEdit::UpdateApplication { application_id, .. } => {
            let (a, _) = app_of(application_id)?;
            Some(format!("application[{a}]"))
        }
        ConfigEdit::CreateDevice {
            application_id,
            device,
        } => {
            let (a, d, _) = device_of(application_id, &device.device_id)?;
            Some(format!("application[{a}].device[{d}]"))
        }
        ConfigEdit::UpdateDevice {
            application_id,
            device_id,
            ..
        } => {
            let (a, d, _) = device_of(application_id, device_id)?;
            Some(format!("application[{a}].device[{d}]"))
        }
        ConfigEdit::CreateCommand {
            application_id,
            device_id,
            command,
        }
        | ConfigEdit::UpdateCommand {
            application_id,
            device_id,
            command,
            ..
        } => {
            let (a, d, device) = device_of(application_id, device_id)?;
            let commands = device.get("command")?.as_array_of_tables()?;
            let c = position(commands, "command_name", &command.command_name)?;
            Some(format!("application[{a}].device[{d}].command[{c}]"))
        }
        ConfigEdit::DeleteApplication { .. }
        | ConfigEdit::DeleteDevice { .. }
        | ConfigEdit::DeleteCommand { .. } => None,
    }
}

/// A problem's key in the request's terms when it lies inside the edited item
/// (`application[0].device[2].read_metric[1].metric_type` -> `read_metric[1].metric_type`),
/// else the config key as it is.
fn request_field(key: &str, subject: Option<&str>) -> String {
    let Some(subject) = subject else {
        return key.to_string();
    };
    match key.strip_prefix(subject) {
        Some(rest) if rest.starts_with('.') => rest[1..].to_string(),
        Some("") => subject.rsplit('.').next().unwrap_or(subject).to_string(),
        _ => key.to_string(),
    }
}

/// Makes a prepared edit live: writes `prepared` with `write`, then `reload`s (which answers
/// the new generation, or why it refused). A refused reload restores `previous` with `write`;
/// when that fails too the file is in an unknown state and the answer is
/// [`EditError::Poisoned`] (the caller refuses every later edit until restart).
pub fn commit_edit<W, R>(
    path: &Path,
    previous: &str,
    prepared: &str,
    mut write: W,
    reload: R,
) -> Result<u64, EditError>
where
    W: FnMut(&Path, &[u8]) -> Result<(), EditError>,
    R: FnOnce() -> Result<u64, String>,
{
    write(path, prepared.as_bytes())?;
    match reload() {
        Ok(generation) => Ok(generation),
        Err(refusal) => match write(path, previous.as_bytes()) {
            Ok(()) => Err(EditError::ReloadFailed(refusal)),
            Err(restore) => {
                error!(
                    event = "config_restore_failed",
                    path = %path.display(),
                    error = %restore,
                    "the reload refused an edit and the previous file could not be restored; \
                     editing is off until restart"
                );
                Err(EditError::Poisoned(path.display().to_string()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::request_field;

    #[test]
    fn problems_inside_the_edited_item_are_named_in_the_request_terms() {
        let device = Some("application[1].device[2]");
        assert_eq!(
            request_field(
                "application[1].device[2].read_metric[0].metric_type",
                device
            ),
            "read_metric[0].metric_type"
        );
        assert_eq!(
            request_field("application[1].device[2].device_id", device),
            "device_id"
        );
        assert_eq!(
            request_field("application[1].device[20].device_id", device),
            "application[1].device[20].device_id"
        );
        assert_eq!(request_field("opcua.host_port", device), "opcua.host_port");
        assert_eq!(
            request_field("application[1].application_name", Some("application[1]")),
            "application_name"
        );
    }
}
