//! OPC UA Part 13 aggregates computed in storage: equal processing intervals laid over a time
//! range, and per interval the figures a SCADA trend or report asks for (averages, extremes,
//! counts, durations), each with the Part 13 status and its aggregate bits.
//!
//! One pass per series and request: the rows of the range stream through [`engine`] once,
//! whatever the number of aggregates asked of the series, with memory bounded by the number of
//! intervals of the page, not by the number of rows. The engine works on `(time, value,
//! status)` points so Part 13's example data sets (with Bad and Uncertain values) are its unit
//! tests; the rows stored here are all Good device values.
//!
//! Files: `interval` (laying out the processing intervals, paging), `engine` (the calculation),
//! this one (the query and its answer, the read over the store).

mod engine;
mod interval;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use super::history::{HistoryRow, ReadView};
use super::{StorageError, Store};
use crate::model::{MetricType, Timestamp, Value};

pub(super) use engine::{aggregate_points, summarize_points, NumberSummary};
pub use engine::{RawPoint, RawQuality};
pub use interval::IntervalPlan;

/// Most intervals one page of a processed read may hold.
pub const MAX_PROCESSED_PAGE: usize = 100_000;

/// The Part 13 aggregates this gateway computes. Others are neither advertised nor accepted
/// (`BadAggregateNotSupported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Interpolative,
    Average,
    TimeAverage,
    Total,
    Minimum,
    Maximum,
    MinimumActualTime,
    MaximumActualTime,
    Range,
    Count,
    Start,
    End,
    Delta,
    DurationGood,
    DurationBad,
    PercentGood,
}

impl Aggregate {
    pub const ALL: [Aggregate; 16] = [
        Self::Interpolative,
        Self::Average,
        Self::TimeAverage,
        Self::Total,
        Self::Minimum,
        Self::Maximum,
        Self::MinimumActualTime,
        Self::MaximumActualTime,
        Self::Range,
        Self::Count,
        Self::Start,
        Self::End,
        Self::Delta,
        Self::DurationGood,
        Self::DurationBad,
        Self::PercentGood,
    ];

    /// Part 13's name (the browse name of its AggregateFunction object).
    pub fn name(self) -> &'static str {
        match self {
            Self::Interpolative => "Interpolative",
            Self::Average => "Average",
            Self::TimeAverage => "TimeAverage",
            Self::Total => "Total",
            Self::Minimum => "Minimum",
            Self::Maximum => "Maximum",
            Self::MinimumActualTime => "MinimumActualTime",
            Self::MaximumActualTime => "MaximumActualTime",
            Self::Range => "Range",
            Self::Count => "Count",
            Self::Start => "Start",
            Self::End => "End",
            Self::Delta => "Delta",
            Self::DurationGood => "DurationGood",
            Self::DurationBad => "DurationBad",
            Self::PercentGood => "PercentGood",
        }
    }

    /// The aggregate named `name`, in Part 13's spelling or snake case, any letter case
    /// ("TimeAverage", "time_average", "timeaverage").
    pub fn from_name(name: &str) -> Option<Self> {
        let wanted: String = name
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        Self::ALL
            .into_iter()
            .find(|a| a.name().to_ascii_lowercase() == wanted)
    }

    /// Whether the aggregate can be computed on a metric of `metric_type`: those that need
    /// numbers on Int and Float only (no average of a String), the others on any type.
    pub fn applies_to(self, metric_type: MetricType) -> bool {
        !self.needs_numbers() || matches!(metric_type, MetricType::Float | MetricType::Int)
    }

    /// Whether the aggregate needs numbers (Int or Float values): the others (counts, first
    /// and last values, durations, interpolation) work on any type.
    pub fn needs_numbers(self) -> bool {
        !matches!(
            self,
            Self::Interpolative
                | Self::Count
                | Self::Start
                | Self::End
                | Self::DurationGood
                | Self::DurationBad
                | Self::PercentGood
        )
    }
}

/// How values between two stored points are found (Part 13 §3.1.8-3.1.10): on a straight
/// line (analog measurements) or held until the next point (counters, states, text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    Sloped,
    Stepped,
}

impl Interpolation {
    /// A metric's: Float on a slope, Int, Bool and String stepped (docs/opcua.md).
    pub fn of(metric_type: MetricType) -> Self {
        match metric_type {
            MetricType::Float => Self::Sloped,
            MetricType::Int | MetricType::Bool | MetricType::String => Self::Stepped,
        }
    }
}

/// Part 13 §4.2.1.2 AggregateConfiguration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AggregateConfig {
    /// Uncertain values count as Bad (true) or as Good (false).
    pub treat_uncertain_as_bad: bool,
    /// An interval with at least this percentage of Bad data is Bad (0..=100).
    pub percent_data_bad: u8,
    /// An interval with at least this percentage of Good data is Good (0..=100).
    pub percent_data_good: u8,
    /// Beyond the last value, extrapolate on the slope of the last two (true) or hold the
    /// last value (false).
    pub use_sloped_extrapolation: bool,
}

impl Default for AggregateConfig {
    /// Part 13's defaults.
    fn default() -> Self {
        Self {
            treat_uncertain_as_bad: true,
            percent_data_bad: 100,
            percent_data_good: 100,
            use_sloped_extrapolation: false,
        }
    }
}

