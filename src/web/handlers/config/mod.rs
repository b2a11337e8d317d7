//! The configuration API (docs/web.md, "Configuration"): reads of the live configuration, and
//! edits of the `[[application]]` tree, each one [`crate::config::edit::ConfigEdit`] sent to the
//! configuration's owner through [`crate::web::WebBackend`].
//!
//! Reads come from the configuration in force ([`crate::web::WebBackend::config`]) and, for
//! whether editing is possible, from the owner's view. Mutations are in [`mutations`], their
//! bodies in [`body`]; every outcome is audited ([`Edit`]).

pub mod body;
pub mod mutations;

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::edit::{EditError, EditSubject};
use crate::config::{AppConfig, ApplicationConfig, CommandConfig, DeviceConfig, MetricConfig};
use crate::web::auth::audit::{crud_event, CrudAction, EditTarget, EditVerdict};
use crate::web::auth::{source_ip, Principal};
use crate::web::error::ApiError;
use crate::web::WebState;

/// Who asks, for the audit trail.
#[derive(Debug, Clone)]
pub struct Caller {
    pub source: Option<IpAddr>,
    pub user: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            source: source_ip(&parts.extensions),
            user: parts
                .extensions
                .get::<Principal>()
                .map(|p| p.user().to_string())
                .unwrap_or_default(),
        })
    }
}

/// A refused change's answer (boxed so `Result`s that carry it stay small).
pub type Refusal = Box<Response>;

/// One audited change: every refusal is `<subject>_crud_rejected` with its reason, a success
/// `<subject>_<action>` with the generation now live.
pub struct Edit {
    state: WebState,
    caller: Caller,
    subject: EditSubject,
    action: CrudAction,
    pub target: EditTarget,
}

impl Edit {
    pub fn new(state: &WebState, caller: Caller, subject: EditSubject, action: CrudAction) -> Self {
        Self {
            state: state.clone(),
            caller,
            subject,
            action,
            target: EditTarget::default(),
        }
    }

    pub fn on(
        mut self,
        application_id: &str,
        device_id: Option<&str>,
        command: Option<&str>,
    ) -> Self {
        self.target = EditTarget {
            application_id: Some(application_id.to_string()),
            device_id: device_id.map(str::to_string),
            command_name: command.map(str::to_string),
        };
        self
    }

    /// Audits a refusal and turns it into the answer.
    pub fn refuse(&self, error: ApiError) -> Refusal {
        let reason = error.reason.unwrap_or("validation");
        self.audit(EditVerdict::Rejected { reason });
        Box::new(error.into_response())
    }

    pub fn refuse_edit(&self, error: &EditError) -> Refusal {
        self.refuse(ApiError::from_edit(error))
    }

    /// Sends the edit to the configuration's owner; `Err` is the audited refusal's answer.
    pub async fn apply(
        &self,
        edit: crate::config::edit::ConfigEdit,
    ) -> Result<crate::config::edit::EditOutcome, Refusal> {
        match self.state.backend().edit_config(edit).await {
            Ok(outcome) => {
                self.audit(EditVerdict::Applied {
                    generation: outcome.generation,
                });
                Ok(outcome)
            }
            Err(error) => Err(self.refuse_edit(&error)),
        }
    }

    fn audit(&self, verdict: EditVerdict<'_>) {
        let event = crud_event(
            self.subject,
            match verdict {
                EditVerdict::Applied { .. } => Some(self.action),
                EditVerdict::Rejected { .. } => None,
            },
        );
        self.state.audit().config_event(
            event,
            self.caller.source,
            &self.caller.user,
            &self.target,
            verdict,
        );
    }
}

/// What a CSRF refusal under `/api/applications*` is about, by path (`.../commands*` a
/// command, `.../devices*` a device, else an application), with the ids the path names.
pub fn csrf_subject(path: &str) -> Option<(EditSubject, EditTarget)> {
    let rest = path.strip_prefix("/api/applications")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let subject = match parts.len() {
        0 | 1 => EditSubject::Application,
        2 | 3 => EditSubject::Device,
        _ => EditSubject::Command,
    };
    let part = |i: usize| parts.get(i).map(|p| p.to_string());
    Some((
        subject,
        EditTarget {
            application_id: part(0),
            device_id: part(2),
            command_name: part(4),
        },
    ))
}

