//! The live value of every metric variable and its quality (docs/opcua.md, "Values, quality and timestamps"), independent of the OPC
//! UA library: what to publish when samples arrive and when a value ages past a threshold.
//!
//! Timestamps follow OPC UA Part 4 §7.11: a new value carries the device time as its
//! SourceTimestamp and the gateway's receive time as its ServerTimestamp; a *status* change of
//! an unchanged value (Good -> Uncertain -> Bad as it ages) is stamped with the time the
//! gateway noticed it, so a subscriber sees when the value went stale.

use std::collections::HashMap;
use std::sync::Arc;

use hashbrown::DefaultHashBuilder;

use crate::config::{AppConfig, MetricType};
use crate::model::{find_by_name, Names, Quality, Sample, StalenessRule, Timestamp, Value};
use crate::naming::metric_node_id;

/// What to publish for one metric variable.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveUpdate {
    /// The variable's NodeId identifier (`<device_id>/<metric>`).
    pub node: String,
    /// `None` until a first value arrived.
    pub value: Option<Value>,
    pub quality: Quality,
    pub source_time: Timestamp,
    pub server_time: Timestamp,
}

/// How many metric values are in each quality.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QualityCounts {
    pub good: u32,
    pub uncertain: u32,
    pub bad: u32,
    pub waiting: u32,
}

#[derive(Debug, Clone)]
struct LiveValue {
    metric_type: MetricType,
    quality: Quality,
    /// Index of the device's staleness rule in [`LiveValues::rules`] (devices share a few).
    rule: u32,
    value: Option<Value>,
    /// Device time of `value`.
    measured: Option<Timestamp>,
    /// The timestamps last published.
    source_time: Timestamp,
    server_time: Timestamp,
}

impl LiveValue {
    fn waiting(metric_type: MetricType, rule: u32, now: Timestamp) -> Self {
        Self {
            metric_type,
            quality: Quality::WaitingForInitialData,
            rule,
            value: None,
            measured: None,
            source_time: now,
            server_time: now,
        }
    }

    fn update(&self, device_id: &str, metric: &str) -> LiveUpdate {
        LiveUpdate {
            node: metric_node_id(device_id, metric),
            value: self.value.clone(),
            quality: self.quality,
            source_time: self.source_time,
            server_time: self.server_time,
        }
    }
}

/// A device's metrics, sorted by name. The names are shared by every device that has the
/// metric (10,000 devices name theirs alike).
type DeviceValues = Vec<(Arc<str>, LiveValue)>;

/// The live value of every configured metric. Kept small per variable (88 bytes and nothing
/// on the heap: the metric's name is shared, its device's id kept once per device): the OPC
/// UA and web actors each hold one for every configured metric.
#[derive(Debug, Default)]
pub struct LiveValues {
    /// foldhash: a device is looked up for every sample, in both actors.
    by_device: HashMap<Box<str>, DeviceValues, DefaultHashBuilder>,
    len: usize,
    /// The distinct staleness rules of the configured devices.
    rules: Vec<StalenessRule>,
    /// Kept up to date with every quality change (a count is asked for after every batch of
    /// samples; scanning 10,000 values each time showed in profiles).
    counts: QualityCounts,
}

impl QualityCounts {
    fn slot(&mut self, quality: Quality) -> &mut u32 {
        match quality {
            Quality::Good => &mut self.good,
            Quality::Uncertain => &mut self.uncertain,
            Quality::Bad => &mut self.bad,
            Quality::WaitingForInitialData => &mut self.waiting,
        }
    }

    /// One value moved from quality `from` to `to`.
    fn moved(&mut self, from: Quality, to: Quality) {
        if from != to {
            let slot = self.slot(from);
            *slot = slot.saturating_sub(1);
            *self.slot(to) += 1;
        }
    }
}

impl LiveValues {
    /// Every configured metric, waiting for its first value.
    pub fn from_config(config: &AppConfig, now: Timestamp) -> Self {
        let mut values = Self::default();
        values.reconfigure(config, now);
        values
    }

