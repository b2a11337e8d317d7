//! opcgw patch: one log line for a burst of identical events, then one summary per interval.
//!
//! A peer can make the accept loop refuse (or fail) thousands of times a second; logging each
//! occurrence filled disks with megabytes of identical lines in seconds.

use std::time::{Duration, Instant};

/// How often a burst is summarised.
pub(crate) const REPEAT_SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Occurrence {
    /// The first of a burst: log it in full.
    Log,
    /// A repeat within the interval: counted, reported by the next summary.
    Suppressed,
}

/// Rate limiter for one kind of log line.
#[derive(Debug)]
pub(crate) struct RepeatLimiter {
    interval: Duration,
    /// Start of the current interval; `None` when no burst is in progress.
    window_start: Option<Instant>,
    suppressed: u64,
}

impl RepeatLimiter {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            window_start: None,
            suppressed: 0,
        }
    }

    pub(crate) fn occurred(&mut self, now: Instant) -> Occurrence {
        match self.window_start {
            None => {
                self.window_start = Some(now);
                Occurrence::Log
            }
            Some(_) => {
                self.suppressed += 1;
                Occurrence::Suppressed
            }
        }
    }

    /// The number of repeats suppressed in an interval that has ended (to be logged as one
    /// summary line). An interval without repeats ends the burst: the next occurrence is
    /// logged in full again.
    pub(crate) fn summary_due(&mut self, now: Instant) -> Option<u64> {
        let start = self.window_start?;
        if now.saturating_duration_since(start) < self.interval {
            return None;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        if suppressed == 0 {
            self.window_start = None;
            None
        } else {
            self.window_start = Some(now);
            Some(suppressed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_gives_one_line_then_one_summary_per_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut limiter = RepeatLimiter::new(Duration::from_secs(10));
        assert_eq!(limiter.occurred(t0), Occurrence::Log);
        for _ in 0..1000 {
            assert_eq!(limiter.occurred(t0 + s), Occurrence::Suppressed);
        }
        assert_eq!(limiter.summary_due(t0 + 9 * s), None);
        assert_eq!(limiter.summary_due(t0 + 10 * s), Some(1000));
        assert_eq!(limiter.occurred(t0 + 11 * s), Occurrence::Suppressed);
        assert_eq!(limiter.summary_due(t0 + 20 * s), Some(1));
        // A quiet interval ends the burst; the next occurrence is logged in full.
        assert_eq!(limiter.summary_due(t0 + 30 * s), None);
        assert_eq!(limiter.occurred(t0 + 31 * s), Occurrence::Log);
    }
}
