//! The Part 13 calculation: points stream through once, oldest first; each interval is folded
//! as its points go by, with a small look-ahead for the bounding value after it. Memory is
//! bounded by the intervals of the page (and a run of consecutive unusable points in the
//! look-ahead), never by the number of points.
//!
//! Rules (OPC 10000-13 v1.05; where the text and Annex A disagree, Annex A and the OPC
//! Foundation's reference calculator are followed and the choice is named here):
//! - A point is *usable* when it is Good, or Uncertain with TreatUncertainAsBad false (§4.2.1.2).
//! - Bounding values (§3.1.8, interpolated bounds): the usable point at the instant, else
//!   sloped between the usable points around it or stepped from the one before; Uncertain_
//!   DataSubNormal when an unusable point was skipped or an Uncertain one used; beyond the last
//!   usable point extrapolated (stepped, or sloped with UseSlopedExtrapolation) and Uncertain;
//!   before the first one, no bound.
//! - Value-counting status (Average, Count; §5.4.3.2.1): over the interval's points, Good when
//!   the Good share reaches PercentDataGood, else Bad when the Bad share (Uncertain included
//!   with TreatUncertainAsBad) reaches PercentDataBad, else Uncertain_DataSubNormal; the Good
//!   test first (Part 13 v1.05 resolving the tie §4.2.1.2 describes).
//! - TimeAverage divides the area under the sloped line by the time the data covers (Annex A:
//!   an interval whose data starts late is averaged over the covered part, Partial); Total is
//!   that area, in value x seconds.
//! - DurationGood / DurationBad follow §5.4.3.31 literally: each point starts a region of its
//!   quality, the first region takes the quality of the point at or before the interval's
//!   start (Bad when there is none), and the last region runs to the interval's end.
//! - Partial (§5.3.3.2): set on an interval that holds the first point of the data after its
//!   start, holds the last point of the data, or is cut short at EndTime — never on Average
//!   or Interpolative (their tables say "Not Set"), never on a Bad_NoData result.
//! - Before the first and after the last point of the data an interval is Bad_NoData; in a gap
//!   between points Count is 0 and the durations count the held quality.

mod result;

use std::collections::VecDeque;

use serde::Serialize;

use super::interval::{Interval, IntervalPage};
use super::{Aggregate, AggregateConfig, AggregateValue, Interpolation};
use crate::model::{Timestamp, Value};

/// The quality of a stored point. Every row this gateway stores is Good; the others exist for
/// Part 13's example data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RawQuality {
    Good,
    Uncertain,
    Bad,
}

/// One point of a series: its value (none for a Bad point without one) and quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawPoint {
    pub time: Timestamp,
    pub value: Option<Value>,
    pub quality: RawQuality,
}

