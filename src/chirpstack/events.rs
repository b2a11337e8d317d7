//! Device events from `InternalService.StreamDeviceEvents`, parsed before anyone trusts them.
//!
//! ChirpStack sends each event as a `LogItem`: `description` is the event type (`up`, `ack`,
//! `txack`, `join`, `status`, `log`, ...) and `body` is the integration event as proto3 JSON
//! (lowerCamelCase names, RFC 3339 times, 64-bit integers as strings). The wire structs below
//! read (and, for the simulator, write) that JSON; everything downstream sees [`DeviceEvent`].

use std::collections::BTreeMap;

use chirpstack_api::api::LogItem;
use serde::{Deserialize, Serialize};

use crate::model::Timestamp;
use crate::security::sanitize_for_log;

/// A body larger than this is refused unparsed (ChirpStack's own are a few KiB).
pub const MAX_EVENT_BODY_BYTES: usize = 256 * 1024;

/// `deviceInfo` of every integration event (only what the gateway uses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceInfoJson {
    pub tenant_id: String,
    pub application_id: String,
    pub application_name: String,
    pub device_name: String,
    pub dev_eui: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// `integration.UplinkEvent` as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UplinkEventJson {
    pub deduplication_id: String,
    pub time: Option<String>,
    pub device_info: DeviceInfoJson,
    pub dev_addr: String,
    pub dr: u32,
    pub f_cnt: u32,
    pub f_port: u32,
    pub confirmed: bool,
    /// Raw payload, base64.
    pub data: String,
    /// The codec's decoded object; absent without a codec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

/// `integration.AckEvent` as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AckEventJson {
    pub deduplication_id: String,
    pub time: Option<String>,
    pub device_info: DeviceInfoJson,
    pub queue_item_id: String,
    pub acknowledged: bool,
    pub f_cnt_down: u32,
}

/// `integration.TxAckEvent` as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TxAckEventJson {
    pub downlink_id: u32,
    pub time: Option<String>,
    pub device_info: DeviceInfoJson,
    pub queue_item_id: String,
    pub f_cnt_down: u32,
    pub gateway_id: String,
}

/// `integration.JoinEvent` as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JoinEventJson {
    pub deduplication_id: String,
    pub time: Option<String>,
    pub device_info: DeviceInfoJson,
    pub dev_addr: String,
}

/// `integration.StatusEvent` as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusEventJson {
    pub deduplication_id: String,
    pub time: Option<String>,
    pub device_info: DeviceInfoJson,
    pub margin: i32,
    pub external_power_source: bool,
    pub battery_level_unavailable: bool,
    pub battery_level: f32,
}

/// `integration.LogEvent` as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogEventJson {
    pub time: Option<String>,
    pub device_info: DeviceInfoJson,
    /// `INFO`, `WARNING` or `ERROR`.
    pub level: String,
    /// e.g. `UPLINK_CODEC`, `DOWNLINK_PAYLOAD_SIZE`, `EXPIRED`.
    pub code: String,
    pub description: String,
    pub context: BTreeMap<String, String>,
}

/// A parsed, validated device event.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    Uplink(Uplink),
    /// A confirmed downlink was acknowledged (or negatively acknowledged) by the device.
    Ack {
        time: Timestamp,
        queue_item_id: String,
        acknowledged: bool,
        f_cnt_down: u32,
    },
    /// A downlink was transmitted by a gateway.
    TxAck {
        time: Timestamp,
        queue_item_id: String,
        f_cnt_down: u32,
    },
    Join {
        time: Timestamp,
        dev_addr: String,
    },
    Status {
        time: Timestamp,
        margin: i32,
        battery_level: Option<f32>,
        external_power_source: bool,
    },
    Log {
        time: Timestamp,
        level: String,
        code: String,
        description: String,
        queue_item_id: Option<String>,
    },
    /// An event type the gateway does not use (`location`, `integration`...).
    Other {
        kind: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    pub time: Timestamp,
    pub f_cnt: u32,
    pub f_port: u32,
    /// The decoded object (a JSON object), if the device has a codec.
    pub object: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Why an event was dropped. Messages are sanitised and never contain the raw body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event body of {0} bytes exceeds {MAX_EVENT_BODY_BYTES}")]
    TooLarge(usize),
    #[error("malformed {kind} event body: {reason}")]
    Malformed { kind: String, reason: String },
    #[error("{kind} event without a valid timestamp")]
    MissingTime { kind: String },
    #[error("{kind} event for device {found}, expected {expected}")]
    WrongDevice {
        kind: String,
        expected: String,
        found: String,
    },
    #[error("uplink object is not a JSON object")]
    ObjectNotAMap,
}

