//! `GET /api/devices` and `GET /api/devices/{device_id}`: the one place that builds the devices
//! view from the configuration, the latest samples and the staleness rule.

use serde::Serialize;

use super::{device_quality, serialize_optional_value, QualityCounts, QualityView, WebTime};
use crate::config::AppConfig;
use crate::model::{MetricType, Sample, Timestamp, Value};

// The devices views borrow the configuration and the samples: `/api/devices` at 1,000 devices
// x 10 metrics writes 2 MB of JSON and copies no name or value to do it.

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricView<'a> {
    pub metric_name: &'a str,
    pub metric_type: MetricType,
    pub unit: Option<&'a str>,
    #[serde(serialize_with = "serialize_optional_value")]
    pub value: Option<&'a Value>,
    pub timestamp: Option<WebTime>,
    pub received: Option<WebTime>,
    pub quality: QualityView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandSpecView<'a> {
    pub command_name: &'a str,
    pub command_type: MetricType,
    pub command_port: u8,
    pub command_confirmed: bool,
    pub command_min: Option<f64>,
    pub command_max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceView<'a> {
    /// Only in `GET /api/devices/{device_id}` (the list nests devices in their application).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_id: Option<&'a str>,
    pub device_id: &'a str,
    pub device_name: &'a str,
    /// `configured` (written in the file) or `discovered` (from ChirpStack only).
    pub origin: &'static str,
    pub last_seen: Option<WebTime>,
    pub quality: QualityView,
    pub metrics: Vec<MetricView<'a>>,
    pub commands: Vec<CommandSpecView<'a>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplicationView<'a> {
    pub application_id: &'a str,
    pub application_name: &'a str,
    /// Its devices are discovered from ChirpStack (besides those written in the file).
    pub discover: bool,
    pub devices: Vec<DeviceView<'a>>,
}

/// `GET /api/devices`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevicesView<'a> {
    pub as_of: WebTime,
    pub stale_threshold_secs: u64,
    pub bad_threshold_secs: u64,
    pub applications: Vec<ApplicationView<'a>>,
}

/// The latest samples in (device, metric) order, searched by device and then by metric.
struct LatestIndex<'a> {
    samples: Vec<&'a Sample>,
}

impl<'a> LatestIndex<'a> {
    /// Storage answers in this order already; anything else is sorted once.
    fn new(latest: &'a [Sample]) -> Self {
        let mut samples: Vec<&Sample> = latest.iter().collect();
        fn key<'s>(s: &&'s Sample) -> (&'s str, &'s str) {
            (&*s.device_id, &*s.metric)
        }
        if !samples.is_sorted_by_key(key) {
            samples.sort_by(|a, b| key(a).cmp(&key(b)));
        }
        Self { samples }
    }

    /// The samples of one device (a contiguous run).
    fn device(&self, device_id: &str) -> &[&'a Sample] {
        let start = self.samples.partition_point(|s| &*s.device_id < device_id);
        let len = self.samples[start..].partition_point(|s| &*s.device_id == device_id);
        &self.samples[start..start + len]
    }
}

/// One metric's sample among its device's samples.
fn find_metric<'a>(device: &[&'a Sample], metric: &str) -> Option<&'a Sample> {
    device
        .binary_search_by(|s| (*s.metric).cmp(metric))
        .ok()
        .map(|i| device[i])
}

impl<'a> DeviceView<'a> {
    /// One configured device with its latest samples (or `null` values and `waiting` quality
    /// when none arrived yet) and their quality at `now`.
    fn build(
        config: &AppConfig,
        device: &'a crate::config::DeviceConfig,
        latest: &LatestIndex<'a>,
        now: Timestamp,
    ) -> Self {
        let rule = config.staleness_rule(device);
        let samples = latest.device(&device.device_id);
        let metrics: Vec<MetricView> = device
            .metrics
            .iter()
            .map(|m| {
                let sample = find_metric(samples, &m.metric_name);
                MetricView {
                    metric_name: &m.metric_name,
                    metric_type: m.metric_type,
                    unit: m.metric_unit.as_deref(),
                    value: sample.map(|s| &s.value),
                    timestamp: sample.map(|s| s.source_time.into()),
                    received: sample.map(|s| s.received_time.into()),
                    quality: rule.quality(sample.map(|s| s.source_time), now).into(),
                }
            })
            .collect();
        DeviceView {
            application_id: None,
            device_id: &device.device_id,
            device_name: &device.device_name,
            origin: if config.discovered.contains(&device.device_id) {
                "discovered"
            } else {
                "configured"
            },
            last_seen: metrics.iter().filter_map(|m| m.timestamp).max(),
            quality: device_quality(metrics.iter().map(|m| m.quality)),
            metrics,
            commands: device
                .commands
                .iter()
                .map(|c| CommandSpecView {
                    command_name: &c.command_name,
                    command_type: c.command_type,
                    command_port: c.command_port,
                    command_confirmed: c.command_confirmed,
                    command_min: c.command_min,
                    command_max: c.command_max,
                })
                .collect(),
        }
    }

    /// One device of `app` with its application id, from that device's samples.
    pub fn of_device(
        config: &AppConfig,
        app: &'a crate::config::ApplicationConfig,
        device: &'a crate::config::DeviceConfig,
        latest: &'a [Sample],
        now: Timestamp,
    ) -> Self {
        let mut view = Self::build(config, device, &LatestIndex::new(latest), now);
        view.application_id = Some(&app.application_id);
        view
    }
}