// --- Views (the JSON of docs/web.md) ---

#[derive(Debug, Serialize)]
pub struct ApplicationSummary<'a> {
    pub application_id: &'a str,
    pub application_name: &'a str,
    pub device_count: usize,
}

impl<'a> From<&'a ApplicationConfig> for ApplicationSummary<'a> {
    fn from(app: &'a ApplicationConfig) -> Self {
        Self {
            application_id: &app.application_id,
            application_name: &app.application_name,
            device_count: app.devices.len(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeviceSummary<'a> {
    pub device_id: &'a str,
    pub device_name: &'a str,
    pub metric_count: usize,
    pub command_count: usize,
    /// Discovered from ChirpStack, not written in the file (the console does not edit it).
    pub discovered: bool,
}

impl<'a> DeviceSummary<'a> {
    fn of(config: &AppConfig, device: &'a DeviceConfig) -> Self {
        Self {
            device_id: &device.device_id,
            device_name: &device.device_name,
            metric_count: device.metrics.len(),
            command_count: device.commands.len(),
            discovered: config.discovered.contains(&device.device_id),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeviceDetail<'a> {
    pub application_id: &'a str,
    pub device_id: &'a str,
    pub device_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_threshold_seconds: Option<u64>,
    pub read_metric: &'a [MetricConfig],
    pub command: &'a [CommandConfig],
}

impl<'a> DeviceDetail<'a> {
    pub fn new(application_id: &'a str, device: &'a DeviceConfig) -> Self {
        Self {
            application_id,
            device_id: &device.device_id,
            device_name: &device.device_name,
            stale_threshold_seconds: device.stale_threshold_seconds,
            read_metric: &device.metrics,
            command: &device.commands,
        }
    }
}

// --- Lookups: a miss is the same refusal the owner would give ---

/// An id from the path as a refusal quotes it: bounded, control characters escaped.
fn path_id(id: &str) -> String {
    crate::security::sanitize_for_log(id, body::MAX_TEXT_CHARS)
}

pub fn find_application<'a>(
    config: &'a AppConfig,
    application_id: &str,
) -> Result<&'a ApplicationConfig, EditError> {
    config
        .applications
        .iter()
        .find(|a| a.application_id == application_id)
        .ok_or_else(|| EditError::NotFound {
            subject: EditSubject::Application,
            id: path_id(application_id),
        })
}

pub fn find_device<'a>(
    config: &'a AppConfig,
    application_id: &str,
    device_id: &str,
) -> Result<&'a DeviceConfig, EditError> {
    find_application(config, application_id)?
        .devices
        .iter()
        .find(|d| d.device_id == device_id)
        .ok_or_else(|| EditError::NotFound {
            subject: EditSubject::Device,
            id: path_id(device_id),
        })
}

pub fn find_command<'a>(
    config: &'a AppConfig,
    application_id: &str,
    device_id: &str,
    command_name: &str,
) -> Result<&'a CommandConfig, EditError> {
    find_device(config, application_id, device_id)?
        .commands
        .iter()
        .find(|c| c.command_name == command_name)
        .ok_or_else(|| EditError::NotFound {
            subject: EditSubject::Command,
            id: path_id(command_name),
        })
}

fn not_found(error: EditError) -> Response {
    ApiError::from_edit(&error).into_response()
}

// --- Read routes ---

/// `GET /api/config`.
pub async fn view(State(state): State<WebState>) -> Response {
    match state.backend().config_view().await {
        Ok(view) => Json(view).into_response(),
        Err(error) => ApiError::from_edit(&error).into_response(),
    }
}

/// `GET /api/applications`.
pub async fn applications(State(state): State<WebState>) -> Response {
    let view = match state.backend().config_view().await {
        Ok(view) => view,
        Err(error) => return ApiError::from_edit(&error).into_response(),
    };
    let config = state.backend().config();
    let applications: Vec<ApplicationSummary> =
        config.applications.iter().map(Into::into).collect();
    Json(json!({
        "generation": view.generation,
        "editing": view.editing,
        "applications": applications,
    }))
    .into_response()
}

