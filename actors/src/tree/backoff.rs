//! Restart timing: the shared exponential backoff ([`opcgw::backoff::Backoff`]) with jitter,
//! and restart intensity.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use opcgw::backoff::Backoff;
use opcgw::config::SupervisorConfig;

/// The restart limit: more than `max_restarts` within `window` escalates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntensityPolicy {
    pub max_restarts: u32,
    pub window: Duration,
}

/// Recent restarts of one child, for the intensity check.
#[derive(Debug, Default)]
pub struct RestartWindow {
    times: VecDeque<Instant>,
}

impl RestartWindow {
    /// Records a restart at `now`; returns true when the policy is exceeded.
    pub fn record(&mut self, now: Instant, policy: &IntensityPolicy) -> bool {
        self.times.push_back(now);
        while let Some(&oldest) = self.times.front() {
            if now.duration_since(oldest) > policy.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        self.times.len() > policy.max_restarts as usize
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// Everything the supervisor needs to decide about restarts and stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SupervisorPolicy {
    /// How long to wait before restarting a failed child.
    pub backoff: Backoff,
    /// A child that ran this long without failing starts over from `backoff.initial`.
    pub reset_after: Duration,
    pub intensity: IntensityPolicy,
    pub start_timeout: Duration,
    /// The whole tree's stop budget, shared by its children (see [`Self::stop_share`]).
    pub shutdown_timeout: Duration,
}

impl SupervisorPolicy {
    pub fn from_config(config: &SupervisorConfig) -> Self {
        let shutdown = Duration::from_secs(config.shutdown_timeout_seconds);
        Self {
            backoff: Backoff::new(
                Duration::from_millis(config.backoff_initial_ms),
                Duration::from_millis(config.backoff_max_ms),
            )
            .with_jitter(0.2),
            reset_after: Duration::from_secs(config.healthy_reset_seconds),
            intensity: IntensityPolicy {
                max_restarts: config.max_restarts,
                window: Duration::from_secs(config.restart_window_seconds),
            },
            start_timeout: Duration::from_secs(config.start_timeout_seconds),
            shutdown_timeout: shutdown,
        }
    }

    /// How long the next of `children_left` children may take to stop (with the work it
    /// leaves for after its stop) when `remaining` of the budget is left: an equal share of
    /// what is left, so the time a quick child does not use goes to the ones after it.
    pub fn stop_share(remaining: Duration, children_left: usize) -> Duration {
        let children = u32::try_from(children_left).unwrap_or(u32::MAX).max(1);
        remaining / children
    }
}

impl Default for SupervisorPolicy {
    fn default() -> Self {
        Self::from_config(&SupervisorConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use opcgw::backoff::FixedJitter;

    use super::*;

    #[test]
    fn the_default_schedule_doubles_from_250ms_and_caps_at_30s() {
        let policy = SupervisorPolicy::default();
        let schedule: Vec<u64> = (0..10)
            .map(|n| policy.backoff.nominal_delay(n).as_millis() as u64)
            .collect();
        assert_eq!(
            schedule,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(
            policy.backoff.nominal_delay(u32::MAX),
            Duration::from_secs(30)
        );
        assert_eq!(policy.reset_after, Duration::from_secs(60));
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_a_fifth() {
        let policy = SupervisorPolicy::default().backoff;
        assert_eq!(
            policy.delay(3, &mut FixedJitter(0.0)),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(3, &mut FixedJitter(1.0)),
            Duration::from_millis(1_600)
        );
        assert!(policy.delay(20, &mut FixedJitter(0.5)) <= policy.max);
    }

    #[test]
    fn the_children_share_what_is_left_of_the_shutdown_budget() {
        let share = SupervisorPolicy::stop_share;
        assert_eq!(share(Duration::from_secs(30), 6), Duration::from_secs(5));
        // The first child took 1 s of its 5: the next ones share the 29 s left.
        assert_eq!(
            share(Duration::from_secs(29), 5),
            Duration::from_millis(5_800)
        );
        assert_eq!(share(Duration::from_secs(30), 1), Duration::from_secs(30));
        assert_eq!(share(Duration::from_secs(30), 0), Duration::from_secs(30));
        assert_eq!(share(Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn more_than_max_restarts_in_the_window_escalates() {
        let policy = IntensityPolicy {
            max_restarts: 10,
            window: Duration::from_secs(300),
        };
        let start = Instant::now();
        let mut window = RestartWindow::default();
        for i in 0..10 {
            assert!(
                !window.record(start + Duration::from_secs(i * 20), &policy),
                "restart {i}"
            );
        }
        assert!(
            window.record(start + Duration::from_secs(200), &policy),
            "the 11th within 5 min escalates"
        );

        let mut spread = RestartWindow::default();
        for i in 0..30 {
            // One restart a minute never reaches 11 within 5 minutes.
            assert!(
                !spread.record(start + Duration::from_secs(i * 60), &policy),
                "restart {i}"
            );
        }
        assert!(spread.len() <= 6);
    }
}
