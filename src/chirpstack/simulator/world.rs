//! The synthetic world: applications, devices and the metric catalogue, with deterministic ids
//! and deterministic values.
//!
//! Every value is a pure function of (device, metric, time), so a test can ask
//! [`World::value`] (through `SimulatorHandle::expected_value`) for the exact value an uplink
//! at a given time carries, and `GetMetrics` can recompute its aggregates from the recorded
//! uplink times alone instead of storing every number.

use std::collections::HashMap;
use std::f64::consts::TAU;
use std::time::Duration;

use crate::config::{ApplicationConfig, CommandConfig, DeviceConfig, MetricConfig, MetricType};
use crate::model::{Timestamp, Value};

/// The measurement that is never in an uplink object: only `GetMetrics` has it, so it exercises
/// the gateway's `GetMetrics` fallback.
pub const BATTERY_METRIC: &str = "battery_mv";

/// The device profile every simulated device uses.
pub const DEVICE_PROFILE_ID: &str = "51a0d000-0000-4000-8000-000000000001";
pub const DEVICE_PROFILE_NAME: &str = "opcgw simulator profile";

/// Values of the cycling `mode` metrics.
const MODES: [&str; 3] = ["idle", "running", "fault"];

/// How ChirpStack stores a measurement (its device-profile measurement kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasurementKind {
    /// Averaged per `GetMetrics` bucket.
    Gauge,
    /// The last value of a `GetMetrics` bucket (ChirpStack stores counters with HSET).
    Counter,
    /// A string: ChirpStack keeps it as a device "state", never as a metric series.
    State,
}

/// How a metric's value moves with time (private: tests use `World::value`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Sine {
        base: f64,
        amplitude: f64,
        period_us: i64,
        phase: f64,
    },
    Counter {
        offset: i64,
    },
    Toggle {
        shift: i64,
    },
    Cycle {
        shift: i64,
    },
    Battery,
}

/// One entry of the metric catalogue (the same for every device).
#[derive(Debug, Clone, PartialEq)]
pub struct SimMetric {
    /// The uplink object field, the `GetMetrics` measurement key and the suggested OPC UA name.
    pub name: String,
    pub metric_type: MetricType,
    pub kind: MeasurementKind,
    pub unit: Option<&'static str>,
    /// False for [`BATTERY_METRIC`], which only `GetMetrics` reports.
    pub in_uplink: bool,
    shape: Shape,
}