    /// Follows a new configuration: metrics that stay keep their value (with the new
    /// staleness rule), new ones wait for data, removed ones are forgotten.
    pub fn reconfigure(&mut self, config: &AppConfig, now: Timestamp) {
        let devices = config.applications.iter().flat_map(|a| &a.devices);
        let mut next: HashMap<Box<str>, DeviceValues, DefaultHashBuilder> =
            HashMap::with_capacity_and_hasher(
                devices.clone().count(),
                DefaultHashBuilder::default(),
            );
        let mut names = Names::default();
        let mut rules: Vec<StalenessRule> = Vec::new();
        let mut rule_index: HashMap<StalenessRule, u32> = HashMap::new();
        let mut len = 0;
        for device in devices {
            let rule = config.staleness_rule(device);
            let rule = *rule_index.entry(rule).or_insert_with(|| {
                rules.push(rule);
                (rules.len() - 1) as u32
            });
            let mut before = self.by_device.remove(device.device_id.as_str());
            let mut metrics = DeviceValues::with_capacity(device.metrics.len());
            for metric in &device.metrics {
                let waiting = LiveValue::waiting(metric.metric_type, rule, now);
                let kept = (before.as_mut())
                    .and_then(|before| {
                        let at = find_by_name(before, &metric.metric_name).ok()?;
                        Some(&mut before[at].1)
                    })
                    // A value of the wrong type (the metric type changed) is not kept.
                    .filter(|live| live.metric_type == metric.metric_type);
                let live = match kept {
                    Some(live) => LiveValue {
                        rule,
                        ..std::mem::replace(live, waiting)
                    },
                    None => waiting,
                };
                metrics.push((names.get(&metric.metric_name), live));
            }
            metrics.sort_by(|a, b| a.0.cmp(&b.0));
            metrics.dedup_by(|a, b| a.0 == b.0);
            len += metrics.len();
            next.insert(device.device_id.as_str().into(), metrics);
        }
        self.by_device = next;
        self.len = len;
        self.rules = rules;
        let mut counts = QualityCounts::default();
        for (_, live) in self.by_device.values().flatten() {
            *counts.slot(live.quality) += 1;
        }
        self.counts = counts;
    }

    /// Takes new samples; returns the variables whose published value changes (at most one
    /// update per variable, the newest sample). A sample older than the current value only
    /// goes to history; unknown metrics are ignored.
    pub fn apply(&mut self, samples: &[Sample], now: Timestamp) -> Vec<LiveUpdate> {
        // A batch is mostly one device's uplink: a vector, sorted and deduplicated after.
        let mut changed: Vec<(&str, usize)> = Vec::new();
        for sample in samples {
            let device_id = &*sample.device_id;
            let Some(metrics) = self.by_device.get_mut(device_id) else {
                continue;
            };
            let Ok(at) = find_by_name(metrics, &sample.metric) else {
                continue;
            };
            let live = &mut metrics[at].1;
            if live.measured.is_some_and(|m| sample.source_time <= m) {
                continue;
            }
            if sample.value.metric_type() != live.metric_type {
                continue; // the poller converts to the configured type; never publish another
            }
            live.value = Some(sample.value.clone());
            live.measured = Some(sample.source_time);
            let quality = self.rules[live.rule as usize].quality(Some(sample.source_time), now);
            self.counts.moved(live.quality, quality);
            live.quality = quality;
            live.source_time = sample.source_time;
            live.server_time = sample.received_time;
            changed.push((device_id, at));
        }
        changed.sort_unstable();
        changed.dedup();
        let mut updates: Vec<LiveUpdate> = changed
            .into_iter()
            .filter_map(|(device_id, at)| {
                let (metric, live) = self.by_device.get(device_id)?.get(at)?;
                Some(live.update(device_id, metric))
            })
            .collect();
        updates.sort_by(|a, b| a.node.cmp(&b.node));
        updates
    }

    /// Re-evaluates every value's quality at `now`; returns those whose quality changed,
    /// stamped with `now`.
    pub fn reevaluate(&mut self, now: Timestamp) -> Vec<LiveUpdate> {
        let mut updates = Vec::new();
        for (device_id, metrics) in &mut self.by_device {
            for (metric, live) in metrics {
                let quality = self.rules[live.rule as usize].quality(live.measured, now);
                if quality != live.quality {
                    self.counts.moved(live.quality, quality);
                    live.quality = quality;
                    live.source_time = now;
                    live.server_time = now;
                    updates.push(live.update(device_id, metric));
                }
            }
        }
        updates.sort_by(|a, b| a.node.cmp(&b.node));
        updates
    }

