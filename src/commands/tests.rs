//! `prepare`: every rejection, each encoding, and what a prepared command carries.

use super::*;
use crate::config::{AppConfig, ApplicationConfig, CommandConfig, DeviceConfig};
use crate::model::{MetricType, Value};

fn command(name: &str, ty: MetricType, min: Option<f64>, max: Option<f64>) -> CommandConfig {
    CommandConfig {
        command_name: name.into(),
        command_id: 1,
        command_confirmed: true,
        command_port: 10,
        command_type: ty,
        command_min: min,
        command_max: max,
    }
}

/// One device `valve-1` with one command of each type; `level` is bounded to 0..=100.
fn config() -> AppConfig {
    AppConfig {
        applications: vec![ApplicationConfig {
            application_name: "Plant".into(),
            application_id: "app-1".into(),
            discover: false,
            templates: Default::default(),
            devices: vec![DeviceConfig {
                device_name: "Valve".into(),
                device_id: "valve-1".into(),
                stale_threshold_seconds: None,
                metrics: Vec::new(),
                commands: vec![
                    command("level", MetricType::Int, Some(0.0), Some(100.0)),
                    command("any", MetricType::Int, None, None),
                    command("setpoint", MetricType::Float, Some(-5.5), Some(10.0)),
                    command("open", MetricType::Bool, None, None),
                    command("text", MetricType::String, None, None),
                ],
            }],
        }],
        ..AppConfig::default()
    }
}

fn prepared(command: &str, value: Value) -> Result<NewCommand, CommandRejection> {
    prepare(&config(), "valve-1", command, &value, "ctl:uid=1000".into())
}

fn payload(command: &str, value: Value) -> Vec<u8> {
    match prepared(command, value) {
        Ok(new) => new.downlink.payload,
        Err(rejection) => panic!("{command}: {rejection}"),
    }
}

#[test]
fn a_prepared_command_carries_the_configured_port_confirmation_and_requester() {
    let new = prepared("level", Value::Int(7)).unwrap();
    assert_eq!(
        new,
        NewCommand {
            downlink: Downlink {
                device_id: "valve-1".into(),
                command_name: "level".into(),
                f_port: 10,
                confirmed: true,
                payload: vec![7],
            },
            requested_by: "ctl:uid=1000".into(),
        }
    );
}

#[test]
fn each_type_is_encoded_in_its_documented_shape() {
    assert_eq!(payload("any", Value::Int(1)), vec![1]);
    assert_eq!(payload("any", Value::Int(-2)), vec![0xfe]);
    assert_eq!(payload("any", Value::Int(300)), vec![0x01, 0x2c]);
    assert_eq!(payload("any", Value::Int(70_000)), vec![0, 1, 0x11, 0x70]);
    assert_eq!(payload("any", Value::Int(i64::MIN)).len(), 8);
    assert_eq!(payload("open", Value::Bool(true)), vec![1]);
    assert_eq!(payload("open", Value::Bool(false)), vec![0]);
    assert_eq!(
        payload("setpoint", Value::Float(1.5)),
        1.5f32.to_be_bytes().to_vec()
    );
    assert_eq!(payload("text", Value::String("on".into())), b"on".to_vec());
    assert_eq!(
        payload("text", Value::String("x".repeat(MAX_PAYLOAD_BYTES))).len(),
        MAX_PAYLOAD_BYTES
    );
}

#[test]
fn range_bounds_are_inclusive_and_open_ends_are_unbounded() {
    assert!(prepared("level", Value::Int(0)).is_ok());
    assert!(prepared("level", Value::Int(100)).is_ok());
    assert!(prepared("setpoint", Value::Float(-5.5)).is_ok());
    assert!(prepared("setpoint", Value::Float(10.0)).is_ok());
    assert!(prepared("any", Value::Int(i64::MIN)).is_ok());
    assert!(prepared("any", Value::Int(i64::MAX)).is_ok());
}

