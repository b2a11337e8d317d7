//! Parts of the `[[application]]` tree the environment sets (`OPCGW_APPLICATION__<n>__...`).
//!
//! The environment wins over the file, so the console must not edit what a variable sets (the
//! edit would be silently overridden), and must not shift the list under a variable either:
//! the variable names a position, so deleting an application before it (or creating one at the
//! position it names) would move its values onto another application.

use super::{ConfigEdit, EditError, EnvLock};
use crate::config::env::{EnvSnapshot, ENV_PREFIX};
use crate::config::schema::AppConfig;

/// One variable of the `application` section, by the positions it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lock<'a> {
    variable: &'a str,
    /// `None`: the whole list (`OPCGW_APPLICATION`, or a position that is not a number).
    application: Option<usize>,
    scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The whole application (`OPCGW_APPLICATION__0`).
    Application,
    /// The application's own keys (`OPCGW_APPLICATION__0__APPLICATION_NAME`).
    OwnKeys,
    /// Its whole device list (`OPCGW_APPLICATION__0__DEVICE`).
    Devices,
    /// One device (`OPCGW_APPLICATION__0__DEVICE__1__DEVICE_NAME`).
    Device(usize),
}

fn parse(variable: &str) -> Option<Lock<'_>> {
    let section = format!("{ENV_PREFIX}APPLICATION");
    let upper = variable.to_ascii_uppercase();
    let rest = upper.strip_prefix(&section)?;
    if rest.is_empty() {
        return Some(Lock {
            variable,
            application: None,
            scope: Scope::Application,
        });
    }
    let mut parts = rest.strip_prefix("__")?.split("__");
    let Some(application) = parts.next().and_then(|p| p.parse::<usize>().ok()) else {
        return Some(Lock {
            variable,
            application: None,
            scope: Scope::Application,
        });
    };
    let scope = match parts.next() {
        None => Scope::Application,
        Some("DEVICE") => match parts.next().map(str::parse::<usize>) {
            Some(Ok(device)) => Scope::Device(device),
            _ => Scope::Devices,
        },
        Some(_) => Scope::OwnKeys,
    };
    Some(Lock {
        variable,
        application: Some(application),
        scope,
    })
}

fn locks(env: &EnvSnapshot) -> Vec<Lock<'_>> {
    env.names().filter_map(parse).collect()
}

/// The locks as the console shows them, by the ids the positions name in `live`.
pub fn env_locks(env: &EnvSnapshot, live: &AppConfig) -> Vec<EnvLock> {
    let mut out = Vec::new();
    for lock in locks(env) {
        let apps: Vec<usize> = match lock.application {
            None => (0..live.applications.len()).collect(),
            Some(a) if a < live.applications.len() => vec![a],
            Some(_) => Vec::new(),
        };
        for a in apps {
            let app = &live.applications[a];
            let device_id = match lock.scope {
                Scope::Device(d) => match app.devices.get(d) {
                    Some(device) => Some(device.device_id.clone()),
                    None => continue,
                },
                _ => None,
            };
            out.push(EnvLock {
                application_id: app.application_id.clone(),
                device_id,
                variable: lock.variable.to_string(),
            });
        }
    }
    out
}

/// Refuses `edit` when it would change, or shift, something a variable sets.
pub fn check_env_locks(
    env: &EnvSnapshot,
    live: &AppConfig,
    edit: &ConfigEdit,
) -> Result<(), EditError> {
    let app_index = |id: &str| {
        live.applications
            .iter()
            .position(|a| a.application_id == id)
    };
    let device_index = |app: usize, id: &str| {
        live.applications
            .get(app)
            .and_then(|a| a.devices.iter().position(|d| d.device_id == id))
    };
    // (application position, what the edit touches in it); unknown ids are left to the editor
    // (404), which needs no lock check.
    enum Touch {
        /// The application's own keys.
        Own,
        /// Positions from this one on shift (delete) or gain an entry (create).
        DevicesFrom(usize),
        /// One device.
        Device(usize),
    }
    let (app, touch, field) = match edit {
        ConfigEdit::CreateApplication { .. } => {
            (live.applications.len(), Touch::Own, "application")
        }
        ConfigEdit::UpdateApplication { application_id, .. } => match app_index(application_id) {
            Some(a) => (a, Touch::Own, "application_name"),
            None => return Ok(()),
        },
        ConfigEdit::DeleteApplication { application_id } => {
            let Some(a) = app_index(application_id) else {
                return Ok(());
            };
            // Every application from this position on moves.
            if let Some(lock) = locks(env)
                .into_iter()
                .find(|l| l.application.is_none_or(|x| x >= a))
            {
                return Err(refused("application", lock.variable));
            }
            return Ok(());
        }
        ConfigEdit::CreateDevice { application_id, .. } => match app_index(application_id) {
            Some(a) => (
                a,
                Touch::DevicesFrom(live.applications[a].devices.len()),
                "device",
            ),
            None => return Ok(()),
        },
        ConfigEdit::DeleteDevice {
            application_id,
            device_id,
        } => match app_index(application_id).and_then(|a| Some((a, device_index(a, device_id)?))) {
            Some((a, d)) => (a, Touch::DevicesFrom(d), "device"),
            None => return Ok(()),
        },
        ConfigEdit::UpdateDevice {
            application_id,
            device_id,
            ..
        }
        | ConfigEdit::CreateCommand {
            application_id,
            device_id,
            ..
        }
        | ConfigEdit::UpdateCommand {
            application_id,
            device_id,
            ..
        }
        | ConfigEdit::DeleteCommand {
            application_id,
            device_id,
            ..
        } => match app_index(application_id).and_then(|a| Some((a, device_index(a, device_id)?))) {
            Some((a, d)) => (a, Touch::Device(d), "device"),
            None => return Ok(()),
        },
    };
    for lock in locks(env) {
        let hit = match lock.application {
            None => true,
            Some(x) if matches!(edit, ConfigEdit::CreateApplication { .. }) => x >= app,
            Some(x) if x != app => false,
            Some(_) => match (lock.scope, &touch) {
                (Scope::Application, _) => true,
                (Scope::OwnKeys, Touch::Own) => true,
                (Scope::OwnKeys, _) => false,
                (Scope::Devices, Touch::Own) => false,
                (Scope::Devices, _) => true,
                (Scope::Device(_), Touch::Own) => false,
                (Scope::Device(d), Touch::DevicesFrom(from)) => d >= *from,
                (Scope::Device(d), Touch::Device(target)) => d == *target,
            },
        };
        if hit {
            return Err(refused(field, lock.variable));
        }
    }
    Ok(())
}

fn refused(field: &str, variable: &str) -> EditError {
    EditError::EnvOverride {
        field: field.to_string(),
        variable: variable.to_string(),
    }
}