impl SimMetric {
    /// Whether `GetMetrics` has a series for it (strings are not recorded).
    pub fn is_recorded(&self) -> bool {
        self.kind != MeasurementKind::State
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimApplication {
    pub id: String,
    pub name: String,
    pub devices: Vec<SimDevice>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimDevice {
    /// 16 lowercase hex characters, as ChirpStack writes EUIs.
    pub dev_eui: String,
    pub name: String,
    pub application_id: String,
    /// Position in the whole world (0-based, across applications): staggers uplinks and
    /// varies the value functions per device.
    pub index: usize,
}

/// The simulated ChirpStack tenant.
#[derive(Debug, Clone)]
pub struct World {
    pub tenant_id: String,
    pub applications: Vec<SimApplication>,
    /// Uplink metrics first, then [`BATTERY_METRIC`].
    pub metrics: Vec<SimMetric>,
    /// Counters count milliseconds from here (the simulator start, whole seconds).
    epoch: Timestamp,
    /// Length of one toggle / mode step.
    slot: Duration,
    /// Global device index -> (application, device) position.
    positions: Vec<(usize, usize)>,
    by_eui: HashMap<String, usize>,
}

impl World {
    pub(crate) fn new(
        tenant_id: &str,
        applications: usize,
        devices_per_application: usize,
        metrics_per_device: usize,
        slot: Duration,
        epoch: Timestamp,
    ) -> Self {
        let mut apps = Vec::with_capacity(applications);
        let mut positions = Vec::with_capacity(applications * devices_per_application);
        let mut by_eui = HashMap::with_capacity(applications * devices_per_application);
        // Zero-padded numbers: ChirpStack lists by name, so name order must be index order.
        let app_width = applications.to_string().len();
        let dev_width = devices_per_application.to_string().len();
        for a in 0..applications {
            let id = application_id(a);
            let devices = (0..devices_per_application)
                .map(|d| {
                    let index = positions.len();
                    positions.push((a, d));
                    let dev_eui = dev_eui(a, d);
                    by_eui.insert(dev_eui.clone(), index);
                    SimDevice {
                        dev_eui,
                        name: format!("Device {}-{:0dev_width$}", a + 1, d + 1),
                        application_id: id.clone(),
                        index,
                    }
                })
                .collect();
            apps.push(SimApplication {
                id,
                name: format!("Application {:0app_width$}", a + 1),
                devices,
            });
        }
        let slot = if slot.is_zero() {
            Duration::from_secs(10)
        } else {
            slot
        };
        Self {
            tenant_id: tenant_id.to_string(),
            applications: apps,
            metrics: catalogue(metrics_per_device),
            epoch: Timestamp::from_micros(
                epoch.as_micros() - epoch.as_micros().rem_euclid(1_000_000),
            ),
            slot,
            positions,
            by_eui,
        }
    }

    pub fn device_count(&self) -> usize {
        self.positions.len()
    }

    /// Every device, in global index order.
    pub fn devices(&self) -> impl Iterator<Item = &SimDevice> {
        self.applications.iter().flat_map(|app| app.devices.iter())
    }

    /// Looks a device up by DevEUI (any case).
    pub fn device(&self, dev_eui: &str) -> Option<&SimDevice> {
        let index = *self.by_eui.get(&dev_eui.to_ascii_lowercase())?;
        Some(self.device_at(index))
    }

    pub fn application(&self, id: &str) -> Option<&SimApplication> {
        self.applications
            .iter()
            .find(|app| app.id.eq_ignore_ascii_case(id))
    }

    pub fn metric(&self, name: &str) -> Option<&SimMetric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    pub(crate) fn device_at(&self, index: usize) -> &SimDevice {
        let (a, d) = self.positions[index];
        &self.applications[a].devices[d]
    }

    pub(crate) fn application_of(&self, index: usize) -> &SimApplication {
        &self.applications[self.positions[index].0]
    }

    /// The value metric `metric` (catalogue position) of device `index` has at `at`.
    pub(crate) fn value(&self, index: usize, metric: usize, at: Timestamp) -> Value {
        let g = index as i64;
        let slot_us = self.slot.as_micros().clamp(1, i64::MAX as u128) as i64;
        let slot = at
            .as_micros()
            .saturating_sub(self.epoch.as_micros())
            .div_euclid(slot_us);
        match self.metrics[metric].shape {
            Shape::Sine {
                base,
                amplitude,
                period_us,
                phase,
            } => {
                // Reduce the time modulo the period in integers: exact, and the same for every
                // caller, so expected and emitted values are bit-identical.
                let turn = at.as_micros().rem_euclid(period_us) as f64 / period_us as f64;
                let v = base + amplitude * (TAU * turn + phase + 0.7 * index as f64).sin();
                Value::Float((v * 100.0).round() / 100.0)
            }
            Shape::Counter { offset } => {
                let elapsed_ms =
                    at.as_micros().saturating_sub(self.epoch.as_micros()).max(0) / 1_000;
                Value::Int(elapsed_ms + offset + g)
            }
            Shape::Toggle { shift } => Value::Bool((slot + shift + g).rem_euclid(2) == 1),
            Shape::Cycle { shift } => {
                Value::String(MODES[(slot + shift + g).rem_euclid(3) as usize].to_string())
            }
            Shape::Battery => {
                let hour_us = 3_600_000_000_i64;
                let turn = at.as_micros().rem_euclid(hour_us) as f64 / hour_us as f64;
                let ripple = (40.0 * (TAU * turn + index as f64).sin()).round();
                Value::Float(3300.0 + ((index * 37) % 300) as f64 + ripple)
            }
        }
    }

    /// The number `GetMetrics` records for a value (booleans as 0/1, strings not at all).
    pub(crate) fn numeric(value: &Value) -> Option<f64> {
        match value {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            Value::Bool(v) => Some(if *v { 1.0 } else { 0.0 }),
            Value::String(_) => None,
        }
    }

    /// The decoded uplink object of device `index` at `at` (every uplink metric).
    pub(crate) fn uplink_object(
        &self,
        index: usize,
        at: Timestamp,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut object = serde_json::Map::new();
        for (m, metric) in self.metrics.iter().enumerate().filter(|(_, m)| m.in_uplink) {
            let json = match self.value(index, m, at) {
                Value::Float(v) => serde_json::Number::from_f64(v)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::Int(v) => serde_json::Value::from(v),
                Value::Bool(v) => serde_json::Value::Bool(v),
                Value::String(v) => serde_json::Value::String(v),
            };
            object.insert(metric.name.clone(), json);
        }
        object
    }

    /// The `[[application]]` blocks an opcgw configuration needs to serve this world: every
    /// metric (battery included, so the `GetMetrics` fallback is configured) and one command.
    pub fn to_config(&self) -> Vec<ApplicationConfig> {
        self.applications
            .iter()
            .map(|app| ApplicationConfig {
                application_name: app.name.clone(),
                application_id: app.id.clone(),
                discover: false,
                templates: Default::default(),
                devices: app
                    .devices
                    .iter()
                    .map(|device| DeviceConfig {
                        device_name: device.name.clone(),
                        device_id: device.dev_eui.clone(),
                        stale_threshold_seconds: None,
                        metrics: self
                            .metrics
                            .iter()
                            .map(|m| MetricConfig {
                                metric_name: m.name.clone(),
                                chirpstack_metric_name: m.name.clone(),
                                metric_type: m.metric_type,
                                metric_unit: m.unit.map(str::to_string),
                            })
                            .collect(),
                        commands: vec![CommandConfig {
                            command_name: "setpoint".into(),
                            command_id: 1,
                            command_confirmed: true,
                            command_port: 10,
                            command_type: MetricType::Int,
                            command_min: Some(0.0),
                            command_max: Some(100.0),
                        }],
                    })
                    .collect(),
            })
            .collect()
    }
}

/// UUID-shaped application id of application `a` (0-based).
pub(crate) fn application_id(a: usize) -> String {
    format!("51a00000-0000-4000-8000-{:012x}", a + 1)
}

/// DevEUI of device `d` of application `a` (0-based): `5100` + 4 hex digits + 8 hex digits.
pub(crate) fn dev_eui(a: usize, d: usize) -> String {
    format!("5100{:04x}{:08x}", a + 1, d + 1)
}

/// The catalogue: kinds cycle gauge, counter, bool, string; later entries get numbered names.
fn catalogue(uplink_metrics: usize) -> Vec<SimMetric> {
    let mut metrics: Vec<SimMetric> = (0..uplink_metrics)
        .map(|k| {
            let round = (k / 4) as i64;
            let numbered = |base: &str| {
                if k < 4 {
                    base.to_string()
                } else {
                    format!("{base}_{k}")
                }
            };
            let (name, metric_type, kind, unit, shape) = match k % 4 {
                0 => (
                    numbered("temperature"),
                    MetricType::Float,
                    MeasurementKind::Gauge,
                    Some("°C"),
                    Shape::Sine {
                        base: 20.0 + 5.0 * round as f64,
                        amplitude: 5.0,
                        period_us: (600 + 60 * round) * 1_000_000,
                        phase: 0.3 * k as f64,
                    },
                ),
                1 => (
                    numbered("counter"),
                    MetricType::Int,
                    MeasurementKind::Counter,
                    None,
                    Shape::Counter {
                        offset: 10 * k as i64,
                    },
                ),
                2 => (
                    numbered("valve_open"),
                    MetricType::Bool,
                    MeasurementKind::Gauge,
                    None,
                    Shape::Toggle { shift: round },
                ),
                _ => (
                    numbered("mode"),
                    MetricType::String,
                    MeasurementKind::State,
                    None,
                    Shape::Cycle { shift: round },
                ),
            };
            SimMetric {
                name,
                metric_type,
                kind,
                unit,
                in_uplink: true,
                shape,
            }
        })
        .collect();
    metrics.push(SimMetric {
        name: BATTERY_METRIC.to_string(),
        metric_type: MetricType::Float,
        kind: MeasurementKind::Gauge,
        unit: Some("mV"),
        in_uplink: false,
        shape: Shape::Battery,
    });
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_names_sort_like_indices() {
        let world = World::new(
            "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            12,
            12,
            4,
            Duration::from_secs(10),
            Timestamp::default(),
        );
        assert_eq!(world.device_count(), 144);
        assert_eq!(
            world.applications[0].id,
            "51a00000-0000-4000-8000-000000000001"
        );
        assert_eq!(
            world.applications[11].devices[9].dev_eui,
            "5100000c0000000a"
        );
        assert_eq!(world.applications[0].name, "Application 01");
        assert_eq!(world.applications[0].devices[0].name, "Device 1-01");
        let names: Vec<&str> = world.applications.iter().map(|a| a.name.as_str()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        let devices: Vec<&str> = world.applications[3]
            .devices
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert!(devices.windows(2).all(|w| w[0] < w[1]), "{devices:?}");
        let looked_up = world.device("5100000C0000000A").unwrap();
        assert_eq!(
            (looked_up.index, looked_up.name.as_str()),
            (141, "Device 12-10")
        );
        assert!(world.devices().enumerate().all(|(i, d)| d.index == i));
    }
}
