//! What the poller knows about each series, so that aggregated `GetMetrics` values never
//! overwrite newer raw uplink values and are only fetched where uplinks do not deliver.

use std::hash::RandomState;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::model::{find_by_name, Names, Sample, SampleOrigin, Timestamp};

/// No value yet (a plain time instead of an `Option`: 16 bytes a series instead of 32).
const NEVER: Timestamp = Timestamp(i64::MIN);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeriesState {
    /// Newest uplink value ([`NEVER`]: none yet).
    last_raw: Timestamp,
    /// Newest value of any origin ([`NEVER`]: none yet).
    last_any: Timestamp,
}

impl Default for SeriesState {
    fn default() -> Self {
        Self {
            last_raw: NEVER,
            last_any: NEVER,
        }
    }
}

fn known(time: Timestamp) -> Option<Timestamp> {
    (time != NEVER).then_some(time)
}

/// Per `(device, metric)` timestamps: per device, its metrics sorted by name (a fleet's
/// devices share one copy of each metric name; at 10,000 devices x 11 metrics a pair of
/// strings per series cost ~13 MB).
#[derive(Debug, Default)]
pub struct SeriesTracker {
    devices: HashMap<String, Vec<(Arc<str>, SeriesState)>, RandomState>,
    names: Names,
}

impl SeriesTracker {
    fn state(&self, device_id: &str, metric: &str) -> Option<&SeriesState> {
        let series = self.devices.get(device_id)?;
        let at = find_by_name(series, metric).ok()?;
        Some(&series[at].1)
    }

    fn state_mut(&mut self, device_id: &str, metric: &str) -> &mut SeriesState {
        let Self { devices, names } = self;
        // The device's key is only allocated when it is new.
        let series = devices.entry_ref(device_id).or_default();
        let at = match find_by_name(series, metric) {
            Ok(at) => at,
            Err(at) => {
                series.insert(at, (names.get(metric), SeriesState::default()));
                at
            }
        };
        &mut series[at].1
    }

    /// Records uplink samples (all of them are kept: older replays fill history gaps).
    pub fn record_raw(&mut self, samples: &[Sample]) {
        for sample in samples {
            let state = self.state_mut(&sample.device_id, &sample.metric);
            state.last_raw = state.last_raw.max(sample.source_time);
            state.last_any = state.last_any.max(sample.source_time);
        }
    }

    /// Keeps only the aggregated samples strictly newer than everything known for their
    /// series, and records them.
    pub fn admit_aggregates(&mut self, samples: Vec<Sample>) -> Vec<Sample> {
        samples
            .into_iter()
            .filter(|sample| {
                debug_assert_eq!(sample.origin, SampleOrigin::Aggregate);
                let state = self.state_mut(&sample.device_id, &sample.metric);
                if known(state.last_any).is_some_and(|t| sample.source_time <= t) {
                    return false;
                }
                state.last_any = sample.source_time;
                true
            })
            .collect()
    }

    /// Whether uplinks ever delivered this series (if not, `GetMetrics` is its source).
    pub fn seen_in_uplink(&self, device_id: &str, metric: &str) -> bool {
        self.state(device_id, metric)
            .is_some_and(|s| known(s.last_raw).is_some())
    }

    pub fn last_raw(&self, device_id: &str, metric: &str) -> Option<Timestamp> {
        self.state(device_id, metric)
            .and_then(|s| known(s.last_raw))
    }

    /// Forgets devices no longer configured.
    pub fn retain_devices(&mut self, keep: impl Fn(&str) -> bool) {
        self.devices.retain(|device, _| keep(device));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    fn sample(ts: i64, origin: SampleOrigin) -> Sample {
        Sample {
            device_id: "d".into(),
            metric: "m".into(),
            value: Value::Float(ts as f64),
            source_time: Timestamp(ts),
            received_time: Timestamp(ts),
            origin,
        }
    }

    #[test]
    fn an_aggregate_never_overwrites_a_newer_raw_value() {
        let mut tracker = SeriesTracker::default();
        tracker.record_raw(&[sample(100, SampleOrigin::Uplink)]);
        assert!(tracker
            .admit_aggregates(vec![sample(60, SampleOrigin::Aggregate)])
            .is_empty());
        assert!(tracker
            .admit_aggregates(vec![sample(100, SampleOrigin::Aggregate)])
            .is_empty());
        assert_eq!(
            tracker
                .admit_aggregates(vec![sample(160, SampleOrigin::Aggregate)])
                .len(),
            1
        );
        // The same bucket again is not news.
        assert!(tracker
            .admit_aggregates(vec![sample(160, SampleOrigin::Aggregate)])
            .is_empty());
        assert!(tracker.seen_in_uplink("d", "m"));
        assert!(!tracker.seen_in_uplink("d", "other"));
        assert_eq!(tracker.last_raw("d", "m"), Some(Timestamp(100)));
        // An aggregate alone is not an uplink.
        let aggregate = Sample {
            metric: "agg".into(),
            ..sample(50, SampleOrigin::Aggregate)
        };
        assert_eq!(tracker.admit_aggregates(vec![aggregate]).len(), 1);
        assert!(!tracker.seen_in_uplink("d", "agg"));
        assert_eq!(tracker.last_raw("d", "agg"), None);
        assert_eq!(std::mem::size_of::<SeriesState>(), 16);
    }
}