/// Parses one `LogItem` received on the stream of device `dev_eui`.
pub fn parse_log_item(dev_eui: &str, item: &LogItem) -> Result<DeviceEvent, EventError> {
    let kind = sanitize_for_log(&item.description, 32);
    if item.body.len() > MAX_EVENT_BODY_BYTES {
        return Err(EventError::TooLarge(item.body.len()));
    }
    let fallback_time = item.time.as_ref().and_then(Timestamp::from_prost);
    let malformed = |e: serde_json::Error| EventError::Malformed {
        kind: kind.clone(),
        reason: sanitize_for_log(&e.to_string(), 120),
    };
    let time = |text: &Option<String>| -> Result<Timestamp, EventError> {
        match text {
            Some(text) => Timestamp::parse_rfc3339(text),
            None => fallback_time,
        }
        .ok_or_else(|| EventError::MissingTime { kind: kind.clone() })
    };
    let check_device = |info: &DeviceInfoJson| -> Result<(), EventError> {
        // ChirpStack always fills deviceInfo; a body for another device is a bug or an attack.
        if !info.dev_eui.is_empty() && !info.dev_eui.eq_ignore_ascii_case(dev_eui) {
            return Err(EventError::WrongDevice {
                kind: kind.clone(),
                expected: dev_eui.to_string(),
                found: sanitize_for_log(&info.dev_eui, 32),
            });
        }
        Ok(())
    };
    match item.description.as_str() {
        "up" => {
            let body: UplinkEventJson = serde_json::from_str(&item.body).map_err(malformed)?;
            check_device(&body.device_info)?;
            let object = match body.object {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::Object(map)) => Some(map),
                Some(_) => return Err(EventError::ObjectNotAMap),
            };
            Ok(DeviceEvent::Uplink(Uplink {
                time: time(&body.time)?,
                f_cnt: body.f_cnt,
                f_port: body.f_port,
                object,
            }))
        }
        "ack" => {
            let body: AckEventJson = serde_json::from_str(&item.body).map_err(malformed)?;
            check_device(&body.device_info)?;
            Ok(DeviceEvent::Ack {
                time: time(&body.time)?,
                queue_item_id: body.queue_item_id,
                acknowledged: body.acknowledged,
                f_cnt_down: body.f_cnt_down,
            })
        }
        "txack" => {
            let body: TxAckEventJson = serde_json::from_str(&item.body).map_err(malformed)?;
            check_device(&body.device_info)?;
            Ok(DeviceEvent::TxAck {
                time: time(&body.time)?,
                queue_item_id: body.queue_item_id,
                f_cnt_down: body.f_cnt_down,
            })
        }
        "join" => {
            let body: JoinEventJson = serde_json::from_str(&item.body).map_err(malformed)?;
            check_device(&body.device_info)?;
            Ok(DeviceEvent::Join {
                time: time(&body.time)?,
                dev_addr: body.dev_addr,
            })
        }
        "status" => {
            let body: StatusEventJson = serde_json::from_str(&item.body).map_err(malformed)?;
            check_device(&body.device_info)?;
            let battery_level = (!body.battery_level_unavailable && body.battery_level.is_finite())
                .then_some(body.battery_level);
            Ok(DeviceEvent::Status {
                time: time(&body.time)?,
                margin: body.margin,
                battery_level,
                external_power_source: body.external_power_source,
            })
        }
        "log" => {
            let body: LogEventJson = serde_json::from_str(&item.body).map_err(malformed)?;
            check_device(&body.device_info)?;
            Ok(DeviceEvent::Log {
                time: time(&body.time)?,
                level: sanitize_for_log(&body.level, 16),
                code: sanitize_for_log(&body.code, 64),
                description: sanitize_for_log(&body.description, 256),
                queue_item_id: body
                    .context
                    .get("queue_item_id")
                    .map(|id| sanitize_for_log(id, 64)),
            })
        }
        _ => Ok(DeviceEvent::Other { kind }),
    }
}