impl RawPoint {
    fn number(&self) -> Option<f64> {
        match self.value.as_ref()? {
            Value::Float(v) if v.is_finite() => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    fn micros(&self) -> i64 {
        self.time.as_micros()
    }
}

/// Aggregates of `points` (oldest first: a few before the page for the bounds, the page's own,
/// then at least the first one after it) over the intervals of `page`; one result vector per
/// aggregate, in the order of the page's intervals (reversed for a backwards read).
pub(in crate::storage) fn aggregate_points<E>(
    page: &IntervalPage,
    aggregates: &[Aggregate],
    config: &AggregateConfig,
    interpolation: Interpolation,
    points: &mut dyn Iterator<Item = Result<RawPoint, E>>,
) -> Result<Vec<Vec<AggregateValue>>, E> {
    let mut out: Vec<Vec<AggregateValue>> = aggregates
        .iter()
        .map(|_| Vec::with_capacity(page.intervals.len()))
        .collect();
    fold_intervals(page, config, interpolation, points, |figures| {
        for (aggregate, results) in aggregates.iter().zip(out.iter_mut()) {
            results.push(figures.result(*aggregate, config));
        }
    })?;
    if page.reverse {
        for results in &mut out {
            results.reverse();
        }
    }
    Ok(out)
}

/// The figures of the Good, finite numbers of one interval: what a chart bucket shows
/// (`storage::downsample`), from the same fold as the aggregates.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::storage) struct NumberSummary {
    pub from: i64,
    pub to: i64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub first: (i64, f64),
    pub last: (i64, f64),
}

/// Per interval of `page` (oldest first) its [`NumberSummary`]; `None` for an interval without
/// a Good number.
pub(in crate::storage) fn summarize_points<E>(
    page: &IntervalPage,
    points: &mut dyn Iterator<Item = Result<RawPoint, E>>,
) -> Result<Vec<Option<NumberSummary>>, E> {
    let mut out = Vec::with_capacity(page.intervals.len());
    let config = AggregateConfig::default();
    fold_intervals(page, &config, Interpolation::Stepped, points, |f| {
        out.push(match (&f.min, &f.max, f.first_number, f.last_number) {
            (Some(min), Some(max), Some(first), Some(last)) => Some(NumberSummary {
                from: f.interval.from,
                to: f.interval.to,
                count: f.numbers,
                min: min.1,
                max: max.1,
                sum: f.sum,
                first,
                last,
            }),
            _ => None,
        });
    })?;
    Ok(out)
}

/// Folds `points` into each interval of `page` in time order, handing each interval's figures
/// to `each`.
fn fold_intervals<E>(
    page: &IntervalPage,
    config: &AggregateConfig,
    interpolation: Interpolation,
    points: &mut dyn Iterator<Item = Result<RawPoint, E>>,
    mut each: impl FnMut(&Figures),
) -> Result<(), E> {
    let mut stream = Stream {
        points,
        ahead: VecDeque::new(),
        config: *config,
    };
    let mut context = Context::default();
    for interval in &page.intervals {
        while let Some(point) = stream.pop_before(interval.from)? {
            context.consume(point, config);
        }
        let fold = IntervalFold::open(interval, &context, &mut stream, interpolation)?;
        let fold = fold.fill(&mut context, &mut stream)?;
        each(&fold.close(&context, &mut stream)?);
    }
    Ok(())
}

/// The points not yet folded, with the look-ahead already read.
struct Stream<'a, E> {
    points: &'a mut dyn Iterator<Item = Result<RawPoint, E>>,
    ahead: VecDeque<RawPoint>,
    config: AggregateConfig,
}

impl<E> Stream<'_, E> {
    /// Makes the look-ahead hold at least `n` points, when the stream has them.
    fn fill(&mut self, n: usize) -> Result<(), E> {
        while self.ahead.len() < n {
            match self.points.next() {
                Some(point) => self.ahead.push_back(point?),
                None => break,
            }
        }
        Ok(())
    }

    /// The next point, if it is earlier than `time`.
    fn pop_before(&mut self, time: i64) -> Result<Option<RawPoint>, E> {
        self.fill(1)?;
        if self.ahead.front().is_some_and(|p| p.micros() < time) {
            return Ok(self.ahead.pop_front());
        }
        Ok(None)
    }

    fn has_more(&mut self) -> Result<bool, E> {
        self.fill(1)?;
        Ok(!self.ahead.is_empty())
    }

    /// The first point at or after the look-ahead's start that `accept` takes, and whether
    /// points were passed over to reach it (or to reach the end without finding one).
    fn first_ahead(&mut self, accept: impl Fn(&RawPoint) -> bool) -> Result<Ahead, E> {
        let mut index = 0;
        loop {
            self.fill(index + 1)?;
            let Some(point) = self.ahead.get(index) else {
                return Ok(Ahead {
                    found: None,
                    skipped: index > 0,
                });
            };
            if accept(point) {
                return Ok(Ahead {
                    found: Some(point.clone()),
                    skipped: index > 0,
                });
            }
            index += 1;
        }
    }
}

struct Ahead {
    found: Option<RawPoint>,
    skipped: bool,
}

fn usable(point: &RawPoint, config: &AggregateConfig) -> bool {
    match point.quality {
        RawQuality::Good => point.value.is_some(),
        RawQuality::Uncertain => !config.treat_uncertain_as_bad && point.value.is_some(),
        RawQuality::Bad => false,
    }
}