    /// The current state of every variable (to fill a freshly started address space).
    pub fn snapshot(&self) -> Vec<LiveUpdate> {
        let mut all: Vec<LiveUpdate> = (self.by_device.iter())
            .flat_map(|(device_id, metrics)| {
                (metrics.iter()).map(move |(metric, live)| live.update(device_id, metric))
            })
            .collect();
        all.sort_by(|a, b| a.node.cmp(&b.node));
        all
    }

    pub fn counts(&self) -> QualityCounts {
        self.counts
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApplicationConfig, DeviceConfig, MetricConfig, MetricType};
    use crate::model::SampleOrigin;

    fn config() -> AppConfig {
        let metric = |name: &str, ty| MetricConfig {
            metric_name: name.into(),
            chirpstack_metric_name: name.to_lowercase(),
            metric_type: ty,
            metric_unit: None,
        };
        let mut config = AppConfig {
            applications: vec![ApplicationConfig {
                application_name: "Farm".into(),
                application_id: "app-1".into(),
                discover: false,
                templates: Default::default(),
                devices: vec![
                    DeviceConfig {
                        device_name: "Probe".into(),
                        device_id: "dev-1".into(),
                        stale_threshold_seconds: None,
                        metrics: vec![metric("Moisture", MetricType::Float)],
                        commands: vec![],
                    },
                    DeviceConfig {
                        device_name: "Slow".into(),
                        device_id: "dev-2".into(),
                        stale_threshold_seconds: Some(3600),
                        metrics: vec![metric("Level", MetricType::Int)],
                        commands: vec![],
                    },
                ],
            }],
            ..AppConfig::default()
        };
        config.opcua.stale_threshold_seconds = 60;
        config.opcua.bad_threshold_seconds = 600;
        config
    }

    fn sample(device: &str, metric: &str, value: Value, source: i64, received: i64) -> Sample {
        Sample {
            device_id: device.into(),
            metric: metric.into(),
            value,
            source_time: Timestamp(source),
            received_time: Timestamp(received),
            origin: SampleOrigin::Uplink,
        }
    }

    const S: i64 = 1_000_000;

    #[test]
    fn every_metric_waits_for_its_first_value() {
        let values = LiveValues::from_config(&config(), Timestamp(0));
        assert_eq!(values.len(), 2);
        assert!(values
            .snapshot()
            .iter()
            .all(|u| u.value.is_none() && u.quality == Quality::WaitingForInitialData));
        assert_eq!(values.counts().waiting, 2);
    }

    #[test]
    fn the_newest_sample_wins_with_device_and_gateway_timestamps() {
        let mut values = LiveValues::from_config(&config(), Timestamp(0));
        let now = Timestamp(100 * S);
        let updates = values.apply(
            &[
                sample("dev-1", "Moisture", Value::Float(1.0), 90 * S, 95 * S),
                sample("dev-1", "Moisture", Value::Float(2.0), 99 * S, 99 * S + 5),
                sample("dev-1", "Moisture", Value::Float(0.5), 80 * S, 99 * S),
                sample("dev-9", "Nope", Value::Float(3.0), 99 * S, 99 * S),
            ],
            now,
        );
        assert_eq!(
            updates,
            vec![LiveUpdate {
                node: "dev-1/Moisture".into(),
                value: Some(Value::Float(2.0)),
                quality: Quality::Good,
                source_time: Timestamp(99 * S),
                server_time: Timestamp(99 * S + 5),
            }]
        );
        // An older replayed value changes nothing.
        assert!(values
            .apply(
                &[sample(
                    "dev-1",
                    "Moisture",
                    Value::Float(7.0),
                    98 * S,
                    101 * S
                )],
                now
            )
            .is_empty());
    }