impl AggregateConfig {
    /// Part 13 §4.2.1.2: PercentDataGood and PercentDataBad are percentages, and
    /// PercentDataGood >= 100 - PercentDataBad (else one interval could be both).
    pub fn is_valid(&self) -> bool {
        self.percent_data_bad <= 100
            && self.percent_data_good <= 100
            && u16::from(self.percent_data_good) + u16::from(self.percent_data_bad) >= 100
    }
}

/// The quality of one aggregate result (Part 13 §5.3.3, §5.4.3.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultQuality {
    Good,
    /// Good, but the interval holds no data (Count, Duration*, PercentGood of an empty
    /// interval have a value of 0 that means exactly that).
    GoodNoData,
    /// Part of the interval's data is Bad or missing (below PercentDataGood).
    UncertainDataSubNormal,
    /// A stored value passed on as it is (Start, End, Minimum, ...): its own quality.
    Uncertain,
    /// At least PercentDataBad of the interval's data is Bad.
    Bad,
    /// No data to compute from.
    BadNoData,
}

/// Part 13 §5.3.2 HistorianBits: how a result came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A stored value passed on as it is.
    Raw,
    /// Computed from stored values.
    Calculated,
    /// Interpolated between stored values.
    Interpolated,
}

/// One aggregate result: the value of one interval (or its absence) with its status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateValue {
    pub time: Timestamp,
    pub value: Option<Value>,
    pub quality: ResultQuality,
    pub origin: Origin,
    /// The interval is not complete: cut short at EndTime, or holding the first or the
    /// newest point of the data, so a later read may differ (Part 13 §5.3.3.2 Partial).
    pub partial: bool,
    /// Several stored values share the extreme (Minimum, Maximum and their ActualTime forms).
    pub multi_value: bool,
}

/// Every row this gateway stores is a Good device value.
impl From<HistoryRow> for RawPoint {
    fn from(row: HistoryRow) -> Self {
        Self {
            time: row.time,
            value: Some(row.value),
            quality: RawQuality::Good,
        }
    }
}

/// A processed read of one series: `aggregates` over the intervals of `plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessedQuery {
    pub device_id: String,
    pub metric: String,
    pub plan: IntervalPlan,
    /// First interval of this page (0, or where the previous page stopped).
    pub first_interval: u64,
    /// Intervals in this page, 1..=[`MAX_PROCESSED_PAGE`].
    pub max_intervals: usize,
    pub aggregates: Vec<Aggregate>,
    pub config: AggregateConfig,
    pub interpolation: Interpolation,
}

/// The answer: per aggregate (in the query's order) one value per interval, in the plan's
/// time order, and where the next page starts when intervals remain.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ProcessedPage {
    pub values: Vec<Vec<AggregateValue>>,
    pub next_interval: Option<u64>,
}

impl Store {
    /// Aggregates of one series over one page of intervals (see the module doc). A series
    /// never stored answers as a series without data (Bad_NoData intervals).
    pub fn history_processed(&self, query: &ProcessedQuery) -> Result<ProcessedPage, StorageError> {
        self.read(|db| self.view(db).history_processed(query))
    }
}

impl ReadView<'_> {
    /// See [`Store::history_processed`].
    pub(in crate::storage) fn history_processed(
        &self,
        query: &ProcessedQuery,
    ) -> Result<ProcessedPage, StorageError> {
        const ACTION: &str = "read processed history";
        if query.max_intervals == 0 || query.max_intervals > MAX_PROCESSED_PAGE {
            return Err(StorageError::invalid(
                self.path,
                format!(
                    "max_intervals {} is outside 1..={MAX_PROCESSED_PAGE}",
                    query.max_intervals
                ),
            ));
        }
        if query.aggregates.is_empty() {
            return Err(StorageError::invalid(self.path, "no aggregate asked"));
        }
        if !query.config.is_valid() {
            return Err(StorageError::invalid(
                self.path,
                "PercentDataGood and PercentDataBad must be percentages adding up to at least 100",
            ));
        }
        let Some(page) = query.plan.page(query.first_interval, query.max_intervals) else {
            return Ok(ProcessedPage {
                values: vec![Vec::new(); query.aggregates.len()],
                next_interval: None,
            });
        };
        let compute = |points: &mut dyn Iterator<Item = Result<RawPoint, StorageError>>| {
            aggregate_points(
                &page,
                &query.aggregates,
                &query.config,
                query.interpolation,
                points,
            )
        };
        let Some(series) = self.series_id(&query.device_id, &query.metric)? else {
            return Ok(ProcessedPage {
                values: compute(&mut std::iter::empty())?,
                next_interval: page.next,
            });
        };
        let (low, high) = (page.low.as_micros(), page.high.as_micros());
        // Around the page: the two newest points before it (a bound, or a sloped
        // extrapolation) and the oldest after it (a bound; every stored point is usable).
        let mut before = self.scan_series(ACTION, series, i64::MIN, low, true, |rows| {
            rows.take(2).collect::<Result<Vec<_>, _>>()
        })?;
        before.reverse();
        let after = self.scan_series(ACTION, series, high, i64::MAX, false, |rows| {
            rows.next().transpose()
        })?;
        let values = self.scan_series(ACTION, series, low, high, false, |rows| {
            let mut points = before
                .into_iter()
                .map(Ok)
                .chain(rows)
                .chain(after.map(Ok))
                .map(|row| row.map(RawPoint::from));
            compute(&mut points)
        })?;
        Ok(ProcessedPage {
            values,
            next_interval: page.next,
        })
    }
}
