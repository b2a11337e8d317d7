//! The bodies of configuration edits, parsed from bytes here (not by axum's `Json`) so that a
//! body that does not parse answers 422 with the JSON path at fault (`read_metric[2].metric_type`)
//! in the API's error shape, unknown keys are refused rather than silently dropped, and every
//! list and string is bounded before anything reaches the configuration's owner.

use axum::body::Bytes;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::edit::{DeviceSpec, DeviceUpdate, EditError, FieldProblem};
use crate::config::{CommandConfig, MetricConfig};
use crate::security::sanitize_for_log;
use crate::web::error::ApiError;

/// Most metrics one device may be given in one request.
pub const MAX_METRICS: usize = 1_000;
/// Most commands one device may be given in one request.
pub const MAX_COMMANDS: usize = 256;
/// Longest id, name or unit, in characters.
pub const MAX_TEXT_CHARS: usize = 256;
/// Longest parse message passed back (serde's text may quote the input).
const MAX_PARSE_MESSAGE_CHARS: usize = 200;

/// `POST /api/applications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    pub application_id: String,
    pub application_name: String,
}

/// `PUT /api/applications/{a}`: an `application_id`, if present, must equal the path's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRename {
    #[serde(default)]
    pub application_id: Option<String>,
    pub application_name: String,
}

/// `PUT .../devices/{d}`: [`DeviceUpdate`] plus an optional `device_id` equal to the path's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceReplace {
    #[serde(default)]
    pub device_id: Option<String>,
    pub device_name: String,
    #[serde(default)]
    pub stale_threshold_seconds: Option<u64>,
    #[serde(default)]
    pub read_metric: Vec<MetricConfig>,
}

impl DeviceReplace {
    pub fn into_update(self) -> DeviceUpdate {
        DeviceUpdate {
            device_name: self.device_name,
            stale_threshold_seconds: self.stale_threshold_seconds,
            read_metric: self.read_metric,
        }
    }
}

/// `POST /api/config/reload`: no body, or an empty object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {}

/// Parses a JSON body strictly: a syntax error, a wrong type, a missing or an unknown key is a
/// 422 `validation` naming the JSON path.
pub fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let mut unknown: Option<String> = None;
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = {
        let mut note_unknown = |path: serde_ignored::Path<'_>| {
            unknown.get_or_insert_with(|| ignored_path(&path));
        };
        let ignoring = serde_ignored::Deserializer::new(&mut json, &mut note_unknown);
        serde_path_to_error::deserialize(ignoring)
    };
    let value = match parsed {
        Ok(value) => value,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let message = sanitize_for_log(&inner.to_string(), MAX_PARSE_MESSAGE_CHARS);
            if inner.is_syntax() || inner.is_eof() {
                // The whole body is at fault.
                return Err(unprocessable(
                    format!("the body is not valid JSON ({message})"),
                    ".".into(),
                ));
            }
            let field = field_of(&path, &message);
            return Err(unprocessable(format!("{field}: {message}"), field));
        }
    };
    if json.end().is_err() {
        return Err(unprocessable(
            "the body holds more than one JSON value".into(),
            ".".into(),
        ));
    }
    if let Some(field) = unknown {
        return Err(unprocessable(
            format!("{field}: unknown field (see docs/web.md for the keys of this body)"),
            field,
        ));
    }
    Ok(value)
}

/// An empty body counts as `{}` (for routes whose body is optional).
pub fn parse_optional<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse(bytes)
}

fn unprocessable(text: String, field: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, text)
        .with_reason("validation")
        .with_field(field)
}

/// The path of the key at fault: serde points a missing key at its parent object, so the key
/// named in the message is appended.
fn field_of(path: &str, message: &str) -> String {
    let named = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(key)) => key.to_string(),
        (path, Some(key)) => format!("{path}.{key}"),
        (path, None) => path.to_string(),
    }
}

/// `read_metric[0].typo` from serde_ignored's `read_metric.0.typo`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// Collects bound violations in one pass (so a form shows all of them at once).
#[derive(Default)]
pub struct Bounds {
    problems: Vec<FieldProblem>,
}

impl Bounds {
    pub fn text(&mut self, field: impl Into<String>, value: &str) -> &mut Self {
        let chars = value.chars().count();
        if chars > MAX_TEXT_CHARS {
            self.problems.push(FieldProblem {
                field: field.into(),
                message: format!("at most {MAX_TEXT_CHARS} characters ({chars} given)"),
            });
        }
        self
    }

    pub fn metrics(&mut self, prefix: &str, metrics: &[MetricConfig]) -> &mut Self {
        if metrics.len() > MAX_METRICS {
            self.problems.push(FieldProblem {
                field: format!("{prefix}read_metric"),
                message: format!(
                    "at most {MAX_METRICS} metrics per device ({} given)",
                    metrics.len()
                ),
            });
            return self;
        }
        for (i, m) in metrics.iter().enumerate() {
            let at = format!("{prefix}read_metric[{i}]");
            self.text(format!("{at}.metric_name"), &m.metric_name).text(
                format!("{at}.chirpstack_metric_name"),
                &m.chirpstack_metric_name,
            );
            if let Some(unit) = &m.metric_unit {
                self.text(format!("{at}.metric_unit"), unit);
            }
        }
        self
    }