#[test]
fn an_unknown_device_or_command_is_refused_by_field() {
    let unknown_device =
        prepare(&config(), "valve-9", "level", &Value::Int(1), String::new()).unwrap_err();
    assert_eq!(
        unknown_device,
        CommandRejection::UnknownDevice {
            device_id: "valve-9".into()
        }
    );
    assert_eq!(unknown_device.field(), "device");
    let unknown_command = prepared("close", Value::Int(1)).unwrap_err();
    assert_eq!(
        unknown_command,
        CommandRejection::UnknownCommand {
            device_id: "valve-1".into(),
            command_name: "close".into()
        }
    );
    assert_eq!(unknown_command.field(), "command");
}

#[test]
fn a_value_of_another_type_is_refused() {
    for (command, value) in [
        ("level", Value::Float(5.0)),
        ("setpoint", Value::Int(5)),
        ("open", Value::Int(1)),
        ("text", Value::Bool(true)),
    ] {
        let rejection = prepared(command, value.clone()).unwrap_err();
        assert!(
            matches!(rejection, CommandRejection::TypeMismatch { .. }),
            "{command} {value:?}: {rejection:?}"
        );
        assert_eq!(rejection.field(), "value");
    }
}

#[test]
fn a_conversion_an_edge_refuses_is_a_type_mismatch_with_its_reason() {
    let strict_json = |ty: MetricType| match ty {
        MetricType::Int => Err("expected Int, got string".to_string()),
        other => panic!("asked for {other:?}"),
    };
    let rejection =
        prepare(&config(), "valve-1", "level", &strict_json, String::new()).unwrap_err();
    assert_eq!(
        rejection,
        CommandRejection::TypeMismatch {
            command_name: "level".into(),
            expected: MetricType::Int,
            detail: "expected Int, got string".into()
        }
    );
    let converted = |_: MetricType| Ok(Value::Int(3));
    assert_eq!(
        prepare(&config(), "valve-1", "level", &converted, String::new())
            .unwrap()
            .downlink
            .payload,
        vec![3]
    );
}

#[test]
fn numbers_outside_the_range_or_not_finite_are_refused() {
    for (command, value) in [
        ("level", Value::Int(101)),
        ("level", Value::Int(-1)),
        ("setpoint", Value::Float(-5.6)),
        ("setpoint", Value::Float(10.1)),
    ] {
        assert!(
            matches!(
                prepared(command, value.clone()),
                Err(CommandRejection::OutOfRange { .. })
            ),
            "{command} {value:?}"
        );
    }
    let unbounded = AppConfig {
        applications: vec![ApplicationConfig {
            application_name: "Plant".into(),
            application_id: "app-1".into(),
            discover: false,
            templates: Default::default(),
            devices: vec![DeviceConfig {
                device_name: "Valve".into(),
                device_id: "valve-1".into(),
                stale_threshold_seconds: None,
                metrics: Vec::new(),
                commands: vec![command("free", MetricType::Float, None, None)],
            }],
        }],
        ..AppConfig::default()
    };
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            prepare(
                &unbounded,
                "valve-1",
                "free",
                &Value::Float(value),
                String::new()
            ),
            Err(CommandRejection::NotFinite),
            "{value}"
        );
    }
    // NaN is refused by a bounded command too (it compares false with both bounds).
    assert_eq!(
        prepared("setpoint", Value::Float(f64::NAN)),
        Err(CommandRejection::NotFinite)
    );
}

#[test]
fn a_payload_too_large_or_an_empty_string_is_refused() {
    assert_eq!(
        prepared("text", Value::String("x".repeat(MAX_PAYLOAD_BYTES + 1))),
        Err(CommandRejection::PayloadTooLarge {
            bytes: MAX_PAYLOAD_BYTES + 1
        })
    );
    assert_eq!(
        prepared("text", Value::String(String::new())),
        Err(CommandRejection::EmptyString)
    );
}

#[test]
fn rejections_say_what_was_wrong() {
    let out_of_range = prepared("level", Value::Int(101)).unwrap_err();
    assert_eq!(
        out_of_range.to_string(),
        "101 is outside the range 0..=100 of command level"
    );
    let open_ended = CommandRejection::OutOfRange {
        command_name: "c".into(),
        value: 6.0,
        min: None,
        max: Some(5.0),
    };
    assert_eq!(
        open_ended.to_string(),
        "6 is outside the range -inf..=5 of command c"
    );
}
