//! The mutating routes of the configuration API. Each builds one `ConfigEdit` and sends it to
//! the configuration's owner, which re-checks everything checked here: the cheap checks
//! (unknown path ids, an id changed in the body, bounds, duplicate ids) answer without a
//! message, so a typo never waits behind a file write.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::body::{self, ApplicationRename, Bounds, DeviceReplace, NewApplication, ReloadRequest};
use super::Refusal;
use super::{
    find_application, find_command, find_device, segment, with_outcome, ApplicationSummary, Caller,
    DeviceDetail, Edit,
};
use crate::config::edit::{ConfigEdit, DeviceSpec, EditError, EditSubject};
use crate::config::{CommandConfig, DeviceConfig};
use crate::web::auth::audit::{CrudAction, EditTarget, EditVerdict, CONFIG_RELOAD_ATTEMPTED};
use crate::web::error::ApiError;
use crate::web::json::ApiBytes;
use crate::web::WebState;

type Body = Result<ApiBytes, ApiError>;

/// Parses the body, or the audited refusal's answer.
fn parse<T: serde::de::DeserializeOwned>(edit: &Edit, bytes: Body) -> Result<T, Refusal> {
    bytes
        .and_then(|ApiBytes(bytes)| body::parse(&bytes))
        .map_err(|error| edit.refuse(error))
}

fn check(edit: &Edit, result: Result<(), EditError>) -> Result<(), Refusal> {
    result.map_err(|error| edit.refuse_edit(&error))
}

