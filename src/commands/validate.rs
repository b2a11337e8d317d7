//! What makes a command value acceptable: its type, a finite number inside the configured
//! `command_min`/`command_max`, and a payload that a LoRaWAN downlink can carry. Every path
//! that queues a command goes through these checks, once.

use super::payload::MAX_PAYLOAD_BYTES;
use super::CommandRejection;
use crate::config::CommandConfig;
use crate::model::{MetricType, Value};

/// Checks a value against its command's type and range (before encoding).
pub fn check_value(command: &CommandConfig, value: &Value) -> Result<(), CommandRejection> {
    if value.metric_type() != command.command_type {
        return Err(CommandRejection::TypeMismatch {
            command_name: command.command_name.clone(),
            expected: command.command_type,
            detail: format!("got {:?}", value.metric_type()),
        });
    }
    let number = match value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(_) | Value::String(_) => return Ok(()),
    };
    if !number.is_finite() {
        return Err(CommandRejection::NotFinite);
    }
    let below = command.command_min.is_some_and(|min| number < min);
    let above = command.command_max.is_some_and(|max| number > max);
    if below || above {
        return Err(CommandRejection::OutOfRange {
            command_name: command.command_name.clone(),
            value: number,
            min: command.command_min,
            max: command.command_max,
        });
    }
    Ok(())
}

/// Checks an encoded payload (after encoding): not empty for a string, not above what LoRaWAN
/// carries.
pub fn check_payload(command: &CommandConfig, payload: &[u8]) -> Result<(), CommandRejection> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(CommandRejection::PayloadTooLarge {
            bytes: payload.len(),
        });
    }
    if command.command_type == MetricType::String && payload.is_empty() {
        return Err(CommandRejection::EmptyString);
    }
    Ok(())
}