    /// The counts kept up to date equal a full recount after every step.
    #[test]
    fn quality_counts_follow_every_change() {
        fn recount(values: &LiveValues) -> QualityCounts {
            let mut counts = QualityCounts::default();
            for update in values.snapshot() {
                *counts.slot(update.quality) += 1;
            }
            counts
        }
        let mut config = config();
        let mut values = LiveValues::from_config(&config, Timestamp(0));
        type Step = Box<dyn Fn(&mut LiveValues, &mut AppConfig)>;
        let steps: Vec<Step> = vec![
            Box::new(|v, _| {
                v.apply(
                    &[sample("dev-1", "Moisture", Value::Float(1.0), S, S)],
                    Timestamp(S),
                );
            }),
            Box::new(|v, _| {
                v.apply(
                    &[sample("dev-2", "Level", Value::Int(4), S, S)],
                    Timestamp(S),
                );
            }),
            Box::new(|v, _| {
                v.reevaluate(Timestamp(100 * S));
            }),
            Box::new(|v, _| {
                v.apply(
                    &[sample(
                        "dev-1",
                        "Moisture",
                        Value::Float(2.0),
                        100 * S,
                        100 * S,
                    )],
                    Timestamp(100 * S),
                );
            }),
            Box::new(|v, _| {
                v.reevaluate(Timestamp(5000 * S));
            }),
            Box::new(|v, c| {
                c.applications[0].devices.pop();
                v.reconfigure(c, Timestamp(5000 * S));
            }),
            Box::new(|v, _| {
                v.reevaluate(Timestamp(9000 * S));
            }),
        ];
        let mut seen = Vec::new();
        for step in &steps {
            step(&mut values, &mut config);
            assert_eq!(values.counts(), recount(&values));
            seen.push(values.counts());
        }
        // The steps did move values between qualities (the check above was not vacuous).
        assert!(seen.iter().any(|c| c.good > 0) && seen.iter().any(|c| c.uncertain > 0));
        assert!(seen.iter().any(|c| c.bad > 0));
    }

    #[test]
    fn values_age_good_uncertain_bad_once_each_stamped_when_noticed() {
        let mut values = LiveValues::from_config(&config(), Timestamp(0));
        values.apply(
            &[sample("dev-1", "Moisture", Value::Float(1.0), 0, 1)],
            Timestamp(1),
        );
        assert!(values.reevaluate(Timestamp(59 * S)).is_empty());
        let uncertain = values.reevaluate(Timestamp(61 * S));
        assert_eq!(uncertain.len(), 1);
        assert_eq!(uncertain[0].quality, Quality::Uncertain);
        assert_eq!(uncertain[0].value, Some(Value::Float(1.0)));
        assert_eq!(uncertain[0].source_time, Timestamp(61 * S));
        assert!(values.reevaluate(Timestamp(62 * S)).is_empty());
        let bad = values.reevaluate(Timestamp(601 * S));
        assert_eq!(bad[0].quality, Quality::Bad);
        assert_eq!(
            values.counts(),
            QualityCounts {
                good: 0,
                uncertain: 0,
                bad: 1,
                waiting: 1
            }
        );
        // A fresh value is Good again at once.
        let good = values.apply(
            &[sample(
                "dev-1",
                "Moisture",
                Value::Float(2.0),
                700 * S,
                700 * S,
            )],
            Timestamp(700 * S),
        );
        assert_eq!(good[0].quality, Quality::Good);
    }

    #[test]
    fn a_device_override_and_a_reload_change_the_rule_and_keep_values() {
        let mut config = config();
        let mut values = LiveValues::from_config(&config, Timestamp(0));
        values.apply(
            &[sample("dev-2", "Level", Value::Int(4), 0, 0)],
            Timestamp(0),
        );
        // dev-2 keeps Good for an hour (its own threshold), not 60 s.
        assert!(values.reevaluate(Timestamp(120 * S)).is_empty());
        config.applications[0].devices[1].stale_threshold_seconds = Some(100);
        values.reconfigure(&config, Timestamp(120 * S));
        let updates = values.reevaluate(Timestamp(121 * S));
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].value, Some(Value::Int(4)));
        assert_eq!(updates[0].quality, Quality::Uncertain);
        // A metric whose type changed drops its value; a removed one is forgotten.
        config.applications[0].devices[1].metrics[0].metric_type = MetricType::Float;
        config.applications[0].devices.remove(0);
        values.reconfigure(&config, Timestamp(130 * S));
        assert_eq!(values.len(), 1);
        assert_eq!(values.snapshot()[0].value, None);
    }
}
