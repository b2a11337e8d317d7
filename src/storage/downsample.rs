//! A window of one series' history cut down to a bounded number of points, computed in storage
//! in one pass over the range: the console's charts (a 7-day window at 10 s is 60,480 rows;
//! a chart wants about a thousand points).
//!
//! When the window holds at most `max_points` rows they come back raw. Otherwise `[from, to)`
//! is cut into at most `max_points` equal time buckets, laid out as OPC UA processing intervals
//! (each starting at `from + k * width`), and every non-empty bucket gives min, max, average,
//! count and its first and last value — folded by the same engine as the OPC UA Part 13
//! aggregates (`storage::aggregate`), so a chart and a SCADA trend of the same window agree. Int and Float are averaged as
//! f64 (an Int beyond 2^53 loses its last digits in the figures, never in storage). Bool and
//! String have no average: such a window comes back as its last `max_points` raw rows (the
//! newest part, which is what a chart of a state or a text shows first); so does a window that
//! mixes them with numbers (a metric whose type was changed).
//!
//! Memory is O(`max_points`) whatever the number of rows: the scan keeps the last `max_points`
//! rows (for the raw answers) and at most `max_points` buckets, and decides at the end which
//! answer the window needs.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::aggregate::{summarize_points, IntervalPlan, NumberSummary, RawPoint};
use super::history::{HistoryRow, ReadView};
use super::{StorageError, Store};
use crate::model::{Timestamp, Value};

/// Fewest points a downsampled read may ask for: below this a chart shows nothing useful.
pub const MIN_DOWNSAMPLE_POINTS: usize = 10;
/// Most points a downsampled read may ask for: bounds the memory and the answer's size.
pub const MAX_DOWNSAMPLE_POINTS: usize = 10_000;

/// A window of one series, to be answered in at most `max_points` points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownsampleQuery {
    pub device_id: String,
    pub metric: String,
    /// Inclusive.
    pub from: Timestamp,
    /// Exclusive; `from == to` is an empty window, `from > to` an error.
    pub to: Timestamp,
    /// [`MIN_DOWNSAMPLE_POINTS`]..=[`MAX_DOWNSAMPLE_POINTS`].
    pub max_points: usize,
}

/// The figures of the rows in one time bucket `[start, end)`. Non-finite floats (NaN, ±inf: a
/// decoder gone wrong) are left out of them: one would make every figure of its bucket NaN.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub start: Timestamp,
    /// Exclusive; the window's end for the last bucket.
    pub end: Timestamp,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    /// Rows the figures are made of.
    pub count: u64,
    pub first_time: Timestamp,
    pub first: f64,
    pub last_time: Timestamp,
    pub last: f64,
}

/// What a downsampled read returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Downsampled {
    /// Oldest first: every row of the window when they fit in `max_points`, else (Bool or
    /// String values) the last `max_points` rows of the window.
    Raw(Vec<HistoryRow>),
    /// Oldest first, empty buckets omitted, at most `max_points`.
    Buckets(Vec<Bucket>),
}

impl Downsampled {
    /// Points in the answer (rows or buckets).
    pub fn len(&self) -> usize {
        match self {
            Self::Raw(rows) => rows.len(),
            Self::Buckets(buckets) => buckets.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store {
    /// One window of one series in at most `query.max_points` points (see the module doc), in
    /// one pass over the stored range. A series never stored gives an empty answer: for the
    /// console and OPC UA a configured metric without data is an empty window, not an error.
    pub fn history_downsampled(
        &self,
        query: &DownsampleQuery,
    ) -> Result<Downsampled, StorageError> {
        self.read(|db| self.view(db).history_downsampled(query))
    }
}

impl ReadView<'_> {
    /// See [`Store::history_downsampled`].
    pub(super) fn history_downsampled(
        &self,
        query: &DownsampleQuery,
    ) -> Result<Downsampled, StorageError> {
        const ACTION: &str = "read downsampled history";
        let max_points = query.max_points;
        if !(MIN_DOWNSAMPLE_POINTS..=MAX_DOWNSAMPLE_POINTS).contains(&max_points) {
            return Err(StorageError::invalid(
                self.path,
                format!(
                    "max_points {max_points} is outside \
                     {MIN_DOWNSAMPLE_POINTS}..={MAX_DOWNSAMPLE_POINTS}"
                ),
            ));
        }
        if query.from > query.to {
            return Err(StorageError::invalid(
                self.path,
                format!(
                    "history window starts ({}) after it ends ({})",
                    query.from, query.to
                ),
            ));
        }
        let Some(series) = self.series_id(&query.device_id, &query.metric)? else {
            return Ok(Downsampled::Raw(Vec::new()));
        };
        if query.from == query.to {
            return Ok(Downsampled::Raw(Vec::new()));
        }
        let plan = IntervalPlan {
            start: query.from,
            end: query.to,
            interval: bucket_width(query.from, query.to, max_points),
        };
        let Some(page) = plan.page(0, max_points) else {
            return Ok(Downsampled::Raw(Vec::new()));
        };
        let (low, high) = (query.from.as_micros(), query.to.as_micros());
        self.scan_series(ACTION, series, low, high, false, |rows| {
            let mut newest = VecDeque::with_capacity(max_points.min(4096));
            let mut total = 0usize;
            let mut numeric = true;
            let mut points = rows.map(|row| {
                let row = row?;
                total += 1;
                numeric &= as_number(&row.value).is_some();
                let point = RawPoint::from(row.clone());
                if newest.len() == max_points {
                    newest.pop_front();
                }
                newest.push_back(row);
                Ok(point)
            });
            let summaries = summarize_points(&page, &mut points)?;
            drop(points);
            Ok(if numeric && total > max_points {
                Downsampled::Buckets(summaries.into_iter().flatten().map(bucket).collect())
            } else {
                Downsampled::Raw(newest.into())
            })
        })
    }
}

/// The narrowest whole-microsecond bucket that covers `[from, to)` in at most `buckets`
/// buckets (`from < to`, `buckets > 0`): ceil(span / buckets), so ceil(span / width) <=
/// buckets. In i128: a window may span the whole i64 range of micros.
fn bucket_width(from: Timestamp, to: Timestamp, buckets: usize) -> i64 {
    let span = (i128::from(to.as_micros()) - i128::from(from.as_micros())).max(1);
    let buckets = i128::try_from(buckets).unwrap_or(i128::MAX).max(1);
    i64::try_from((span + buckets - 1) / buckets).unwrap_or(i64::MAX)
}

fn bucket(summary: NumberSummary) -> Bucket {
    Bucket {
        start: Timestamp(summary.from),
        end: Timestamp(summary.to),
        min: summary.min,
        max: summary.max,
        avg: summary.sum / summary.count as f64,
        count: summary.count,
        first_time: Timestamp(summary.first.0),
        first: summary.first.1,
        last_time: Timestamp(summary.last.0),
        last: summary.last.1,
    }
}

/// The number a value contributes to bucket figures; `None` for values that have none.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Float(v) => Some(*v),
        Value::Int(v) => Some(*v as f64),
        Value::Bool(_) | Value::String(_) => None,
    }
}
