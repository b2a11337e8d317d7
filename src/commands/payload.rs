//! Command values to downlink payloads.
//!
//! Bool: one byte, 0 or 1. Int: big-endian two's complement in the fewest of 1, 2, 4 or 8
//! bytes that hold the value. Float: IEEE 754 single precision, big-endian (what LoRaWAN
//! device firmware reads). String: its UTF-8 bytes. A value outside the configured
//! `command_min`/`command_max`, of the wrong type, or longer than a LoRaWAN payload can carry
//! is refused before anything is queued.

use crate::config::{CommandConfig, MetricType};
use crate::model::Value;

/// The largest application payload LoRaWAN carries (DR with the largest payload, EU868).
pub const MAX_PAYLOAD_BYTES: usize = 242;

/// Checks `value` against the command's type and range and encodes it.
pub fn encode_command(command: &CommandConfig, value: &Value) -> Result<Vec<u8>, String> {
    if value.metric_type() != command.command_type {
        return Err(format!(
            "command {} takes {:?}, not {:?}",
            command.command_name,
            command.command_type,
            value.metric_type()
        ));
    }
    let numeric = match value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    if let Some(x) = numeric {
        if !x.is_finite() {
            return Err("the value is not finite".into());
        }
        if command.command_min.is_some_and(|min| x < min)
            || command.command_max.is_some_and(|max| x > max)
        {
            return Err(format!(
                "{x} is outside the range {}..={} of command {}",
                command
                    .command_min
                    .map_or("-inf".to_string(), |v| v.to_string()),
                command
                    .command_max
                    .map_or("inf".to_string(), |v| v.to_string()),
                command.command_name
            ));
        }
    }
    let payload = match value {
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Int(i) => {
            let bytes = i.to_be_bytes();
            let width = if i8::try_from(*i).is_ok() {
                1
            } else if i16::try_from(*i).is_ok() {
                2
            } else if i32::try_from(*i).is_ok() {
                4
            } else {
                8
            };
            bytes[8 - width..].to_vec()
        }
        Value::Float(f) => (*f as f32).to_be_bytes().to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "the payload of {} bytes exceeds {MAX_PAYLOAD_BYTES}",
            payload.len()
        ));
    }
    if command.command_type == MetricType::String && payload.is_empty() {
        return Err("an empty string is not a command".into());
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(ty: MetricType, min: Option<f64>, max: Option<f64>) -> CommandConfig {
        CommandConfig {
            command_name: "c".into(),
            command_id: 1,
            command_confirmed: false,
            command_port: 10,
            command_type: ty,
            command_min: min,
            command_max: max,
        }
    }

    #[test]
    fn values_encode_in_the_documented_shapes() {
        let int = command(MetricType::Int, None, None);
        assert_eq!(encode_command(&int, &Value::Int(1)), Ok(vec![1]));
        assert_eq!(encode_command(&int, &Value::Int(-2)), Ok(vec![0xfe]));
        assert_eq!(encode_command(&int, &Value::Int(300)), Ok(vec![0x01, 0x2c]));
        assert_eq!(
            encode_command(&int, &Value::Int(70_000)),
            Ok(vec![0, 1, 0x11, 0x70])
        );
        assert_eq!(
            encode_command(&int, &Value::Int(1 << 40)).map(|p| p.len()),
            Ok(8)
        );
        assert_eq!(
            encode_command(&command(MetricType::Bool, None, None), &Value::Bool(true)),
            Ok(vec![1])
        );
        assert_eq!(
            encode_command(&command(MetricType::Float, None, None), &Value::Float(1.5)),
            Ok(1.5f32.to_be_bytes().to_vec())
        );
        assert_eq!(
            encode_command(
                &command(MetricType::String, None, None),
                &Value::String("on".into())
            ),
            Ok(b"on".to_vec())
        );
    }

    #[test]
    fn wrong_types_ranges_and_sizes_are_refused() {
        let ranged = command(MetricType::Int, Some(0.0), Some(100.0));
        assert!(encode_command(&ranged, &Value::Int(101)).is_err());
        assert!(encode_command(&ranged, &Value::Int(-1)).is_err());
        assert!(
            encode_command(&ranged, &Value::Float(5.0)).is_err(),
            "type mismatch"
        );
        assert!(encode_command(
            &command(MetricType::Float, None, None),
            &Value::Float(f64::NAN)
        )
        .is_err());
        let text = command(MetricType::String, None, None);
        assert!(encode_command(&text, &Value::String("x".repeat(243))).is_err());
        assert!(encode_command(&text, &Value::String(String::new())).is_err());
    }
}
