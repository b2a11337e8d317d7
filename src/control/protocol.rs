//! Requests, responses and error codes of the control socket, and the typed parsing of a frame.
//!
//! Frames are parsed by hand from a JSON object rather than through serde's derive so that
//! every rejection names the offending field (`field \`limit\` must be …`) and carries the
//! request id back, which serde's messages for tagged enums do not.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::time_arg::parse_time_arg;
use super::MAX_RESPONSE_BYTES;
use crate::model::Timestamp;
use crate::security::sanitize_for_log;

/// The only message an unauthenticated peer ever receives.
pub const AUTH_FAILED_MESSAGE: &str = "authentication failed";

/// Longest string argument (device, metric, command name, log filter, string value). Names in
/// storage are at most 256 bytes and log filters are short; this leaves room without letting
/// one argument fill a frame.
pub const MAX_ARG_BYTES: usize = 1024;

/// Longest string request id echoed back. A longer one is refused (and not echoed).
pub const MAX_ID_BYTES: usize = 128;

/// Most rows one `history` request may ask for: 10,000 rows stay well under the response bound
/// even with long string values; page through longer ranges with `since`/`until`.
pub const MAX_HISTORY_LIMIT: usize = 10_000;

/// Most commands one `command_list` request may ask for.
pub const MAX_COMMAND_LIST_LIMIT: usize = 1_000;

/// How much of an offending client-supplied name (unknown command or field) an error quotes.
const MAX_QUOTED_CHARS: usize = 64;

/// Every command, as spelled in the `type` field.
const COMMAND_NAMES: &[&str] = &[
    "status",
    "reload",
    "discover",
    "devices",
    "read",
    "history",
    "command_send",
    "command_list",
    "log_level",
];

/// A command sent to the daemon. The serde derive gives the wire form (`{"type":"read",
/// "device":"…"}`) the client sends; frames received by the daemon go through
/// [`parse_request`], which also validates every argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Gateway and actor health.
    Status,
    /// Re-read the configuration, as SIGHUP does.
    Reload,
    /// List the devices of `discover = true` applications from ChirpStack now.
    Discover,
    /// The configured devices with their last-seen time and quality.
    Devices,
    /// Latest values of one device (or one metric of it).
    Read {
        device: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metric: Option<String>,
    },
    /// Stored values of one metric; `since`/`until` are RFC 3339 or relative ("15m", "2h", "7d"
    /// before now), see [`super::parse_time_arg`].
    History {
        device: String,
        metric: String,
        since: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// An OPC UA Part 13 aggregate ("average", "minimum", "time_average", ...) computed
        /// per `interval` instead of the stored rows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aggregate: Option<String>,
        /// The processing interval of `aggregate` ("15m", "1h", "1d"; "0" or absent: one
        /// interval over the whole window).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval: Option<String>,
    },
    /// Queue a downlink command; `value` is a JSON scalar.
    CommandSend {
        device: String,
        command: String,
        value: Value,
    },
    /// Recent commands, newest first.
    CommandList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Change the log filter at run time (`info`, `info,opcgw=debug`).
    LogLevel { filter: String },
}

impl Request {
    /// The command's name as spelled on the wire, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Reload => "reload",
            Self::Discover => "discover",
            Self::Devices => "devices",
            Self::Read { .. } => "read",
            Self::History { .. } => "history",
            Self::CommandSend { .. } => "command_send",
            Self::CommandList { .. } => "command_list",
            Self::LogLevel { .. } => "log_level",
        }
    }
}

/// A request with its id, which the response echoes so a client can match answers to
/// questions (ids are numbers or strings, chosen by the client).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: Option<Value>,
    pub request: Request,
}

impl Envelope {
    /// The frame for this request, newline included.
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        let mut value = serde_json::to_value(&self.request)?;
        if let (Value::Object(fields), Some(id)) = (&mut value, &self.id) {
            fields.insert("id".into(), id.clone());
        }
        let mut line = serde_json::to_string(&value)?;
        line.push('\n');
        Ok(line)
    }
}

