//! What the poller remembers between cycles, and the two decisions around a cycle: what to
//! ask for ([`PollCycle::plan`]) and what a report means ([`PollCycle::absorb`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chirpstack_api::common::Aggregation;
use serde_json::{Map, Value as Json};

use super::cycle::{CycleInput, CycleReport, FallbackTarget};
use crate::chirpstack::client::{DeviceSummary, QueueItem};
use crate::chirpstack::mapping::{DeviceMapping, Rejection};
use crate::chirpstack::series::SeriesTracker;
use crate::chirpstack::upstream::UpstreamState;
use crate::config::{AppConfig, MetricType};
use crate::model::{Names, Sample, Timestamp};

/// Link quality (RSSI, SNR) of every device is read on the first cycle and then once every
/// this many cycles: it costs one call per device and changes slowly. The devices are spread
/// over the cycles (a sixth each), so no cycle carries them all: at 10,000 devices that one
/// cycle took 2-3 s against ~0.4 s for the others.
pub const LINK_QUALITY_EVERY_CYCLES: u64 = 6;

/// Which of the [`LINK_QUALITY_EVERY_CYCLES`] cycles reads a device's link quality (stable
/// for a device across runs and reloads).
fn link_quality_turn(dev_eui: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(dev_eui, &mut hasher);
    std::hash::Hasher::finish(&hasher) % LINK_QUALITY_EVERY_CYCLES
}

/// The poller's memory of past cycles and uplinks.
#[derive(Debug)]
pub struct PollCycle {
    mappings: HashMap<String, DeviceMapping>,
    series: SeriesTracker,
    aggregation: Aggregation,
    applications_verified: bool,
    /// Per device, the `last_seen` whose `GetMetrics` bucket was read.
    metrics_fetched_for: HashMap<String, Timestamp>,
    cycles: u64,
    /// The last cycle failed as a whole: the next one reconciles from `GetMetrics` (streams
    /// may have missed what the failure hid).
    last_failed: bool,
    last_cycle: Duration,
}

/// What a successful cycle means for the rest of the gateway.
#[derive(Debug, Default)]
pub struct CycleOutcome {
    /// The server refused MINUTE: this aggregation is used from now on.
    pub aggregation_changed: Option<Aggregation>,
    /// Configured applications missing from the tenant (reported once per topology).
    pub unknown_applications: Vec<String>,
    /// Configured devices that no listing returned.
    pub unlisted_devices: Vec<String>,
    /// Health of the configured devices that were listed.
    pub health: Vec<DeviceSummary>,
    /// Aggregated values newer than everything known for their series.
    pub samples: Vec<Sample>,
    pub rejections: Vec<Rejection>,
    /// Downlink queues of the devices with overdue commands.
    pub queues: HashMap<String, Vec<QueueItem>>,
}

impl PollCycle {
    pub fn new(config: &AppConfig) -> Self {
        let mut cycle = Self {
            mappings: HashMap::new(),
            series: SeriesTracker::default(),
            aggregation: Aggregation::Minute,
            applications_verified: false,
            metrics_fetched_for: HashMap::new(),
            cycles: 0,
            last_failed: false,
            last_cycle: Duration::ZERO,
        };
        cycle.set_topology(config);
        cycle
    }

    /// Rebuilds the per-device mappings; the applications are verified again next cycle.
    pub fn set_topology(&mut self, config: &AppConfig) {
        let mut names = Names::default();
        self.mappings = config
            .devices()
            .map(|(_, d)| {
                (
                    d.device_id.clone(),
                    DeviceMapping::from_config(d, &mut names),
                )
            })
            .collect();
        let mappings = &self.mappings;
        self.series.retain_devices(|d| mappings.contains_key(d));
        self.applications_verified = false;
    }

    /// The configured devices, sorted.
    pub fn devices(&self) -> Vec<String> {
        let mut devices: Vec<String> = self.mappings.keys().cloned().collect();
        devices.sort();
        devices
    }

    /// Whether `dev_eui` is a configured device.
    pub fn knows(&self, dev_eui: &str) -> bool {
        self.mappings.contains_key(dev_eui)
    }

    pub fn device_count(&self) -> usize {
        self.mappings.len()
    }

    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    pub fn last_cycle(&self) -> Duration {
        self.last_cycle
    }