/// Builds the `LogItem` ChirpStack would send for `body` (used by the simulator and tests).
pub fn log_item<T: Serialize>(
    id: impl Into<String>,
    kind: &str,
    time: Timestamp,
    body: &T,
) -> LogItem {
    LogItem {
        id: id.into(),
        time: Some(time.to_prost()),
        description: kind.to_string(),
        body: serde_json::to_string(body).unwrap_or_default(),
        properties: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "0101010101010101";

    fn item(kind: &str, body: &str) -> LogItem {
        LogItem {
            id: "1-0".into(),
            time: None,
            description: kind.into(),
            body: body.into(),
            properties: Default::default(),
        }
    }

    #[test]
    fn an_uplink_body_as_chirpstack_writes_it_parses() {
        let body = r#"{"deduplicationId":"3f2e","time":"2024-05-01T12:00:00.250Z",
            "deviceInfo":{"tenantId":"t","applicationId":"a","deviceName":"Tank","devEui":"0101010101010101",
            "deviceClassEnabled":"CLASS_A","tags":{}},"devAddr":"00aabbcc","adr":true,"dr":5,"fCnt":42,"fPort":2,
            "confirmed":false,"data":"AQI=","object":{"level_cm":123.5,"nested":{"t":1}},"rxInfo":[{"gatewayId":"g","rssi":-60}],
            "txInfo":{"frequency":868100000}}"#;
        let DeviceEvent::Uplink(up) = parse_log_item(DEV, &item("up", body)).unwrap() else {
            panic!()
        };
        assert_eq!(
            up.time,
            Timestamp::parse_rfc3339("2024-05-01T12:00:00.250Z").unwrap()
        );
        assert_eq!((up.f_cnt, up.f_port), (42, 2));
        assert_eq!(up.object.unwrap()["level_cm"], serde_json::json!(123.5));
    }

    #[test]
    fn ack_txack_status_and_log_events_parse() {
        let info = r#""deviceInfo":{"devEui":"0101010101010101"}"#;
        let ack = format!(
            r#"{{"time":"2024-05-01T12:00:01Z",{info},"queueItemId":"q-1","acknowledged":true,"fCntDown":7}}"#
        );
        assert!(matches!(
            parse_log_item(DEV, &item("ack", &ack)).unwrap(),
            DeviceEvent::Ack {
                acknowledged: true,
                f_cnt_down: 7,
                ..
            }
        ));
        let txack = format!(
            r#"{{"downlinkId":9,"time":"2024-05-01T12:00:01Z",{info},"queueItemId":"q-1","fCntDown":7}}"#
        );
        assert!(matches!(
            parse_log_item(DEV, &item("txack", &txack)).unwrap(),
            DeviceEvent::TxAck { .. }
        ));
        let status =
            format!(r#"{{"time":"2024-05-01T12:00:01Z",{info},"margin":7,"batteryLevel":87.5}}"#);
        assert!(matches!(
            parse_log_item(DEV, &item("status", &status)).unwrap(),
            DeviceEvent::Status {
                margin: 7,
                battery_level: Some(_),
                ..
            }
        ));
        let log = format!(
            r#"{{"time":"2024-05-01T12:00:01Z",{info},"level":"ERROR","code":"UPLINK_CODEC","description":"bad","context":{{}}}}"#
        );
        assert!(matches!(
            parse_log_item(DEV, &item("log", &log)).unwrap(),
            DeviceEvent::Log { .. }
        ));
        assert!(matches!(
            parse_log_item(DEV, &item("location", "{}")).unwrap(),
            DeviceEvent::Other { .. }
        ));
    }

    #[test]
    fn bad_bodies_are_errors_never_panics() {
        let cases = [
            ("up", "{not json"),
            ("up", "[1,2,3]"),
            (
                "up",
                r#"{"time":"not a time","deviceInfo":{"devEui":"0101010101010101"}}"#,
            ),
            ("up", r#"{"deviceInfo":{"devEui":"0101010101010101"}}"#),
            (
                "up",
                r#"{"time":"2024-05-01T12:00:00Z","deviceInfo":{"devEui":"ffffffffffffffff"}}"#,
            ),
            ("up", r#"{"time":"2024-05-01T12:00:00Z","object":[1,2]}"#),
            ("up", r#"{"time":"2024-05-01T12:00:00Z","fCnt":"many"}"#),
            ("ack", r#"{"time":12}"#),
        ];
        for (kind, body) in cases {
            assert!(
                parse_log_item(DEV, &item(kind, body)).is_err(),
                "{kind}: {body}"
            );
        }
        let huge = format!(
            r#"{{"object":{{"s":"{}"}}}}"#,
            "x".repeat(MAX_EVENT_BODY_BYTES)
        );
        assert!(matches!(
            parse_log_item(DEV, &item("up", &huge)),
            Err(EventError::TooLarge(_))
        ));
    }

    #[test]
    fn the_log_item_time_is_the_fallback_timestamp() {
        let mut li = item(
            "up",
            r#"{"deviceInfo":{"devEui":"0101010101010101"},"object":{}}"#,
        );
        let ts = Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        li.time = Some(ts.to_prost());
        let DeviceEvent::Uplink(up) = parse_log_item(DEV, &li).unwrap() else {
            panic!()
        };
        assert_eq!(up.time, ts);
    }

    #[test]
    fn what_the_simulator_writes_is_what_the_parser_reads() {
        let ts = Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        let body = UplinkEventJson {
            time: Some(ts.to_rfc3339()),
            device_info: DeviceInfoJson {
                dev_eui: DEV.into(),
                ..Default::default()
            },
            f_cnt: 3,
            object: Some(serde_json::json!({"a": 1})),
            ..Default::default()
        };
        let DeviceEvent::Uplink(up) =
            parse_log_item(DEV, &log_item("1-0", "up", ts, &body)).unwrap()
        else {
            panic!()
        };
        assert_eq!((up.time, up.f_cnt), (ts, 3));
    }
}