/// The error token of a failed response; clients branch on it, people read the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No, or a wrong, token; the connection is closed after this.
    AuthFailed,
    /// The frame or an argument is invalid; the message names the field.
    BadRequest,
    /// The `type` is not a command.
    UnknownCommand,
    /// The daemon did not finish the request in time (it may still complete).
    Timeout,
    /// The part of the daemon that answers this is not running (restarting, disabled).
    Unavailable,
    /// Anything else; details are in the daemon's log.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthFailed => "auth_failed",
            Self::BadRequest => "bad_request",
            Self::UnknownCommand => "unknown_command",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` member of a failed response; also what a request handler returns on failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

/// One answer frame. Exactly one of `result` (when `ok`) and `error` is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    pub fn ok(id: Option<Value>, result: Value) -> Self {
        Self {
            id,
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn err(id: Option<Value>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::from_error(id, ErrorBody::new(code, message))
    }

    pub fn from_error(id: Option<Value>, error: ErrorBody) -> Self {
        Self {
            id,
            ok: false,
            result: None,
            error: Some(error),
        }
    }

    /// The single frame an unauthenticated peer gets before the connection closes. It carries
    /// no id: nothing from an unauthenticated frame is reflected back.
    pub fn auth_failed() -> Self {
        Self::err(None, ErrorCode::AuthFailed, AUTH_FAILED_MESSAGE)
    }

    /// The answer to a good auth frame.
    pub fn authenticated(id: Option<Value>) -> Self {
        Self::ok(id, serde_json::json!({ "authenticated": true }))
    }

    /// The frame, newline included. A result too large for [`MAX_RESPONSE_BYTES`] is replaced
    /// by a `bad_request` error (the fix is a narrower request), so the server never sends a
    /// frame the client refuses.
    pub fn to_line(&self) -> String {
        match serde_json::to_string(self) {
            Ok(mut line) if line.len() < MAX_RESPONSE_BYTES => {
                line.push('\n');
                line
            }
            Ok(line) => Self::err(
                self.id.clone(),
                ErrorCode::BadRequest,
                format!(
                    "the result is {} bytes, more than the {MAX_RESPONSE_BYTES} a response may \
                     carry; narrow the request (a smaller `limit` or time range)",
                    line.len()
                ),
            )
            .to_line(),
            // Serialising a Value cannot fail (its map keys are strings); keep a fixed answer
            // rather than a panic all the same.
            Err(_) => {
                "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"cannot encode the response\"}}\n".into()
            }
        }
    }
}

/// A frame that is not a valid request, with the id recovered from it when there was one, so
/// the error response still reaches the right caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    pub id: Option<Value>,
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    fn bad_request(id: Option<Value>, message: impl Into<String>) -> Self {
        Self {
            id,
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response {
        Response::err(self.id, self.code, self.message)
    }
}

/// Parses one request frame (the first, auth, frame goes through [`parse_auth`] instead).
pub fn parse_request(line: &str) -> Result<Envelope, ProtocolError> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| ProtocolError::bad_request(None, format!("invalid JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ProtocolError::bad_request(
            None,
            "a request must be a JSON object",
        ));
    };
    let id = take_id(&mut fields).map_err(|message| ProtocolError::bad_request(None, message))?;
    let kind = match fields.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => {
            return Err(ProtocolError::bad_request(
                id,
                "field `type` must be a string",
            ))
        }
        None => return Err(ProtocolError::bad_request(id, "missing field `type`")),
    };
    if kind == "auth" {
        return Err(ProtocolError::bad_request(
            id,
            "this connection is already authenticated",
        ));
    }
    let mut args = Args { fields };
    match build_request(&kind, &mut args) {
        Ok(Some(request)) => match args.finish() {
            Ok(()) => Ok(Envelope { id, request }),
            Err(message) => Err(ProtocolError::bad_request(id, message)),
        },
        Ok(None) => Err(ProtocolError {
            id,
            code: ErrorCode::UnknownCommand,
            message: format!(
                "unknown command `{}`; expected one of {}",
                sanitize_for_log(&kind, MAX_QUOTED_CHARS),
                COMMAND_NAMES.join(", ")
            ),
        }),
        Err(message) => Err(ProtocolError::bad_request(id, message)),
    }
}

/// The request named `kind` built from its arguments; `None` when `kind` is no command.
fn build_request(kind: &str, args: &mut Args) -> Result<Option<Request>, String> {
    let request = match kind {
        "status" => Request::Status,
        "reload" => Request::Reload,
        "discover" => Request::Discover,
        "devices" => Request::Devices,
        "read" => Request::Read {
            device: args.required_name("device")?,
            metric: args.optional_name("metric")?,
        },
        "history" => Request::History {
            device: args.required_name("device")?,
            metric: args.required_name("metric")?,
            since: args.required_time("since")?,
            until: args.optional_time("until")?,
            limit: args.optional_limit("limit", MAX_HISTORY_LIMIT)?,
            aggregate: args.optional_aggregate("aggregate")?,
            interval: args.optional_interval("interval")?,
        },
        "command_send" => Request::CommandSend {
            device: args.required_name("device")?,
            command: args.required_name("command")?,
            value: args.required_scalar("value")?,
        },
        "command_list" => Request::CommandList {
            device: args.optional_name("device")?,
            limit: args.optional_limit("limit", MAX_COMMAND_LIST_LIMIT)?,
        },
        "log_level" => Request::LogLevel {
            filter: args.required_name("filter")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(request))
}

/// Parses the first frame of a connection: `{"type":"auth","token":"…"}` with an optional id.
/// Anything else (another type, a missing or non-string token, extra fields) is `None`, and
/// the caller answers with the one `auth_failed` frame.
pub fn parse_auth(line: &str) -> Option<(Option<Value>, String)> {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    let id = take_id(&mut fields).ok()?;
    if fields.remove("type")? != Value::String("auth".into()) {
        return None;
    }
    let Value::String(token) = fields.remove("token")? else {
        return None;
    };
    fields.is_empty().then_some((id, token))
}

/// The auth frame a client sends first.
pub(crate) fn auth_line(id: Option<Value>, token: &str) -> String {
    let mut frame = Map::new();
    if let Some(id) = id {
        frame.insert("id".into(), id);
    }
    frame.insert("type".into(), Value::String("auth".into()));
    frame.insert("token".into(), Value::String(token.into()));
    let mut line = Value::Object(frame).to_string();
    line.push('\n');
    line
}

/// Removes and checks the `id`: a number or a short string; `null` counts as absent.
fn take_id(fields: &mut Map<String, Value>) -> Result<Option<Value>, String> {
    match fields.remove("id") {
        None | Some(Value::Null) => Ok(None),
        Some(id @ Value::Number(_)) => Ok(Some(id)),
        Some(Value::String(id)) if id.len() <= MAX_ID_BYTES => Ok(Some(Value::String(id))),
        Some(Value::String(_)) => Err(format!("field `id` must be at most {MAX_ID_BYTES} bytes")),
        Some(_) => Err("field `id` must be a number or a string".into()),
    }
}

/// The arguments of one request. Each accessor removes its field and checks it;
/// [`Args::finish`] then refuses leftover (unknown) fields, so a typo such as `limt` is an
/// error instead of being silently ignored. Errors name the field.
struct Args {
    fields: Map<String, Value>,
}

impl Args {
    /// A non-empty string of at most [`MAX_ARG_BYTES`] without control characters (names end
    /// up in logs and on terminals).
    fn required_name(&mut self, field: &str) -> Result<String, String> {
        match self.fields.remove(field) {
            None => Err(format!("missing field `{field}`")),
            Some(value) => checked_name(field, value),
        }
    }

    fn optional_name(&mut self, field: &str) -> Result<Option<String>, String> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => checked_name(field, value).map(Some),
        }
    }

    /// A time argument is kept as text (relative times resolve against the clock when the
    /// request runs) but its syntax is checked now, so a typo is a `bad_request` naming it.
    fn required_time(&mut self, field: &str) -> Result<String, String> {
        let text = self.required_name(field)?;
        checked_time(field, text)
    }

    fn optional_time(&mut self, field: &str) -> Result<Option<String>, String> {
        match self.optional_name(field)? {
            None => Ok(None),
            Some(text) => checked_time(field, text).map(Some),
        }
    }

    fn optional_aggregate(&mut self, field: &str) -> Result<Option<String>, String> {
        match self.optional_name(field)? {
            Some(name) if crate::storage::Aggregate::from_name(&name).is_none() => Err(format!(
                "field `{field}`: not an aggregate; one of {}",
                crate::storage::Aggregate::ALL
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            other => Ok(other),
        }
    }

    fn optional_interval(&mut self, field: &str) -> Result<Option<String>, String> {
        match self.optional_name(field)? {
            None => Ok(None),
            Some(text) => match super::parse_interval_arg(&text) {
                Ok(_) => Ok(Some(text)),
                Err(message) => Err(format!("field `{field}`: {message}")),
            },
        }
    }

    fn optional_limit(&mut self, field: &str, max: usize) -> Result<Option<usize>, String> {
        let value = match self.fields.remove(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(value) => value,
        };
        match value.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "field `{field}` must be an integer from 1 to {max}"
            )),
        }
    }

    fn required_scalar(&mut self, field: &str) -> Result<Value, String> {
        match self.fields.remove(field) {
            None => Err(format!("missing field `{field}`")),
            Some(Value::String(text)) if text.len() > MAX_ARG_BYTES => Err(format!(
                "field `{field}` must be at most {MAX_ARG_BYTES} bytes"
            )),
            Some(value @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => Ok(value),
            Some(_) => Err(format!(
                "field `{field}` must be a JSON scalar (a number, string or boolean)"
            )),
        }
    }

    fn finish(&self) -> Result<(), String> {
        match self.fields.keys().next() {
            None => Ok(()),
            Some(field) => Err(format!(
                "unknown field `{}`",
                sanitize_for_log(field, MAX_QUOTED_CHARS)
            )),
        }
    }
}

fn checked_name(field: &str, value: Value) -> Result<String, String> {
    let Value::String(text) = value else {
        return Err(format!("field `{field}` must be a string"));
    };
    if text.trim().is_empty() {
        Err(format!("field `{field}` must not be empty"))
    } else if text.len() > MAX_ARG_BYTES {
        Err(format!(
            "field `{field}` must be at most {MAX_ARG_BYTES} bytes"
        ))
    } else if text.chars().any(char::is_control) {
        Err(format!(
            "field `{field}` must not contain control characters"
        ))
    } else {
        Ok(text)
    }
}

fn checked_time(field: &str, text: String) -> Result<String, String> {
    match parse_time_arg(&text, Timestamp::now()) {
        Ok(_) => Ok(text),
        Err(message) => Err(format!("field `{field}`: {message}")),
    }
}
