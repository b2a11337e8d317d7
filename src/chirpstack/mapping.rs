//! From a decoded uplink object (or an aggregated bucket) to typed samples of the configured
//! metrics. A value that does not convert to the configured type is rejected, never coerced.

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::config::{DeviceConfig, MetricType};
use crate::model::{Names, Sample, SampleOrigin, Timestamp, Value};
use crate::security::sanitize_for_log;

/// Longest string value accepted for a String metric.
pub const MAX_STRING_VALUE_BYTES: usize = 1024;
/// Deepest dotted path followed into a decoded object.
pub const MAX_PATH_DEPTH: usize = 16;
/// Integers above this magnitude cannot be carried exactly by a JSON (f64) number.
const MAX_EXACT_FLOAT_INT: f64 = 9_007_199_254_740_992.0;

/// A value dropped because it did not fit its metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub device_id: String,
    pub metric: String,
    pub reason: String,
    /// The offending value, sanitised and capped for the log.
    pub preview: String,
}

/// One configured metric, ready to be looked up in decoded objects.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricMapping {
    pub metric_name: Arc<str>,
    /// The configured `chirpstack_metric_name`, also the `GetMetrics` measurement key; a
    /// dotted name is a path into the decoded object.
    pub upstream_name: Arc<str>,
    pub metric_type: MetricType,
}

/// The configured metrics of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMapping {
    /// Shared by every sample made from this mapping.
    pub device_id: Arc<str>,
    pub metrics: Vec<MetricMapping>,
}

impl DeviceMapping {
    pub fn from_config(device: &DeviceConfig, names: &mut Names) -> Self {
        Self {
            device_id: device.device_id.as_str().into(),
            metrics: device
                .metrics
                .iter()
                .map(|m| MetricMapping {
                    metric_name: names.get(&m.metric_name),
                    upstream_name: names.get(&m.chirpstack_metric_name),
                    metric_type: m.metric_type,
                })
                .collect(),
        }
    }

    /// Samples of every configured metric present in `object`; absent (or null) fields are
    /// simply not reported in this uplink.
    pub fn samples_from_object(
        &self,
        object: &Map<String, Json>,
        source_time: Timestamp,
        received_time: Timestamp,
    ) -> (Vec<Sample>, Vec<Rejection>) {
        let mut samples = Vec::with_capacity(self.metrics.len());
        let mut rejections = Vec::new();
        for metric in &self.metrics {
            let Some(raw) = lookup(object, &metric.upstream_name) else {
                continue;
            };
            if raw.is_null() {
                continue;
            }
            match convert_json(raw, metric.metric_type) {
                Ok(value) => samples.push(Sample {
                    device_id: Arc::clone(&self.device_id),
                    metric: Arc::clone(&metric.metric_name),
                    value,
                    source_time,
                    received_time,
                    origin: SampleOrigin::Uplink,
                }),
                Err(reason) => rejections.push(Rejection {
                    device_id: self.device_id.to_string(),
                    metric: metric.metric_name.to_string(),
                    reason,
                    preview: preview(raw),
                }),
            }
        }
        (samples, rejections)
    }
}

/// Follows a dotted path (`"water.level"`, `"channels.0"`) into nested objects and arrays.
fn lookup<'a>(object: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    let depth = path.split('.').count();
    if depth > MAX_PATH_DEPTH {
        return None;
    }
    // A flat key containing dots wins over the nested reading of the same path.
    if depth > 1 {
        if let Some(value) = object.get(path) {
            return Some(value);
        }
    }
    let mut segments = path.split('.');
    let mut current = object.get(segments.next()?)?;
    for segment in segments {
        current = match current {
            Json::Object(map) => map.get(segment)?,
            Json::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Converts a decoded JSON value to `metric_type`.
///
/// Float: any JSON number. Int: integral numbers (an integral float such as `12.0`, which
/// JavaScript codecs produce, is accepted). Bool: `true`/`false`, or the numbers 0 and 1 that
/// codecs commonly emit. String: strings up to [`MAX_STRING_VALUE_BYTES`]. Everything else —
/// objects, arrays, numbers for strings, strings for numbers — is rejected.
pub fn convert_json(raw: &Json, metric_type: MetricType) -> Result<Value, String> {
    match (metric_type, raw) {
        (MetricType::Float, Json::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err("number is not finite".into()),
        },
        (MetricType::Int, Json::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::Int(i))
            } else if n.is_u64() {
                Err("integer out of range".into())
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() <= MAX_EXACT_FLOAT_INT => {
                        Ok(Value::Int(f as i64))
                    }
                    _ => Err("number is not an integer".into()),
                }
            }
        }
        (MetricType::Bool, Json::Bool(b)) => Ok(Value::Bool(*b)),
        (MetricType::Bool, Json::Number(n)) => match n.as_f64() {
            Some(0.0) => Ok(Value::Bool(false)),
            Some(1.0) => Ok(Value::Bool(true)),
            _ => Err("number is neither 0 nor 1".into()),
        },
        // ChirpStack's STRING measurement kind covers "true / false values" too, so a
        // discovered String metric may receive a boolean: kept as its text.
        (MetricType::String, Json::Bool(b)) => Ok(Value::String(b.to_string())),
        (MetricType::String, Json::String(s)) if s.len() <= MAX_STRING_VALUE_BYTES => {
            Ok(Value::String(s.clone()))
        }
        (MetricType::String, Json::String(s)) => Err(format!(
            "string of {} bytes exceeds {MAX_STRING_VALUE_BYTES}",
            s.len()
        )),
        (expected, other) => Err(format!("expected {expected:?}, got {}", json_kind(other))),
    }
}