impl<'a> DevicesView<'a> {
    /// Every configured device and metric, in configuration order, with its latest sample (or
    /// `null` values and `waiting` quality when none arrived yet) and its quality at `now`.
    pub fn build(config: &'a AppConfig, latest: &'a [Sample], now: Timestamp) -> Self {
        let latest = LatestIndex::new(latest);
        let applications = config
            .applications
            .iter()
            .map(|app| ApplicationView {
                application_id: &app.application_id,
                application_name: &app.application_name,
                discover: app.discover,
                devices: app
                    .devices
                    .iter()
                    .map(|device| DeviceView::build(config, device, &latest, now))
                    .collect(),
            })
            .collect();
        Self {
            as_of: now.into(),
            stale_threshold_secs: config.opcua.stale_threshold_seconds,
            bad_threshold_secs: config.opcua.bad_threshold_seconds,
            applications,
        }
    }

    /// How many metrics are in each quality (the dashboard's counts).
    pub fn quality_counts(&self) -> QualityCounts {
        let mut counts = QualityCounts::default();
        let metrics = self
            .applications
            .iter()
            .flat_map(|a| &a.devices)
            .flat_map(|d| &d.metrics);
        for metric in metrics {
            match metric.quality {
                QualityView::Good => counts.good += 1,
                QualityView::Uncertain => counts.uncertain += 1,
                QualityView::Bad => counts.bad += 1,
                QualityView::Waiting => counts.waiting += 1,
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApplicationConfig, DeviceConfig, MetricConfig};
    use crate::model::SampleOrigin;

    fn metric(name: &str, metric_type: MetricType) -> MetricConfig {
        MetricConfig {
            metric_name: name.into(),
            chirpstack_metric_name: name.into(),
            metric_type,
            metric_unit: None,
        }
    }

    fn device(id: &str, metrics: Vec<MetricConfig>) -> DeviceConfig {
        DeviceConfig {
            device_name: id.to_uppercase(),
            device_id: id.into(),
            stale_threshold_seconds: None,
            metrics,
            commands: Vec::new(),
        }
    }

    fn sample(device_id: &str, metric: &str, value: Value, at: Timestamp) -> Sample {
        Sample {
            device_id: device_id.into(),
            metric: metric.into(),
            value,
            source_time: at,
            received_time: at,
            origin: SampleOrigin::Uplink,
        }
    }

    /// Each configured metric gets its own series' sample whatever order storage answers in,
    /// with device ids that are prefixes of others, samples of unconfigured devices and
    /// metrics, and metrics that never reported.
    #[test]
    fn the_devices_view_pairs_every_metric_with_its_own_sample() {
        let config = AppConfig {
            applications: vec![
                ApplicationConfig {
                    application_name: "B".into(),
                    application_id: "b".into(),
                    discover: false,
                    templates: Default::default(),
                    devices: vec![
                        device("valve-10", vec![metric("t", MetricType::Float)]),
                        device(
                            "valve-1",
                            vec![
                                metric("t", MetricType::Float),
                                metric("open", MetricType::Bool),
                                metric("never", MetricType::Int),
                            ],
                        ),
                    ],
                },
                ApplicationConfig {
                    application_name: "A".into(),
                    application_id: "a".into(),
                    discover: false,
                    templates: Default::default(),
                    devices: vec![device(
                        "pump",
                        vec![
                            metric("state", MetricType::String),
                            metric("nan", MetricType::Float),
                        ],
                    )],
                },
            ],
            discovered: std::collections::BTreeSet::from(["pump".to_string()]),
            ..AppConfig::default()
        };
        let now = Timestamp::now();
        let earlier = now.saturating_sub(std::time::Duration::from_secs(5));
        // Not in storage's order, and with rows the configuration does not name.
        let latest = vec![
            sample("valve-10", "t", Value::Float(10.5), now),
            sample("pump", "state", Value::String("run".into()), now),
            sample("valve-1", "t", Value::Float(1.5), earlier),
            sample("gone", "t", Value::Float(9.0), now),
            sample("valve-1", "open", Value::Bool(true), now),
            sample("pump", "nan", Value::Float(f64::NAN), now),
            sample("valve-1", "removed", Value::Int(3), now),
        ];
        let json = serde_json::to_value(DevicesView::build(&config, &latest, now)).unwrap();
        let values = |app: usize, device: usize| -> Vec<serde_json::Value> {
            json["applications"][app]["devices"][device]["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["value"].clone())
                .collect()
        };
        assert_eq!(values(0, 0), [serde_json::json!(10.5)]);
        assert_eq!(
            values(0, 1),
            [
                serde_json::json!(1.5),
                serde_json::json!(true),
                serde_json::Value::Null
            ]
        );
        assert_eq!(
            values(1, 0),
            [serde_json::json!("run"), serde_json::Value::Null]
        );
        let valve = &json["applications"][0]["devices"][1];
        assert_eq!(valve["last_seen"], WebTime(now).text(), "the newest metric");
        assert_eq!(valve["metrics"][0]["timestamp"], WebTime(earlier).text());
        assert_eq!(valve["metrics"][2]["quality"], "waiting");
        assert_eq!(valve["device_name"], "VALVE-1");
        assert_eq!(valve["origin"], "configured");
        assert_eq!(
            json["applications"][1]["devices"][0]["origin"],
            "discovered"
        );
        // The sorted answer storage gives reads the same.
        let mut sorted = latest.clone();
        sorted.sort_by(|a, b| (&a.device_id, &a.metric).cmp(&(&b.device_id, &b.metric)));
        assert_eq!(
            serde_json::to_value(DevicesView::build(&config, &sorted, now)).unwrap(),
            json
        );
    }
}
