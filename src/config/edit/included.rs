//! What the running configuration holds outside the main file: entries written in files the
//! main file includes (`include = [...]`), which the console does not edit.

use super::{ConfigEdit, EditSubject};
use crate::config::schema::AppConfig;

/// Whether what `edit` names (`id`, a `subject`) is in the running configuration, where the
/// edit says it is.
pub(super) fn configured(
    live: &AppConfig,
    edit: &ConfigEdit,
    subject: EditSubject,
    id: &str,
) -> bool {
    let (application_id, device_id) = edit.target();
    let Some(application) = live
        .applications
        .iter()
        .find(|a| a.application_id == application_id)
    else {
        return false;
    };
    let device = device_id.and_then(|id| application.devices.iter().find(|d| d.device_id == id));
    match subject {
        EditSubject::Application => true,
        EditSubject::Device => device.is_some_and(|d| d.device_id == id),
        EditSubject::Command => {
            device.is_some_and(|d| d.commands.iter().any(|c| c.command_name == id))
        }
    }
}
