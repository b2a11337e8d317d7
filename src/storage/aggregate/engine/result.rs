//! Each aggregate's result from the figures of one interval (Part 13 §5.4.3.x; the rules are
//! listed in the parent module's doc).

use super::{Figures, RawQuality};
use crate::model::{Timestamp, Value};
use crate::storage::aggregate::{
    Aggregate, AggregateConfig, AggregateValue, Origin, ResultQuality,
};

impl Figures {
    /// The interval lies wholly before the first point or after the last one.
    fn outside_data(&self) -> bool {
        self.points == 0 && (!self.started_before || !self.more_after)
    }

    /// §5.3.3.2, see the module doc.
    fn partial(&self) -> bool {
        let interval = self.interval;
        let data_starts_inside = !self.started_before
            && self
                .first
                .as_ref()
                .is_some_and(|p| p.micros() > interval.from);
        let data_ends_inside = self.points > 0 && !self.more_after;
        data_starts_inside || data_ends_inside || interval.short
    }

    pub(super) fn result(&self, aggregate: Aggregate, config: &AggregateConfig) -> AggregateValue {
        let interval = self.interval;
        let no_data = AggregateValue {
            time: interval.stamp,
            value: None,
            quality: ResultQuality::BadNoData,
            origin: Origin::Calculated,
            partial: false,
            multi_value: false,
        };
        let calculated = |value: Value, quality: ResultQuality| AggregateValue {
            time: interval.stamp,
            value: Some(value),
            quality,
            origin: Origin::Calculated,
            partial: self.partial(),
            multi_value: false,
        };
        let custom = if self.any_bad_for_status {
            ResultQuality::UncertainDataSubNormal
        } else {
            ResultQuality::Good
        };
        match aggregate {
            Aggregate::Interpolative => match &self.start_own {
                None => no_data,
                Some(bound) => {
                    let (quality, origin) = match bound.raw {
                        Some(RawQuality::Good) => (ResultQuality::Good, Origin::Raw),
                        Some(_) => (ResultQuality::Uncertain, Origin::Raw),
                        None if bound.uncertain => {
                            (ResultQuality::UncertainDataSubNormal, Origin::Interpolated)
                        }
                        None => (ResultQuality::Good, Origin::Interpolated),
                    };
                    AggregateValue {
                        time: interval.stamp,
                        value: Some(bound.value.clone()),
                        quality,
                        origin,
                        partial: false,
                        multi_value: false,
                    }
                }
            },
            Aggregate::Average => {
                if self.numbers == 0 {
                    return no_data;
                }
                let status = self.counted_status(config);
                let mut value = calculated(Value::Float(self.sum / self.numbers as f64), status);
                value.partial = false;
                bad_has_no_value(value)
            }
            Aggregate::TimeAverage | Aggregate::Total => {
                // Before the first point, or starting after the last: nothing to weigh.
                let Some(from) = self.covered_from.filter(|_| self.has_weighted) else {
                    return no_data;
                };
                if self.outside_data() {
                    return no_data;
                }
                let quality = if self.weighted_uncertain {
                    ResultQuality::UncertainDataSubNormal
                } else {
                    ResultQuality::Good
                };
                let seconds = (interval.to - from) as f64 / 1e6;
                let value = match aggregate {
                    Aggregate::Total => self.area,
                    _ if seconds > 0.0 => self.area / seconds,
                    _ => return no_data,
                };
                calculated(Value::Float(value), quality)
            }
            Aggregate::Minimum
            | Aggregate::Maximum
            | Aggregate::MinimumActualTime
            | Aggregate::MaximumActualTime => {
                let lowest = matches!(aggregate, Aggregate::Minimum | Aggregate::MinimumActualTime);
                let found = if lowest { &self.min } else { &self.max };
                let Some((value, _, time, repeated)) = found else {
                    return no_data;
                };
                let actual_time = matches!(
                    aggregate,
                    Aggregate::MinimumActualTime | Aggregate::MaximumActualTime
                );
                let mut result = calculated(value.clone(), custom);
                result.multi_value = *repeated;
                if actual_time {
                    result.time = Timestamp(*time);
                }
                // Raw: the stored value as it is, stamped with its own time (ActualTime) or
                // sitting on the interval's start (§5.4.3.10-13).
                if custom == ResultQuality::Good && (actual_time || *time == interval.from) {
                    result.origin = Origin::Raw;
                }
                result
            }
            Aggregate::Range => match (&self.min, &self.max) {
                (Some((low, ..)), Some((high, ..))) => calculated(difference(high, low), custom),
                _ => no_data,
            },
            Aggregate::Count => {
                if self.outside_data() {
                    return no_data;
                }
                let status = self.counted_status(config);
                bad_has_no_value(calculated(Value::Int(self.good as i64), status))
            }
            Aggregate::Start | Aggregate::End => {
                let point = if aggregate == Aggregate::Start {
                    &self.first
                } else {
                    &self.last
                };
                let Some(point) = point else {
                    return no_data;
                };
                let quality = match point.quality {
                    RawQuality::Good => ResultQuality::Good,
                    RawQuality::Uncertain => ResultQuality::Uncertain,
                    RawQuality::Bad => ResultQuality::Bad,
                };
                AggregateValue {
                    time: point.time,
                    value: (quality != ResultQuality::Bad)
                        .then(|| point.value.clone())
                        .flatten(),
                    quality,
                    origin: Origin::Raw,
                    partial: self.partial(),
                    multi_value: false,
                }
            }
            Aggregate::Delta => match (&self.first_good, &self.last_good) {
                (Some(first), Some(last)) => {
                    let (Some(v0), Some(v1)) = (&first.value, &last.value) else {
                        return no_data;
                    };
                    let quality =
                        if self.unusable_before_first_good || self.unusable_after_last_good {
                            ResultQuality::UncertainDataSubNormal
                        } else {
                            ResultQuality::Good
                        };
                    calculated(difference(v1, v0), quality)
                }
                _ => no_data,
            },
            Aggregate::DurationGood | Aggregate::DurationBad | Aggregate::PercentGood => {
                if self.outside_data() {
                    return no_data;
                }
                let value = match aggregate {
                    Aggregate::DurationGood => self.duration_good as f64 / 1e3,
                    Aggregate::DurationBad => self.duration_bad as f64 / 1e3,
                    _ => {
                        let width = (interval.to - interval.from).max(1) as f64;
                        self.duration_good as f64 / width * 100.0
                    }
                };
                calculated(Value::Float(value), ResultQuality::Good)
            }
        }
    }

    /// §5.4.3.2.1 by counting values (Average, Count).
    fn counted_status(&self, config: &AggregateConfig) -> ResultQuality {
        if self.points == 0 {
            return ResultQuality::Good;
        }
        let share = |n: u64| n * 100;
        if share(self.good) >= u64::from(config.percent_data_good) * self.points {
            ResultQuality::Good
        } else if share(self.bad) >= u64::from(config.percent_data_bad) * self.points {
            ResultQuality::Bad
        } else {
            ResultQuality::UncertainDataSubNormal
        }
    }
}

/// A Bad result carries no value (§5.3.3).
fn bad_has_no_value(mut value: AggregateValue) -> AggregateValue {
    if value.quality == ResultQuality::Bad {
        value.value = None;
    }
    value
}

/// `high - low` in the values' own type (Int saturating), Float otherwise.
fn difference(high: &Value, low: &Value) -> Value {
    match (high, low) {
        (Value::Int(h), Value::Int(l)) => Value::Int(h.saturating_sub(*l)),
        _ => {
            let number = |v: &Value| match v {
                Value::Float(f) => *f,
                Value::Int(i) => *i as f64,
                _ => f64::NAN,
            };
            Value::Float(number(high) - number(low))
        }
    }
}
