//! What the poller knows about each series, so that aggregated `GetMetrics` values never
//! overwrite newer raw uplink values and are only fetched where uplinks do not deliver.

use std::collections::HashMap;

use crate::model::{Sample, SampleOrigin, Timestamp};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SeriesState {
    /// Newest uplink value.
    last_raw: Option<Timestamp>,
    /// Newest value of any origin.
    last_any: Option<Timestamp>,
}

/// Per `(device, metric)` timestamps.
#[derive(Debug, Default)]
pub struct SeriesTracker {
    series: HashMap<(String, String), SeriesState>,
}

impl SeriesTracker {
    /// Records uplink samples (all of them are kept: older replays fill history gaps).
    pub fn record_raw(&mut self, samples: &[Sample]) {
        for sample in samples {
            let state = self
                .series
                .entry((sample.device_id.clone(), sample.metric.clone()))
                .or_default();
            state.last_raw = state.last_raw.max(Some(sample.source_time));
            state.last_any = state.last_any.max(Some(sample.source_time));
        }
    }

    /// Keeps only the aggregated samples strictly newer than everything known for their
    /// series, and records them.
    pub fn admit_aggregates(&mut self, samples: Vec<Sample>) -> Vec<Sample> {
        samples
            .into_iter()
            .filter(|sample| {
                debug_assert_eq!(sample.origin, SampleOrigin::Aggregate);
                let state = self
                    .series
                    .entry((sample.device_id.clone(), sample.metric.clone()))
                    .or_default();
                if state.last_any.is_some_and(|t| sample.source_time <= t) {
                    return false;
                }
                state.last_any = Some(sample.source_time);
                true
            })
            .collect()
    }

    /// Whether uplinks ever delivered this series (if not, `GetMetrics` is its source).
    pub fn seen_in_uplink(&self, device_id: &str, metric: &str) -> bool {
        self.series
            .get(&(device_id.to_string(), metric.to_string()))
            .is_some_and(|s| s.last_raw.is_some())
    }

    pub fn last_raw(&self, device_id: &str, metric: &str) -> Option<Timestamp> {
        self.series
            .get(&(device_id.to_string(), metric.to_string()))
            .and_then(|s| s.last_raw)
    }

    /// Forgets devices no longer configured.
    pub fn retain_devices(&mut self, keep: impl Fn(&str) -> bool) {
        self.series.retain(|(device, _), _| keep(device));
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
    }
}