fn created(location: String, body: serde_json::Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

fn unwrap(result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(|refusal| *refusal)
}

// --- Applications ---

/// `POST /api/applications`.
pub async fn create_application(
    State(state): State<WebState>,
    caller: Caller,
    bytes: Body,
) -> Response {
    let mut edit = Edit::new(
        &state,
        caller,
        EditSubject::Application,
        CrudAction::Created,
    );
    unwrap(
        async move {
            let app: NewApplication = parse(&edit, bytes)?;
            edit = edit.on(&app.application_id, None, None);
            check(
                &edit,
                Bounds::default()
                    .text("application_id", &app.application_id)
                    .text("application_name", &app.application_name)
                    .check(),
            )?;
            let config = state.backend().config();
            if find_application(&config, &app.application_id).is_ok() {
                return Err(edit.refuse_edit(&EditError::Conflict {
                    message: format!(
                        "application_id {:?} is already configured; ids are unique",
                        app.application_id
                    ),
                }));
            }
            let outcome = edit
                .apply(ConfigEdit::CreateApplication {
                    application_id: app.application_id.clone(),
                    application_name: app.application_name.clone(),
                })
                .await?;
            Ok(created(
                format!("/api/applications/{}", segment(&app.application_id)),
                with_outcome(
                    ApplicationSummary {
                        application_id: &app.application_id,
                        application_name: &app.application_name,
                        device_count: 0,
                    },
                    &outcome,
                ),
            ))
        }
        .await,
    )
}

/// `PUT /api/applications/{application_id}`: renames.
pub async fn update_application(
    State(state): State<WebState>,
    caller: Caller,
    Path(application_id): Path<String>,
    bytes: Body,
) -> Response {
    let edit = Edit::new(
        &state,
        caller,
        EditSubject::Application,
        CrudAction::Updated,
    )
    .on(&application_id, None, None);
    unwrap(
        async move {
            let config = state.backend().config();
            let device_count = find_application(&config, &application_id)
                .map_err(|e| edit.refuse_edit(&e))?
                .devices
                .len();
            let rename: ApplicationRename = parse(&edit, bytes)?;
            immutable(
                &edit,
                "application_id",
                rename.application_id.as_deref(),
                &application_id,
            )?;
            check(
                &edit,
                Bounds::default()
                    .text("application_name", &rename.application_name)
                    .check(),
            )?;
            let outcome = edit
                .apply(ConfigEdit::UpdateApplication {
                    application_id: application_id.clone(),
                    application_name: rename.application_name.clone(),
                })
                .await?;
            Ok(Json(with_outcome(
                ApplicationSummary {
                    application_id: &application_id,
                    application_name: &rename.application_name,
                    device_count,
                },
                &outcome,
            ))
            .into_response())
        }
        .await,
    )
}

/// `DELETE /api/applications/{application_id}`: refused while it has devices or is the only one.
pub async fn delete_application(
    State(state): State<WebState>,
    caller: Caller,
    Path(application_id): Path<String>,
) -> Response {
    let edit = Edit::new(
        &state,
        caller,
        EditSubject::Application,
        CrudAction::Deleted,
    )
    .on(&application_id, None, None);
    unwrap(
        async move {
            let config = state.backend().config();
            let app =
                find_application(&config, &application_id).map_err(|e| edit.refuse_edit(&e))?;
            let refusal = if !app.devices.is_empty() {
                Some(format!(
                    "application {application_id:?} still has {} device(s); delete them first",
                    app.devices.len()
                ))
            } else if config.applications.len() == 1 {
                Some(format!(
                "application {application_id:?} is the only one; create another before deleting it"
            ))
            } else {
                None
            };
            if let Some(message) = refusal {
                return Err(edit.refuse_edit(&EditError::Conflict { message }));
            }
            edit.apply(ConfigEdit::DeleteApplication {
                application_id: application_id.clone(),
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

fn immutable(edit: &Edit, field: &str, sent: Option<&str>, path: &str) -> Result<(), Refusal> {
    match sent {
        Some(sent) if sent != path => Err(edit.refuse_edit(&EditError::Immutable {
            field: field.to_string(),
        })),
        _ => Ok(()),
    }
}

// --- Devices ---

/// `POST /api/applications/{application_id}/devices`.
pub async fn create_device(
    State(state): State<WebState>,
    caller: Caller,
    Path(application_id): Path<String>,
    bytes: Body,
) -> Response {
    let mut edit = Edit::new(&state, caller, EditSubject::Device, CrudAction::Created).on(
        &application_id,
        None,
        None,
    );
    unwrap(async move {
        let config = state.backend().config();
        find_application(&config, &application_id).map_err(|e| edit.refuse_edit(&e))?;
        let spec: DeviceSpec = parse(&edit, bytes)?;
        edit = edit.on(&application_id, Some(&spec.device_id), None);
        check(&edit, Bounds::default().device_spec(&spec).check())?;
        if let Some((app, _)) = config.devices().find(|(_, d)| d.device_id == spec.device_id) {
            return Err(edit.refuse_edit(&EditError::Conflict {
                message: format!(
                    "device_id {:?} is already configured (in application {:?}); device ids are unique across applications",
                    spec.device_id, app.application_id
                ),
            }));
        }
        let outcome = edit
            .apply(ConfigEdit::CreateDevice {
                application_id: application_id.clone(),
                device: spec.clone(),
            })
            .await?;
        let device = DeviceConfig {
            device_name: spec.device_name,
            device_id: spec.device_id,
            stale_threshold_seconds: spec.stale_threshold_seconds,
            metrics: spec.read_metric,
            commands: spec.command,
        };
        Ok(created(
            format!(
                "/api/applications/{}/devices/{}",
                segment(&application_id),
                segment(&device.device_id)
            ),
            with_outcome(DeviceDetail::new(&application_id, &device), &outcome),
        ))
    }
    .await)
}

/// `PUT /api/applications/{a}/devices/{d}`: replaces the name, the staleness override and the
/// metrics; the commands stay.
pub async fn update_device(
    State(state): State<WebState>,
    caller: Caller,
    Path((application_id, device_id)): Path<(String, String)>,
    bytes: Body,
) -> Response {
    let edit = Edit::new(&state, caller, EditSubject::Device, CrudAction::Updated).on(
        &application_id,
        Some(&device_id),
        None,
    );
    unwrap(
        async move {
            let config = state.backend().config();
            let commands = find_device(&config, &application_id, &device_id)
                .map_err(|e| edit.refuse_edit(&e))?
                .commands
                .clone();
            let replace: DeviceReplace = parse(&edit, bytes)?;
            immutable(&edit, "device_id", replace.device_id.as_deref(), &device_id)?;
            check(
                &edit,
                Bounds::default()
                    .text("device_name", &replace.device_name)
                    .metrics("", &replace.read_metric)
                    .check(),
            )?;
            let update = replace.into_update();
            let outcome = edit
                .apply(ConfigEdit::UpdateDevice {
                    application_id: application_id.clone(),
                    device_id: device_id.clone(),
                    device: update.clone(),
                })
                .await?;
            let device = DeviceConfig {
                device_name: update.device_name,
                device_id: device_id.clone(),
                stale_threshold_seconds: update.stale_threshold_seconds,
                metrics: update.read_metric,
                commands,
            };
            Ok(Json(with_outcome(
                DeviceDetail::new(&application_id, &device),
                &outcome,
            ))
            .into_response())
        }
        .await,
    )
}

/// `DELETE /api/applications/{a}/devices/{d}`.
pub async fn delete_device(
    State(state): State<WebState>,
    caller: Caller,
    Path((application_id, device_id)): Path<(String, String)>,
) -> Response {
    let edit = Edit::new(&state, caller, EditSubject::Device, CrudAction::Deleted).on(
        &application_id,
        Some(&device_id),
        None,
    );
    unwrap(
        async move {
            let config = state.backend().config();
            find_device(&config, &application_id, &device_id).map_err(|e| edit.refuse_edit(&e))?;
            edit.apply(ConfigEdit::DeleteDevice {
                application_id: application_id.clone(),
                device_id: device_id.clone(),
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

// --- Commands ---

/// `POST /api/applications/{a}/devices/{d}/commands`.
pub async fn create_command(
    State(state): State<WebState>,
    caller: Caller,
    Path((application_id, device_id)): Path<(String, String)>,
    bytes: Body,
) -> Response {
    let mut edit = Edit::new(&state, caller, EditSubject::Command, CrudAction::Created).on(
        &application_id,
        Some(&device_id),
        None,
    );
    unwrap(
        async move {
            let config = state.backend().config();
            let device = find_device(&config, &application_id, &device_id)
                .map_err(|e| edit.refuse_edit(&e))?;
            let command: CommandConfig = parse(&edit, bytes)?;
            edit = edit.on(
                &application_id,
                Some(&device_id),
                Some(&command.command_name),
            );
            check(&edit, Bounds::default().command("", &command).check())?;
            if device.commands.len() >= body::MAX_COMMANDS {
                return Err(edit.refuse_edit(&EditError::Validation {
                    problems: vec![crate::config::edit::FieldProblem {
                        field: "command_name".into(),
                        message: format!(
                            "the device already has {} commands, the most one device may have",
                            body::MAX_COMMANDS
                        ),
                    }],
                }));
            }
            if device
                .commands
                .iter()
                .any(|c| c.command_name == command.command_name)
            {
                return Err(edit.refuse_edit(&EditError::Conflict {
                    message: format!(
                        "command_name {:?} is already configured on device {device_id:?}",
                        command.command_name
                    ),
                }));
            }
            let outcome = edit
                .apply(ConfigEdit::CreateCommand {
                    application_id: application_id.clone(),
                    device_id: device_id.clone(),
                    command: command.clone(),
                })
                .await?;
            Ok(created(
                format!(
                    "/api/applications/{}/devices/{}/commands/{}",
                    segment(&application_id),
                    segment(&device_id),
                    segment(&command.command_name)
                ),
                with_outcome(&command, &outcome),
            ))
        }
        .await,
    )
}

/// `PUT /api/applications/{a}/devices/{d}/commands/{c}`: replaces the command.
pub async fn update_command(
    State(state): State<WebState>,
    caller: Caller,
    Path((application_id, device_id, command_name)): Path<(String, String, String)>,
    bytes: Body,
) -> Response {
    let edit = Edit::new(&state, caller, EditSubject::Command, CrudAction::Updated).on(
        &application_id,
        Some(&device_id),
        Some(&command_name),
    );
    unwrap(
        async move {
            let config = state.backend().config();
            find_command(&config, &application_id, &device_id, &command_name)
                .map_err(|e| edit.refuse_edit(&e))?;
            let command: CommandConfig = parse(&edit, bytes)?;
            immutable(
                &edit,
                "command_name",
                Some(&command.command_name),
                &command_name,
            )?;
            let outcome = edit
                .apply(ConfigEdit::UpdateCommand {
                    application_id: application_id.clone(),
                    device_id: device_id.clone(),
                    command_name: command_name.clone(),
                    command: command.clone(),
                })
                .await?;
            Ok(Json(with_outcome(&command, &outcome)).into_response())
        }
        .await,
    )
}

/// `DELETE /api/applications/{a}/devices/{d}/commands/{c}`.
pub async fn delete_command(
    State(state): State<WebState>,
    caller: Caller,
    Path((application_id, device_id, command_name)): Path<(String, String, String)>,
) -> Response {
    let edit = Edit::new(&state, caller, EditSubject::Command, CrudAction::Deleted).on(
        &application_id,
        Some(&device_id),
        Some(&command_name),
    );
    unwrap(
        async move {
            let config = state.backend().config();
            find_command(&config, &application_id, &device_id, &command_name)
                .map_err(|e| edit.refuse_edit(&e))?;
            edit.apply(ConfigEdit::DeleteCommand {
                application_id: application_id.clone(),
                device_id: device_id.clone(),
                command_name: command_name.clone(),
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

// --- Reload ---

/// `POST /api/config/reload`: re-reads the file as SIGHUP does (trigger `web`).
pub async fn reload(State(state): State<WebState>, caller: Caller, bytes: Body) -> Response {
    let audit = |verdict| {
        state.audit().config_event(
            CONFIG_RELOAD_ATTEMPTED,
            caller.source,
            &caller.user,
            &EditTarget::default(),
            verdict,
        )
    };
    let parsed = bytes.and_then(|ApiBytes(bytes)| body::parse_optional::<ReloadRequest>(&bytes));
    if let Err(error) = parsed {
        audit(EditVerdict::Rejected {
            reason: error.reason.unwrap_or("validation"),
        });
        return error.into_response();
    }
    match state.backend().reload_config().await {
        Ok(reloaded) => {
            audit(EditVerdict::Applied {
                generation: reloaded.generation,
            });
            Json(json!({
                "generation": reloaded.generation,
                "changed_knobs": reloaded.changed_knobs,
            }))
            .into_response()
        }
        Err(error) => {
            audit(EditVerdict::Rejected {
                reason: error.reason(),
            });
            ApiError::from_edit(&error).into_response()
        }
    }
}
