//! Processing intervals (Part 13 §5.4.2.2, Part 11 §6.5.4): from StartTime towards EndTime in
//! steps of ProcessingInterval, the last one cut short at EndTime; a ProcessingInterval of 0
//! (or longer than the range) makes the whole range one interval. With EndTime before
//! StartTime the intervals run backwards from StartTime, each including its later bound and
//! excluding its earlier one, and results come newest first. Every result carries the time its
//! interval starts from (the later bound, backwards).

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// The intervals of one processed read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IntervalPlan {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Microseconds; 0 = one interval over the whole range.
    pub interval: i64,
}

/// One interval, as the half-open forward range `[from, to)` of stored times it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub from: i64,
    pub to: i64,
    /// The result's timestamp: `from` forwards, the later bound backwards.
    pub stamp: Timestamp,
    /// Shorter than the processing interval (the last one, cut at EndTime).
    pub short: bool,
}

/// The intervals of one page, oldest first whatever the plan's direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalPage {
    pub intervals: Vec<Interval>,
    /// Results are returned newest first.
    pub reverse: bool,
    /// The stored times the page covers: `[low, high)`.
    pub low: Timestamp,
    pub high: Timestamp,
    /// The first interval of the next page, when intervals remain.
    pub next: Option<u64>,
}

impl IntervalPlan {
    pub fn is_reverse(&self) -> bool {
        self.end < self.start
    }

    /// Number of intervals (0 for an empty range).
    pub fn count(&self) -> u64 {
        let span = self.span();
        if span == 0 {
            return 0;
        }
        if self.interval <= 0 || i128::from(self.interval) >= span {
            return 1;
        }
        let width = i128::from(self.interval);
        u64::try_from((span + width - 1) / width).unwrap_or(u64::MAX)
    }

    fn span(&self) -> i128 {
        (i128::from(self.end.as_micros()) - i128::from(self.start.as_micros())).abs()
    }

    /// Intervals `first..first + max` (fewer at the end of the range); `None` past the end.
    pub fn page(&self, first: u64, max: usize) -> Option<IntervalPage> {
        let count = self.count();
        if first >= count || max == 0 {
            return None;
        }
        let last = count.min(first.saturating_add(max as u64));
        let span = self.span();
        let width = if self.interval <= 0 {
            span
        } else {
            i128::from(self.interval).min(span)
        };
        let start = i128::from(self.start.as_micros());
        let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
        let mut intervals: Vec<Interval> = (first..last)
            .map(|k| {
                let near = i128::from(k) * width;
                let far = (near + width).min(span);
                let short = far - near < width;
                if self.is_reverse() {
                    // (start - far, start - near], as the forward [.. + 1, .. + 1).
                    Interval {
                        from: clamp(start - far + 1),
                        to: clamp(start - near + 1),
                        stamp: Timestamp(clamp(start - near)),
                        short,
                    }
                } else {
                    Interval {
                        from: clamp(start + near),
                        to: clamp(start + far),
                        stamp: Timestamp(clamp(start + near)),
                        short,
                    }
                }
            })
            .collect();
        if self.is_reverse() {
            intervals.reverse();
        }
        let low = Timestamp(intervals.first()?.from);
        let high = Timestamp(intervals.last()?.to);
        Some(IntervalPage {
            intervals,
            reverse: self.is_reverse(),
            low,
            high,
            next: (last < count).then_some(last),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(start: i64, end: i64, interval: i64) -> IntervalPlan {
        IntervalPlan {
            start: Timestamp(start),
            end: Timestamp(end),
            interval,
        }
    }

    fn bounds(page: &IntervalPage) -> Vec<(i64, i64, i64, bool)> {
        page.intervals
            .iter()
            .map(|i| (i.from, i.to, i.stamp.0, i.short))
            .collect()
    }

    #[test]
    fn forward_intervals_step_from_the_start_and_the_last_is_cut_short() {
        let p = plan(0, 25, 10);
        assert_eq!(p.count(), 3);
        let page = p.page(0, 10).unwrap();
        assert_eq!(
            bounds(&page),
            vec![(0, 10, 0, false), (10, 20, 10, false), (20, 25, 20, true)]
        );
        assert_eq!((page.low.0, page.high.0, page.next), (0, 25, None));
        assert!(!page.reverse);
    }

    #[test]
    fn backward_intervals_step_from_the_start_and_include_their_later_bound() {
        let p = plan(25, 0, 10);
        assert_eq!(p.count(), 3);
        let page = p.page(0, 10).unwrap();
        // (15, 25], (5, 15], (0, 5]: oldest first here, returned newest first.
        assert_eq!(
            bounds(&page),
            vec![(1, 6, 5, true), (6, 16, 15, false), (16, 26, 25, false)]
        );
        assert!(page.reverse);
    }

    #[test]
    fn a_zero_or_long_interval_is_one_interval_and_pages_resume_where_they_stopped() {
        assert_eq!(plan(0, 100, 0).count(), 1);
        assert_eq!(plan(0, 100, 1_000).count(), 1);
        assert!(!plan(0, 100, 0).page(0, 5).unwrap().intervals[0].short);
        assert_eq!(plan(7, 7, 10).count(), 0);
        assert!(plan(7, 7, 10).page(0, 5).is_none());
        let p = plan(0, 100, 10);
        let first = p.page(0, 4).unwrap();
        assert_eq!((first.intervals.len(), first.next), (4, Some(4)));
        let last = p.page(8, 4).unwrap();
        assert_eq!((last.intervals.len(), last.next), (2, None));
        assert_eq!((last.low.0, last.high.0), (80, 100));
        assert!(p.page(10, 4).is_none());
    }

    #[test]
    fn extreme_ranges_never_overflow() {
        let p = plan(i64::MIN / 2, i64::MAX / 2, 1);
        assert_eq!(p.count(), i64::MAX as u64);
        let page = p.page(u64::MAX - 5, 3);
        assert!(page.is_none() || page.unwrap().intervals.len() <= 3);
    }
}