/// `GET /api/applications/{application_id}`.
pub async fn application(
    State(state): State<WebState>,
    Path(application_id): Path<String>,
) -> Response {
    let config = state.backend().config();
    match find_application(&config, &application_id) {
        Ok(app) => Json(json!({
            "application_id": app.application_id,
            "application_name": app.application_name,
            "devices": app
                .devices
                .iter()
                .map(|d| DeviceSummary::of(&config, d))
                .collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(error) => not_found(error),
    }
}

/// `GET /api/applications/{application_id}/devices`.
pub async fn devices(
    State(state): State<WebState>,
    Path(application_id): Path<String>,
) -> Response {
    let config = state.backend().config();
    match find_application(&config, &application_id) {
        Ok(app) => Json(json!({
            "devices": app
                .devices
                .iter()
                .map(|d| DeviceSummary::of(&config, d))
                .collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(error) => not_found(error),
    }
}

/// `GET /api/applications/{application_id}/devices/{device_id}`.
pub async fn device(
    State(state): State<WebState>,
    Path((application_id, device_id)): Path<(String, String)>,
) -> Response {
    let config = state.backend().config();
    match find_device(&config, &application_id, &device_id) {
        Ok(device) => Json(DeviceDetail::new(&application_id, device)).into_response(),
        Err(error) => not_found(error),
    }
}

/// `GET /api/applications/{a}/devices/{d}/commands`.
pub async fn commands(
    State(state): State<WebState>,
    Path((application_id, device_id)): Path<(String, String)>,
) -> Response {
    let config = state.backend().config();
    match find_device(&config, &application_id, &device_id) {
        Ok(device) => Json(json!({ "commands": device.commands })).into_response(),
        Err(error) => not_found(error),
    }
}

/// `GET /api/applications/{a}/devices/{d}/commands/{command_name}`.
pub async fn command(
    State(state): State<WebState>,
    Path((application_id, device_id, command_name)): Path<(String, String, String)>,
) -> Response {
    let config = state.backend().config();
    match find_command(&config, &application_id, &device_id, &command_name) {
        Ok(command) => Json(command).into_response(),
        Err(error) => not_found(error),
    }
}

/// A resource's JSON with the edit's `generation` and `class` added.
pub fn with_outcome(resource: impl Serialize, outcome: &crate::config::edit::EditOutcome) -> Value {
    let mut value = serde_json::to_value(resource).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("generation".into(), json!(outcome.generation));
        map.insert("class".into(), json!(outcome.class));
    }
    value
}

/// A path segment percent-encoded for a `Location` header (ids may hold any character but `/`).
pub fn segment(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_refusals_are_attributed_by_path() {
        let (subject, target) = csrf_subject("/api/applications").unwrap();
        assert_eq!(subject, EditSubject::Application);
        assert_eq!(target, EditTarget::default());
        let (subject, target) = csrf_subject("/api/applications/a1").unwrap();
        assert_eq!(subject, EditSubject::Application);
        assert_eq!(target.application_id.as_deref(), Some("a1"));
        assert_eq!(
            csrf_subject("/api/applications/a1/devices").unwrap().0,
            EditSubject::Device
        );
        let (subject, target) = csrf_subject("/api/applications/a1/devices/d1").unwrap();
        assert_eq!(subject, EditSubject::Device);
        assert_eq!(target.device_id.as_deref(), Some("d1"));
        assert_eq!(
            csrf_subject("/api/applications/a1/devices/d1/commands")
                .unwrap()
                .0,
            EditSubject::Command
        );
        let (subject, target) =
            csrf_subject("/api/applications/a1/devices/d1/commands/c1").unwrap();
        assert_eq!(subject, EditSubject::Command);
        assert_eq!(target.command_name.as_deref(), Some("c1"));
        assert!(csrf_subject("/api/applicationsX").is_none());
        assert!(csrf_subject("/api/devices/d1/commands/c1").is_none());
    }

    #[test]
    fn location_segments_are_percent_encoded() {
        assert_eq!(segment("a-1_b.c~"), "a-1_b.c~");
        assert_eq!(segment("my app?#"), "my%20app%3F%23");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