/// Converts one aggregated `GetMetrics` bucket (always a float) to `metric_type`.
///
/// Aggregates are averages (gauges) or sums (counters) over the bucket: an Int metric takes
/// the rounded value, a Bool metric is true when the bucket's average is at least 0.5 (the
/// state held for most of the bucket). String metrics have no aggregate.
pub fn convert_aggregate(value: f32, metric_type: MetricType) -> Result<Value, String> {
    if !value.is_finite() {
        return Err("aggregate is not finite".into());
    }
    let value = f64::from(value);
    match metric_type {
        MetricType::Float => Ok(Value::Float(value)),
        MetricType::Int if value.abs() <= MAX_EXACT_FLOAT_INT => {
            Ok(Value::Int(value.round() as i64))
        }
        MetricType::Int => Err("aggregate out of integer range".into()),
        MetricType::Bool => Ok(Value::Bool(value >= 0.5)),
        MetricType::String => Err("string metrics have no aggregate".into()),
    }
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn preview(value: &Json) -> String {
    let text = match value {
        Json::String(s) => s.chars().take(80).collect::<String>(),
        Json::Array(_) => "[…]".to_string(),
        Json::Object(_) => "{…}".to_string(),
        other => other.to_string(),
    };
    sanitize_for_log(&text, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MetricConfig;
    use serde_json::json;

    fn device(metrics: &[(&str, &str, MetricType)]) -> DeviceMapping {
        let config = DeviceConfig {
            device_name: "d".into(),
            device_id: "dev".into(),
            stale_threshold_seconds: None,
            metrics: metrics
                .iter()
                .map(|(name, upstream, ty)| MetricConfig {
                    metric_name: name.to_string(),
                    chirpstack_metric_name: upstream.to_string(),
                    metric_type: *ty,
                    metric_unit: None,
                })
                .collect(),
            commands: vec![],
        };
        DeviceMapping::from_config(&config, &mut Names::default())
    }

    #[test]
    fn devices_and_their_samples_share_one_copy_of_each_name() {
        let config = |id: &str| DeviceConfig {
            device_name: id.into(),
            device_id: id.into(),
            stale_threshold_seconds: None,
            metrics: vec![MetricConfig {
                metric_name: "temperature".into(),
                chirpstack_metric_name: "sensors.temp".into(),
                metric_type: MetricType::Float,
                metric_unit: None,
            }],
            commands: vec![],
        };
        let mut names = Names::default();
        let a = DeviceMapping::from_config(&config("a"), &mut names);
        let b = DeviceMapping::from_config(&config("b"), &mut names);
        let (a, b) = (&a.metrics[0], &b.metrics[0]);
        assert!(Arc::ptr_eq(&a.metric_name, &b.metric_name));
        assert!(Arc::ptr_eq(&a.upstream_name, &b.upstream_name));
        // The dotted name is still a path into the decoded object.
        let object = json!({"sensors": {"temp": 21.5}});
        let c = DeviceMapping::from_config(&config("c"), &mut names);
        let (samples, rejections) =
            c.samples_from_object(object.as_object().unwrap(), Timestamp(1), Timestamp(2));
        assert!(rejections.is_empty());
        assert_eq!(samples[0].value, Value::Float(21.5));
        assert_eq!(&*samples[0].metric, "temperature");
        // A sample allocates no names: it shares the mapping's (at 10,000 devices, up to
        // 150,000 samples wait for storage while it catches up after a restart).
        assert!(Arc::ptr_eq(&samples[0].metric, &c.metrics[0].metric_name));
        assert!(Arc::ptr_eq(&samples[0].device_id, &c.device_id));
    }

    #[test]
    fn each_type_converts_what_it_should_and_rejects_the_rest() {
        use MetricType::*;
        let ok = [
            (json!(21.5), Float, Value::Float(21.5)),
            (json!(3), Float, Value::Float(3.0)),
            (json!(-7), Int, Value::Int(-7)),
            (json!(12.0), Int, Value::Int(12)),
            (json!(true), Bool, Value::Bool(true)),
            (json!(0), Bool, Value::Bool(false)),
            (json!(1.0), Bool, Value::Bool(true)),
            (json!("open"), String, Value::String("open".into())),
            (json!(true), String, Value::String("true".into())),
        ];
        for (raw, ty, expected) in ok {
            assert_eq!(convert_json(&raw, ty), Ok(expected), "{raw} as {ty:?}");
        }
        let bad = [
            (json!("21.5"), Float),
            (json!(true), Float),
            (json!({"v": 1}), Float),
            (json!([1]), Int),
            (json!(1.5), Int),
            (json!(u64::MAX), Int),
            (json!(1e300), Int),
            (json!(2), Bool),
            (json!("true"), Bool),
            (json!(5), String),
            (json!("x".repeat(MAX_STRING_VALUE_BYTES + 1)), String),
        ];
        for (raw, ty) in bad {
            assert!(
                convert_json(&raw, ty).is_err(),
                "{raw} as {ty:?} should be rejected"
            );
        }
    }

    #[test]
    fn nested_paths_are_followed_and_missing_fields_are_quiet() {
        let mapping = device(&[
            ("Level", "water.level", MetricType::Float),
            ("Ch0", "channels.0", MetricType::Int),
            ("Flat", "a.b", MetricType::Int),
            ("Absent", "nope", MetricType::Int),
            ("Null", "n", MetricType::Int),
        ]);
        let object = json!({"water": {"level": 1.25}, "channels": [4, 5], "a.b": 9, "n": null});
        let t = Timestamp(1);
        let (samples, rejections) = mapping.samples_from_object(object.as_object().unwrap(), t, t);
        let values: Vec<(&str, &Value)> = samples.iter().map(|s| (&*s.metric, &s.value)).collect();
        assert_eq!(
            values,
            vec![
                ("Level", &Value::Float(1.25)),
                ("Ch0", &Value::Int(4)),
                ("Flat", &Value::Int(9))
            ]
        );
        assert!(rejections.is_empty());
    }

    #[test]
    fn a_bad_value_is_rejected_alone_with_a_capped_sanitised_preview() {
        let mapping = device(&[
            ("Level", "level", MetricType::Float),
            ("Mode", "mode", MetricType::String),
        ]);
        let object = json!({"level": "\u{1b}[31mNaN\n".repeat(50), "mode": "ok"});
        let t = Timestamp(1);
        let (samples, rejections) = mapping.samples_from_object(object.as_object().unwrap(), t, t);
        assert_eq!(
            samples.len(),
            1,
            "the good value of the same uplink survives"
        );
        assert_eq!(rejections.len(), 1);
        let preview = &rejections[0].preview;
        assert!(
            !preview.contains('\n') && !preview.contains('\u{1b}') && preview.chars().count() <= 65,
            "{preview}"
        );
    }

    #[test]
    fn aggregates_convert_by_configured_type() {
        assert_eq!(
            convert_aggregate(2.5, MetricType::Float),
            Ok(Value::Float(2.5))
        );
        assert_eq!(convert_aggregate(2.6, MetricType::Int), Ok(Value::Int(3)));
        assert_eq!(
            convert_aggregate(0.75, MetricType::Bool),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            convert_aggregate(0.25, MetricType::Bool),
            Ok(Value::Bool(false))
        );
        assert!(convert_aggregate(f32::NAN, MetricType::Float).is_err());
        assert!(convert_aggregate(f32::INFINITY, MetricType::Float).is_err());
        assert!(convert_aggregate(1.0, MetricType::String).is_err());
    }
}