    pub fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    /// What the next cycle asks for, given the upstream state and the devices whose commands
    /// are overdue.
    pub fn plan(
        &self,
        config: &AppConfig,
        upstream: UpstreamState,
        queues_to_check: Vec<String>,
    ) -> CycleInput {
        CycleInput {
            tenant_id: config.chirpstack.tenant_id.clone(),
            application_ids: config
                .applications
                .iter()
                .map(|a| a.application_id.clone())
                .collect(),
            verify_applications: !self.applications_verified,
            page_size: config.chirpstack.list_page_size,
            concurrency: config.chirpstack.poll_concurrency as usize,
            fallback: self.fallback_targets(config, upstream),
            aggregation: self.aggregation,
            queues_to_check,
            link_quality_of: self
                .mappings
                .keys()
                .filter(|dev_eui| {
                    self.cycles == 0
                        || link_quality_turn(dev_eui) == self.cycles % LINK_QUALITY_EVERY_CYCLES
                })
                .cloned()
                .collect(),
        }
    }

    /// Metrics to take from `GetMetrics`: those uplinks never delivered, or all of them right
    /// after an outage (to reconcile the gap; newer raw values still win).
    fn fallback_targets(&self, config: &AppConfig, upstream: UpstreamState) -> Vec<FallbackTarget> {
        let reconcile = self.last_failed
            || matches!(upstream, UpstreamState::Down | UpstreamState::Starting) && self.cycles > 0;
        let mut targets: Vec<FallbackTarget> = self
            .mappings
            .values()
            .filter_map(|mapping| {
                let metrics: Vec<_> = mapping
                    .metrics
                    .iter()
                    .filter(|m| m.metric_type != MetricType::String)
                    .filter(|m| {
                        reconcile
                            || !config.chirpstack.event_stream
                            || !self
                                .series
                                .seen_in_uplink(&mapping.device_id, &m.metric_name)
                    })
                    .cloned()
                    .collect();
                (!metrics.is_empty()).then(|| FallbackTarget {
                    device_id: mapping.device_id.clone(),
                    metrics,
                    // Reconciling reads every bucket again; otherwise only what is new.
                    fetched_for: if reconcile {
                        None
                    } else {
                        self.metrics_fetched_for.get(&*mapping.device_id).copied()
                    },
                })
            })
            .collect();
        targets.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        targets
    }

    /// Takes in a finished cycle; `None` when it failed as a whole (nothing is learnt).
    pub fn absorb(&mut self, report: CycleReport, config: &AppConfig) -> Option<CycleOutcome> {
        self.cycles += 1;
        self.last_cycle = report.duration;
        self.last_failed = report.failure.is_some();
        if self.last_failed {
            return None;
        }
        let mut outcome = CycleOutcome::default();
        if report.aggregation != self.aggregation {
            self.aggregation = report.aggregation;
            outcome.aggregation_changed = Some(report.aggregation);
        }
        if !self.applications_verified {
            self.applications_verified = true;
            outcome.unknown_applications = report.unknown_applications;
        }
        let listed: HashSet<&str> = report.devices.iter().map(|d| d.dev_eui.as_str()).collect();
        outcome.unlisted_devices = config
            .devices()
            .map(|(_, d)| &d.device_id)
            .filter(|device| !listed.contains(device.as_str()))
            .cloned()
            .collect();
        outcome.health = report
            .devices
            .into_iter()
            .filter(|d| self.mappings.contains_key(&d.dev_eui))
            .collect();
        self.metrics_fetched_for.extend(report.fetched);
        outcome.samples = self.series.admit_aggregates(report.aggregates);
        outcome.rejections = report.rejections;
        outcome.queues = report.queues;
        Some(outcome)
    }

    /// The samples of an uplink's decoded object for a configured device (`None` for others).
    pub fn uplink(
        &mut self,
        dev_eui: &str,
        object: &Map<String, Json>,
        source_time: Timestamp,
        received: Timestamp,
    ) -> Option<(Vec<Sample>, Vec<Rejection>)> {
        let mapping = self.mappings.get(dev_eui)?;
        let (samples, rejections) = mapping.samples_from_object(object, source_time, received);
        self.series.record_raw(&samples);
        Some((samples, rejections))
    }
}