    pub fn commands(&mut self, prefix: &str, commands: &[CommandConfig]) -> &mut Self {
        if commands.len() > MAX_COMMANDS {
            self.problems.push(FieldProblem {
                field: format!("{prefix}command"),
                message: format!(
                    "at most {MAX_COMMANDS} commands per device ({} given)",
                    commands.len()
                ),
            });
            return self;
        }
        for (i, c) in commands.iter().enumerate() {
            self.command(&format!("{prefix}command[{i}]."), c);
        }
        self
    }

    pub fn command(&mut self, prefix: &str, command: &CommandConfig) -> &mut Self {
        self.text(format!("{prefix}command_name"), &command.command_name)
    }

    pub fn device_spec(&mut self, device: &DeviceSpec) -> &mut Self {
        self.text("device_id", &device.device_id)
            .text("device_name", &device.device_name)
            .metrics("", &device.read_metric)
            .commands("", &device.command)
    }

    /// `Ok` when every bound holds, else the 422 `validation` refusal listing them all.
    pub fn check(&mut self) -> Result<(), EditError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(EditError::Validation {
                problems: std::mem::take(&mut self.problems),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> ApiError {
        parse::<T>(&Bytes::from(body.to_string())).expect_err(body)
    }

    #[test]
    fn a_wrong_type_deep_in_the_body_names_its_json_path() {
        let body = r#"{"device_id":"d","device_name":"D","read_metric":[
            {"metric_name":"a","chirpstack_metric_name":"a","metric_type":"Float"},
            {"metric_name":"b","chirpstack_metric_name":"b","metric_type":"Floaty"}]}"#;
        let error = refusal::<DeviceSpec>(body);
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.reason, Some("validation"));
        assert_eq!(error.field.as_deref(), Some("read_metric[1].metric_type"));
    }

    #[test]
    fn missing_and_unknown_keys_are_named_with_their_parent() {
        let missing = refusal::<DeviceSpec>(
            r#"{"device_id":"d","device_name":"D","read_metric":[{"metric_name":"a","metric_type":"Int"}]}"#,
        );
        assert_eq!(
            missing.field.as_deref(),
            Some("read_metric[0].chirpstack_metric_name")
        );
        let top = refusal::<NewApplication>(r#"{"application_id":"a"}"#);
        assert_eq!(top.field.as_deref(), Some("application_name"));
        // deny_unknown_fields on the outer type, serde_ignored on the nested ones.
        let outer = refusal::<NewApplication>(
            r#"{"application_id":"a","application_name":"A","colour":"red"}"#,
        );
        assert_eq!(outer.field.as_deref(), Some("colour"));
        let nested = refusal::<DeviceSpec>(
            r#"{"device_id":"d","device_name":"D","command":[{"command_name":"c","command_id":1,"command_port":2,"colour":1}]}"#,
        );
        assert_eq!(nested.field.as_deref(), Some("command[0].colour"));
    }

    #[test]
    fn broken_json_and_trailing_values_are_refused() {
        let broken = refusal::<NewApplication>(r#"{"application_id":"#);
        assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            broken.message.contains("not valid JSON"),
            "{}",
            broken.message
        );
        let two =
            refusal::<NewApplication>(r#"{"application_id":"a","application_name":"A"} {"x":1}"#);
        assert!(two.message.contains("more than one"), "{}", two.message);
    }

    #[test]
    fn an_empty_body_is_an_empty_object_where_the_body_is_optional() {
        assert!(parse_optional::<ReloadRequest>(&Bytes::new()).is_ok());
        assert!(parse_optional::<ReloadRequest>(&Bytes::from_static(b"{}")).is_ok());
        assert!(parse_optional::<ReloadRequest>(&Bytes::from_static(b"{\"x\":1}")).is_err());
    }

    #[test]
    fn bounds_list_every_violation_in_request_terms() {
        let metric = MetricConfig {
            metric_name: "m".repeat(MAX_TEXT_CHARS + 1),
            chirpstack_metric_name: "ok".into(),
            metric_type: crate::model::MetricType::Float,
            metric_unit: Some("u".repeat(MAX_TEXT_CHARS)),
        };
        let device = DeviceSpec {
            device_id: "d".repeat(MAX_TEXT_CHARS + 1),
            device_name: "D".into(),
            stale_threshold_seconds: None,
            read_metric: vec![metric.clone(), metric],
            command: vec![],
        };
        let Err(EditError::Validation { problems }) =
            Bounds::default().device_spec(&device).check()
        else {
            panic!("bounds violated");
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "device_id",
                "read_metric[0].metric_name",
                "read_metric[1].metric_name"
            ]
        );
        let many = DeviceSpec {
            device_id: "d".into(),
            device_name: "D".into(),
            stale_threshold_seconds: None,
            read_metric: vec![],
            command: vec![
                CommandConfig {
                    command_name: "c".into(),
                    command_id: 1,
                    command_confirmed: false,
                    command_port: 1,
                    command_type: crate::model::MetricType::Int,
                    command_min: None,
                    command_max: None,
                };
                MAX_COMMANDS + 1
            ],
        };
        let Err(EditError::Validation { problems }) = Bounds::default().device_spec(&many).check()
        else {
            panic!("too many commands");
        };
        assert_eq!(problems[0].field, "command");
        assert!(Bounds::default()
            .device_spec(&DeviceSpec {
                command: vec![],
                ..many
            })
            .check()
            .is_ok());
    }
}