/// Counts as Bad in a status calculation.
fn bad_for_status(point: &RawPoint, config: &AggregateConfig) -> bool {
    match point.quality {
        RawQuality::Good => false,
        RawQuality::Uncertain => config.treat_uncertain_as_bad,
        RawQuality::Bad => true,
    }
}

/// What the points already folded tell the next interval.
#[derive(Debug, Clone, Default)]
struct Context {
    /// The newest point folded.
    last: Option<RawPoint>,
    /// The two newest usable points (newest last), for interpolation and extrapolation.
    usable: [Option<RawPoint>; 2],
    /// A point that is not usable was folded after the newest usable one.
    skipped_since_usable: bool,
}

impl Context {
    fn consume(&mut self, point: RawPoint, config: &AggregateConfig) {
        if usable(&point, config) {
            self.usable = [self.usable[1].take(), Some(point.clone())];
            self.skipped_since_usable = false;
        } else {
            self.skipped_since_usable = true;
        }
        self.last = Some(point);
    }

    fn started(&self) -> bool {
        self.last.is_some()
    }
}

/// A bounding value (§3.1.8).
#[derive(Debug, Clone)]
struct Bound {
    value: Value,
    /// Good, or Uncertain_DataSubNormal (the raw point's own Uncertain for a raw bound).
    uncertain: bool,
    /// The stored point at the instant.
    raw: Option<RawQuality>,
}

