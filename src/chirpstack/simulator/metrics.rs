//! `GetMetrics` / `GetLinkMetrics` aggregation: samples folded into calendar buckets.
//!
//! ChirpStack pre-aggregates every measurement into Redis hashes per bucket (gauges as sum and
//! count, counters as the last value, link statistics as sums) and answers with whole buckets
//! (`chirpstack/src/storage/metrics.rs`). The simulator folds the same way at query time.
//! Buckets are UTC (ChirpStack uses the server's local zone; servers usually run in UTC).

use chirpstack_api::common::Aggregation;

use crate::chirpstack::buckets::{bucket_start, next_bucket};
use crate::model::Timestamp;

/// Most buckets one answer may hold (a MINUTE query over a year would be half a million).
pub(crate) const MAX_BUCKETS: usize = 10_000;

/// How the samples of one bucket become its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    /// Average (ChirpStack GAUGE).
    Mean,
    /// Last value (ChirpStack COUNTER).
    Last,
    /// Sum (ChirpStack ABSOLUTE).
    Sum,
}

/// Aggregated columns, parallel to `bucket_starts` (ChirpStack's `Metric` layout).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Series {
    pub(crate) bucket_starts: Vec<Timestamp>,
    pub(crate) columns: Vec<Vec<f32>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Accumulator {
    sum: f64,
    count: u64,
    last: f64,
}

impl Accumulator {
    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
        self.last = value;
    }

    /// An empty bucket reads as 0, as ChirpStack's `unwrap_or(0.0)` does.
    fn finish(&self, fold: Fold) -> f32 {
        if self.count == 0 {
            return 0.0;
        }
        (match fold {
            Fold::Mean => self.sum / self.count as f64,
            Fold::Last => self.last,
            Fold::Sum => self.sum,
        }) as f32
    }
}

/// Folds samples at `times` (ascending) into the buckets that overlap `[start, end)`.
///
/// `sample(t, row)` writes the value of every column at time `t` (NaN = no value). Without
/// `fill_empty`, only buckets with samples are returned; with it, every bucket of the range,
/// empty ones as 0 (real ChirpStack's answer). `None` when the range needs more than
/// [`MAX_BUCKETS`] buckets.
pub(crate) fn aggregate(
    times: impl IntoIterator<Item = Timestamp>,
    aggregation: Aggregation,
    (start, end): (Timestamp, Timestamp),
    folds: &[Fold],
    fill_empty: bool,
    mut sample: impl FnMut(Timestamp, &mut [f64]),
) -> Option<Series> {
    let first = bucket_start(aggregation, start);
    let mut buckets: Vec<(Timestamp, Vec<Accumulator>)> = Vec::new();
    let mut row = vec![f64::NAN; folds.len()];
    for t in times {
        let bucket = bucket_start(aggregation, t);
        if bucket < first {
            continue;
        }
        if bucket >= end {
            break;
        }
        if buckets.last().is_none_or(|(last, _)| *last != bucket) {
            if buckets.len() == MAX_BUCKETS {
                return None;
            }
            buckets.push((bucket, vec![Accumulator::default(); folds.len()]));
        }
        row.fill(f64::NAN);
        sample(t, &mut row);
        if let Some((_, accumulators)) = buckets.last_mut() {
            for (acc, value) in accumulators.iter_mut().zip(&row) {
                if value.is_finite() {
                    acc.add(*value);
                }
            }
        }
    }
    if fill_empty {
        buckets = fill_range(aggregation, first, end, buckets, folds.len())?;
    }
    let mut series = Series {
        bucket_starts: buckets.iter().map(|(start, _)| *start).collect(),
        columns: vec![Vec::with_capacity(buckets.len()); folds.len()],
    };
    for (_, accumulators) in &buckets {
        for ((column, acc), fold) in series.columns.iter_mut().zip(accumulators).zip(folds) {
            column.push(acc.finish(*fold));
        }
    }
    Some(series)
}

/// Every bucket from `first` while before `end`, taking the filled ones from `data`.
fn fill_range(
    aggregation: Aggregation,
    first: Timestamp,
    end: Timestamp,
    data: Vec<(Timestamp, Vec<Accumulator>)>,
    columns: usize,
) -> Option<Vec<(Timestamp, Vec<Accumulator>)>> {
    let mut data = data.into_iter().peekable();
    let mut out = Vec::new();
    let mut bucket = first;
    while bucket < end {
        if out.len() == MAX_BUCKETS {
            return None;
        }
        match data.next_if(|(start, _)| *start == bucket) {
            Some(filled) => out.push(filled),
            None => out.push((bucket, vec![Accumulator::default(); columns])),
        }
        let next = next_bucket(aggregation, bucket);
        if next <= bucket {
            break;
        }
        bucket = next;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn gauges_average_counters_keep_the_last_and_sums_add_up() {
        let times = [
            ts("2024-05-01T10:10:00Z"),
            ts("2024-05-01T10:20:00Z"),
            ts("2024-05-01T11:05:00Z"),
        ];
        let values = [1.0, 3.0, 10.0];
        let series = aggregate(
            times,
            Aggregation::Hour,
            (ts("2024-05-01T10:30:00Z"), ts("2024-05-01T12:00:00Z")),
            &[Fold::Mean, Fold::Last, Fold::Sum],
            false,
            |t, row| {
                let i = times.iter().position(|x| *x == t).unwrap();
                row.fill(values[i]);
            },
        )
        .unwrap();
        // Whole buckets: the 10:00 bucket overlaps the range, so both 10:xx samples count.
        assert_eq!(
            series.bucket_starts,
            [ts("2024-05-01T10:00:00Z"), ts("2024-05-01T11:00:00Z")]
        );
        assert_eq!(
            series.columns,
            [vec![2.0, 10.0], vec![3.0, 10.0], vec![4.0, 10.0]]
        );
    }

    #[test]
    fn filling_reports_every_bucket_of_the_range_and_refuses_huge_ranges() {
        let times = [ts("2024-05-01T10:10:00Z")];
        let range = (ts("2024-05-01T09:00:00Z"), ts("2024-05-01T12:00:00Z"));
        let series = aggregate(
            times,
            Aggregation::Hour,
            range,
            &[Fold::Mean],
            true,
            |_, row| row[0] = 5.0,
        )
        .unwrap();
        assert_eq!(series.columns, [vec![0.0, 5.0, 0.0]]);
        let year = (ts("2024-01-01T00:00:00Z"), ts("2025-01-01T00:00:00Z"));
        assert!(aggregate(
            times,
            Aggregation::Minute,
            year,
            &[Fold::Mean],
            true,
            |_, _| {}
        )
        .is_none());
        assert!(aggregate(
            times,
            Aggregation::Minute,
            year,
            &[Fold::Mean],
            false,
            |_, _| {}
        )
        .is_some());
    }

    #[test]
    fn missing_values_do_not_count_towards_the_average() {
        let times = [ts("2024-05-01T10:10:00Z"), ts("2024-05-01T10:20:00Z")];
        let range = (ts("2024-05-01T10:00:00Z"), ts("2024-05-01T11:00:00Z"));
        let mut first = true;
        let series = aggregate(
            times,
            Aggregation::Hour,
            range,
            &[Fold::Mean],
            false,
            |_, row| {
                row[0] = if first { 4.0 } else { f64::NAN };
                first = false;
            },
        )
        .unwrap();
        assert_eq!(series.columns, [vec![4.0]]);
    }
}
