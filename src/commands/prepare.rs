//! From an operator's request to a command ready to queue: find the command, take the value
//! strictly as the command's type, check it, encode it.

use super::payload::{encode_payload, MAX_PAYLOAD_BYTES};
use super::validate::{check_payload, check_value};
use super::{Downlink, NewCommand};
use crate::config::{AppConfig, CommandConfig};
use crate::model::{MetricType, Value};

/// Why a command was not queued. Each says what was wrong with the request (not with the
/// gateway), so it is safe to show to the operator who sent it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandRejection {
    #[error("unknown device {device_id:?}")]
    UnknownDevice { device_id: String },
    #[error("device {device_id:?} has no command {command_name:?}")]
    UnknownCommand {
        device_id: String,
        command_name: String,
    },
    #[error("command {command_name} takes {expected:?}: {detail}")]
    TypeMismatch {
        command_name: String,
        expected: MetricType,
        detail: String,
    },
    #[error("the value is not finite")]
    NotFinite,
    #[error("{value} is outside the range {}..={} of command {command_name}",
        min.map_or("-inf".to_string(), |v| v.to_string()),
        max.map_or("inf".to_string(), |v| v.to_string()))]
    OutOfRange {
        command_name: String,
        value: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    #[error("the payload of {bytes} bytes exceeds {MAX_PAYLOAD_BYTES}")]
    PayloadTooLarge { bytes: usize },
    #[error("an empty string is not a command")]
    EmptyString,
}

impl CommandRejection {
    /// The request field the rejection is about (`device`, `command` or `value`).
    pub fn field(&self) -> &'static str {
        match self {
            Self::UnknownDevice { .. } => "device",
            Self::UnknownCommand { .. } => "command",
            _ => "value",
        }
    }
}

/// A value as an operator sent it (an OPC UA Variant, a JSON value, ...), taken as the type of
/// the command it is for. Each edge converts strictly, in its own way: no lossy conversion.
pub trait CommandInput {
    /// The value as `command_type`, or why it is not one (shown to the operator).
    fn to_command_value(&self, command_type: MetricType) -> Result<Value, String>;
}

/// An already typed value (checked against the command's type by [`prepare`]).
impl CommandInput for Value {
    fn to_command_value(&self, _command_type: MetricType) -> Result<Value, String> {
        Ok(self.clone())
    }
}

/// A conversion an edge supplies as a closure.
impl<F> CommandInput for F
where
    F: Fn(MetricType) -> Result<Value, String>,
{
    fn to_command_value(&self, command_type: MetricType) -> Result<Value, String> {
        self(command_type)
    }
}

/// The configuration of `command_name` of `device_id`.
pub fn find_command<'a>(
    config: &'a AppConfig,
    device_id: &str,
    command_name: &str,
) -> Result<&'a CommandConfig, CommandRejection> {
    let Some((_, device)) = config.devices().find(|(_, d)| d.device_id == device_id) else {
        return Err(CommandRejection::UnknownDevice {
            device_id: device_id.to_string(),
        });
    };
    device
        .commands
        .iter()
        .find(|c| c.command_name == command_name)
        .ok_or_else(|| CommandRejection::UnknownCommand {
            device_id: device_id.to_string(),
            command_name: command_name.to_string(),
        })
}

/// The one way to turn an operator's request into a command to queue: used by OPC UA writes,
/// `opcgw ctl command` and the web console, so all of them accept and refuse the same values
/// and encode them the same way.
pub fn prepare(
    config: &AppConfig,
    device_id: &str,
    command_name: &str,
    value: &impl CommandInput,
    requested_by: String,
) -> Result<NewCommand, CommandRejection> {
    let command = find_command(config, device_id, command_name)?;
    let value = value
        .to_command_value(command.command_type)
        .map_err(|detail| CommandRejection::TypeMismatch {
            command_name: command.command_name.clone(),
            expected: command.command_type,
            detail,
        })?;
    check_value(command, &value)?;
    let payload = encode_payload(&value);
    check_payload(command, &payload)?;
    Ok(NewCommand {
        downlink: Downlink {
            device_id: device_id.to_string(),
            command_name: command.command_name.clone(),
            f_port: u32::from(command.command_port),
            confirmed: command.command_confirmed,
            payload,
        },
        requested_by,
    })
}