impl Bound {
    fn number(&self) -> Option<f64> {
        match &self.value {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

/// The bounding value at `time`, from the points before it (`context`, all earlier than
/// `time`) and the look-ahead; `None` before the first usable point. Sloped needs numbers:
/// points without one are passed over as unusable.
fn bound<E>(
    time: i64,
    mode: Interpolation,
    context: &Context,
    stream: &mut Stream<'_, E>,
) -> Result<Option<Bound>, E> {
    let config = stream.config;
    let takes = |p: &RawPoint| {
        usable(p, &config) && (mode == Interpolation::Stepped || p.number().is_some())
    };
    let next = stream.first_ahead(|p| p.micros() >= time && takes(p))?;
    // Points in the look-ahead before `time` were folded already, so `skipped` here means
    // unusable points at or after `time` before the next usable one.
    if let Some(at) = next.found.as_ref().filter(|p| p.micros() == time) {
        if !next.skipped {
            return Ok(Some(Bound {
                value: at.value.clone().unwrap_or(Value::Float(f64::NAN)),
                uncertain: at.quality != RawQuality::Good,
                raw: Some(at.quality),
            }));
        }
    }
    let before = context.usable[1]
        .as_ref()
        .filter(|p| mode == Interpolation::Stepped || p.number().is_some());
    let Some(before) = before else {
        return Ok(None);
    };
    let before_uncertain = before.quality != RawQuality::Good;
    let Some(after) = next.found else {
        // Beyond the last usable point.
        let value = match (config.use_sloped_extrapolation, &context.usable[0]) {
            (true, Some(older)) if mode == Interpolation::Sloped => {
                line(older, before, time).unwrap_or_else(|| before_value(before))
            }
            _ => before_value(before),
        };
        return Ok(Some(Bound {
            value,
            uncertain: true,
            raw: None,
        }));
    };
    // Stepped holds the value before: only what lies between it and `time` matters.
    let skipped = context.skipped_since_usable || (mode == Interpolation::Sloped && next.skipped);
    let value = match mode {
        Interpolation::Stepped => before_value(before),
        Interpolation::Sloped => line(before, &after, time).unwrap_or_else(|| before_value(before)),
    };
    let after_counts = mode == Interpolation::Sloped && after.quality != RawQuality::Good;
    Ok(Some(Bound {
        value,
        uncertain: skipped || before_uncertain || after_counts,
        raw: None,
    }))
}

fn before_value(point: &RawPoint) -> Value {
    point.value.clone().unwrap_or(Value::Float(f64::NAN))
}

/// The value at `time` on the line through `p0` and `p1` (a Float), if both are numbers.
fn line(p0: &RawPoint, p1: &RawPoint, time: i64) -> Option<Value> {
    let (v0, v1) = (p0.number()?, p1.number()?);
    let span = (p1.micros() - p0.micros()) as f64;
    if span == 0.0 {
        return Some(Value::Float(v1));
    }
    let part = (time - p0.micros()) as f64 / span;
    Some(Value::Float(v0 + (v1 - v0) * part))
}

/// One interval being folded.
struct IntervalFold {
    figures: Figures,
    /// The time-weighted walk (TimeAverage, Total): the previous usable (time, number).
    walk_prev: Option<(i64, f64)>,
}

/// What one interval's points add up to.
#[derive(Debug, Clone)]
struct Figures {
    interval: Interval,
    points: u64,
    good: u64,
    bad: u64,
    /// Good, finite numbers: how many, their sum, extremes (value, number, first time,
    /// repeated), the first and the last.
    numbers: u64,
    sum: f64,
    first_number: Option<(i64, f64)>,
    last_number: Option<(i64, f64)>,
    min: Option<(Value, f64, i64, bool)>,
    max: Option<(Value, f64, i64, bool)>,
    first: Option<RawPoint>,
    last: Option<RawPoint>,
    first_good: Option<RawPoint>,
    last_good: Option<RawPoint>,
    unusable_before_first_good: bool,
    unusable_after_last_good: bool,
    any_bad_for_status: bool,
    /// Time-weighted.
    area: f64,
    covered_from: Option<i64>,
    weighted_uncertain: bool,
    /// Durations in microseconds.
    duration_good: i64,
    duration_bad: i64,
    region: Option<(i64, Option<RawQuality>)>,
    /// Data existed before the interval.
    started_before: bool,
    /// Data exists after the interval.
    more_after: bool,
    /// The bound at the start in the series' own interpolation (Interpolative).
    start_own: Option<Bound>,
    /// The time-weighted walk has a start and an end.
    has_weighted: bool,
}

impl Figures {
    fn new(interval: Interval, started_before: bool, start_own: Option<Bound>) -> Self {
        Self {
            interval,
            points: 0,
            good: 0,
            bad: 0,
            numbers: 0,
            sum: 0.0,
            first_number: None,
            last_number: None,
            min: None,
            max: None,
            first: None,
            last: None,
            first_good: None,
            last_good: None,
            unusable_before_first_good: false,
            unusable_after_last_good: false,
            any_bad_for_status: false,
            area: 0.0,
            covered_from: None,
            weighted_uncertain: false,
            duration_good: 0,
            duration_bad: 0,
            region: None,
            started_before,
            more_after: false,
            start_own,
            has_weighted: false,
        }
    }
}

impl IntervalFold {
    fn open<E>(
        interval: &Interval,
        context: &Context,
        stream: &mut Stream<'_, E>,
        interpolation: Interpolation,
    ) -> Result<Self, E> {
        let start_sloped = bound(interval.from, Interpolation::Sloped, context, stream)?;
        let start_own = match interpolation {
            Interpolation::Sloped => start_sloped.clone(),
            Interpolation::Stepped => {
                bound(interval.from, Interpolation::Stepped, context, stream)?
            }
        };
        let held = context.last.as_ref().map(|p| p.quality);
        let mut figures = Figures::new(*interval, context.started(), start_own);
        figures.region = Some((interval.from, held));
        let walk_prev = start_sloped.as_ref().and_then(|b| {
            let number = b.number()?;
            figures.covered_from = Some(interval.from);
            figures.weighted_uncertain |= b.uncertain;
            Some((interval.from, number))
        });
        Ok(Self { figures, walk_prev })
    }

    /// Folds the interval's points (they join `context` as they go).
    fn fill<E>(mut self, context: &mut Context, stream: &mut Stream<'_, E>) -> Result<Self, E> {
        let config = stream.config;
        while let Some(point) = stream.pop_before(self.figures.interval.to)? {
            self.push(&point, &config);
            context.consume(point, &config);
        }
        Ok(self)
    }

    fn push(&mut self, point: &RawPoint, config: &AggregateConfig) {
        let f = &mut self.figures;
        let time = point.micros();
        f.points += 1;
        if f.first.is_none() {
            f.first = Some(point.clone());
        }
        f.last = Some(point.clone());
        let good = point.quality == RawQuality::Good && point.value.is_some();
        if good {
            f.good += 1;
        }
        if bad_for_status(point, config) {
            f.bad += 1;
            f.any_bad_for_status = true;
        }
        if good {
            if f.first_good.is_none() {
                f.first_good = Some(point.clone());
            }
            f.last_good = Some(point.clone());
            f.unusable_after_last_good = false;
            if let (Some(number), Some(value)) = (point.number(), point.value.as_ref()) {
                f.numbers += 1;
                f.sum += number;
                if f.first_number.is_none() {
                    f.first_number = Some((time, number));
                }
                f.last_number = Some((time, number));
                extreme(&mut f.min, value, number, time, |new, old| new < old);
                extreme(&mut f.max, value, number, time, |new, old| new > old);
            }
        } else if f.first_good.is_none() {
            f.unusable_before_first_good = true;
        } else {
            f.unusable_after_last_good = true;
        }
        // Durations: this point starts a region of its quality.
        if let Some((since, quality)) = f.region.take() {
            add_region(f, since, time, quality);
        }
        f.region = Some((time, Some(point.quality)));
        // Time-weighted: a sloped line between usable numbers.
        let walkable = usable(point, config).then(|| point.number()).flatten();
        match walkable {
            Some(number) => {
                match self.walk_prev {
                    Some((t0, v0)) => f.area += trapezoid(t0, v0, time, number),
                    None => f.covered_from = Some(time),
                }
                self.walk_prev = Some((time, number));
                if point.quality != RawQuality::Good {
                    f.weighted_uncertain = true;
                }
            }
            None => f.weighted_uncertain = true,
        }
    }

    fn close<E>(mut self, context: &Context, stream: &mut Stream<'_, E>) -> Result<Figures, E> {
        let end = self.figures.interval.to;
        let more_after = stream.has_more()?;
        let end_bound = bound(end, Interpolation::Sloped, context, stream)?;
        let f = &mut self.figures;
        if let Some((since, quality)) = f.region.take() {
            add_region(f, since, end, quality);
        }
        if let (Some((t0, v0)), Some(bound)) = (self.walk_prev, &end_bound) {
            if let Some(v1) = bound.number() {
                f.area += trapezoid(t0, v0, end, v1);
                f.weighted_uncertain |= bound.uncertain;
            }
        }
        // Data starting inside the interval leaves its beginning uncovered.
        if f.covered_from.is_some_and(|from| from > f.interval.from) {
            f.weighted_uncertain = true;
        }
        f.has_weighted = self.walk_prev.is_some() && end_bound.is_some();
        f.more_after = more_after;
        Ok(self.figures)
    }
}

fn extreme(
    slot: &mut Option<(Value, f64, i64, bool)>,
    value: &Value,
    number: f64,
    time: i64,
    better: impl Fn(f64, f64) -> bool,
) {
    match slot {
        Some((_, old, _, repeated)) if number == *old => *repeated = true,
        Some((_, old, _, _)) if !better(number, *old) => {}
        _ => *slot = Some((value.clone(), number, time, false)),
    }
}

fn add_region(f: &mut Figures, since: i64, until: i64, quality: Option<RawQuality>) {
    let span = until.saturating_sub(since).max(0);
    match quality {
        Some(RawQuality::Good) => f.duration_good += span,
        // No data before the region: Bad (§5.4.3.31).
        Some(RawQuality::Bad) | None => f.duration_bad += span,
        Some(RawQuality::Uncertain) => {}
    }
}

/// Area under the line from (t0, v0) to (t1, v1), in value x seconds.
fn trapezoid(t0: i64, v0: f64, t1: i64, v1: f64) -> f64 {
    (v0 + v1) / 2.0 * ((t1 - t0) as f64 / 1e6)
}
