//! The health of the connection to ChirpStack, as a state machine with a retry schedule.
//!
//! "Connect and survive": an unreachable or refusing server is a state, not an error path.
//! Each state change is reported once (the caller logs transitions, not attempts), and the
//! schedule keeps recovery attempts bounded: after a failed cycle, `retry` attempts `delay`
//! apart, then doubling up to [`SLOW_RETRY_CAP`]; a rejected token is retried slowly from the
//! start.
//!
//! The state does not flap: one failed cycle among good ones is `degraded`, `down` takes
//! [`DOWN_AFTER_FAILURES`] failed cycles in a row (or a refused connection), and `degraded`
//! turns `connected` only after [`CLEAN_CYCLES_TO_CONNECT`] clean cycles in a row.

use std::time::Duration;

use serde::Serialize;

use super::client::UpstreamError;
use crate::backoff::Backoff;
use crate::model::Timestamp;

/// Longest wait between two recovery attempts.
pub const SLOW_RETRY_CAP: Duration = Duration::from_secs(300);
/// Wait between attempts while the token is rejected (an operator must fix it; hammering
/// the server with a bad token helps no one and may trip its rate limits).
pub const AUTH_RETRY: Duration = Duration::from_secs(60);
/// Failed cycles in a row (unreachable, timing out) before the state is `down`; a refused
/// connection is `down` at once.
pub const DOWN_AFTER_FAILURES: u32 = 3;
/// Clean cycles in a row before a `degraded` link is `connected` again (from `starting` or
/// `down`, the first clean cycle is enough: recovery is news at once).
pub const CLEAN_CYCLES_TO_CONNECT: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamState {
    /// No poll has completed yet.
    Starting,
    Connected,
    /// Reachable, but some calls or event streams fail.
    Degraded,
    /// Unreachable (refused, unavailable, timing out).
    Down,
    /// The API token is rejected.
    Unauthenticated,
}

impl UpstreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Connected => "connected",
            Self::Degraded => "degraded",
            Self::Down => "down",
            Self::Unauthenticated => "unauthenticated",
        }
    }

    /// Whether event streams should try to connect in this state.
    pub fn allows_streams(self) -> bool {
        matches!(self, Self::Starting | Self::Connected | Self::Degraded)
    }
}

/// A change of state, to be logged once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: UpstreamState,
    pub to: UpstreamState,
    pub reason: String,
}

/// What the rest of the gateway is told about ChirpStack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamStatus {
    pub state: UpstreamState,
    pub since: Timestamp,
    pub last_poll: Option<Timestamp>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub streams_open: usize,
    /// Devices given an event stream (open or reconnecting).
    pub streams_wanted: usize,
    /// Devices beyond the stream pool's capacity: their values come from `GetMetrics`
    /// aggregates only (one per minute bucket at best).
    pub devices_polled_only: usize,
}

/// Tracks the state and decides when to poll next.
#[derive(Debug, Clone)]
pub struct UpstreamTracker {
    state: UpstreamState,
    since: Timestamp,
    last_poll: Option<Timestamp>,
    last_error: Option<String>,
    failures: u32,
    /// Clean cycles in a row.
    clean: u32,
    /// The last failed cycle could not reach ChirpStack (retried soon) rather than being
    /// answered with an error (retried at the poll period).
    unreachable: bool,
    /// Recovery attempts at the fast rate before backing off.
    pub retry: u32,
    pub delay: Duration,
}

impl UpstreamTracker {
    pub fn new(retry: u32, delay: Duration, now: Timestamp) -> Self {
        Self {
            state: UpstreamState::Starting,
            since: now,
            last_poll: None,
            last_error: None,
            failures: 0,
            clean: 0,
            unreachable: false,
            retry,
            delay,
        }
    }

    pub fn state(&self) -> UpstreamState {
        self.state
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A poll cycle completed; `partial` says some calls or streams failed.
    pub fn poll_succeeded(
        &mut self,
        partial: Option<String>,
        now: Timestamp,
    ) -> Option<Transition> {
        self.last_poll = Some(now);
        self.failures = 0;
        match partial {
            Some(reason) => {
                self.clean = 0;
                self.last_error = Some(reason.clone());
                self.move_to(UpstreamState::Degraded, reason, now)
            }
            None => {
                self.clean = self.clean.saturating_add(1);
                let settled =
                    self.state != UpstreamState::Degraded || self.clean >= CLEAN_CYCLES_TO_CONNECT;
                if !settled {
                    return None;
                }
                self.move_to(UpstreamState::Connected, "poll succeeded".into(), now)
            }
        }
    }

    /// A poll cycle failed as a whole.
    pub fn poll_failed(&mut self, error: &UpstreamError, now: Timestamp) -> Option<Transition> {
        self.failures = self.failures.saturating_add(1);
        self.clean = 0;
        self.unreachable = error.is_connectivity();
        self.last_error = Some(error.to_string());
        let to = match error {
            UpstreamError::Unauthenticated => UpstreamState::Unauthenticated,
            UpstreamError::Refused(_) => UpstreamState::Down,
            e if e.is_connectivity()
                && (self.failures >= DOWN_AFTER_FAILURES || self.state == UpstreamState::Down) =>
            {
                UpstreamState::Down
            }
            _ => UpstreamState::Degraded,
        };
        self.move_to(to, error.to_string(), now)
    }

    fn move_to(&mut self, to: UpstreamState, reason: String, now: Timestamp) -> Option<Transition> {
        if to == self.state {
            return None;
        }
        let from = std::mem::replace(&mut self.state, to);
        self.since = now;
        Some(Transition { from, to, reason })
    }

    /// How long to wait before the next poll.
    pub fn next_poll_in(&self, polling_frequency: Duration) -> Duration {
        match self.state {
            UpstreamState::Unauthenticated => AUTH_RETRY.max(self.delay),
            // Answered with an error (an application not found...): polling faster helps
            // nothing; a reload that fixes it is picked up at the next poll.
            _ if self.failures == 0 || !self.unreachable => polling_frequency,
            _ => {
                // `retry` attempts at `delay` (attempt 0 of the schedule), then doubling.
                let slow = Backoff::new(self.delay, SLOW_RETRY_CAP.max(self.delay));
                slow.nominal_delay(self.failures.saturating_sub(self.retry))
            }
        }
    }

    pub fn status(
        &self,
        streams_open: usize,
        streams_wanted: usize,
        devices_polled_only: usize,
    ) -> UpstreamStatus {
        UpstreamStatus {
            state: self.state,
            since: self.since,
            last_poll: self.last_poll,
            last_error: self.last_error.clone(),
            consecutive_failures: self.failures,
            streams_open,
            streams_wanted,
            devices_polled_only,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_change_is_reported_once() {
        let t = Timestamp(0);
        let mut tracker = UpstreamTracker::new(3, Duration::from_secs(10), t);
        let down = UpstreamError::Refused("connection refused".into());
        assert_eq!(
            tracker.poll_failed(&down, t).map(|x| x.to),
            Some(UpstreamState::Down)
        );
        assert_eq!(
            tracker.poll_failed(&down, t),
            None,
            "still down: nothing new to say"
        );
        assert_eq!(
            tracker.poll_succeeded(None, t).map(|x| x.to),
            Some(UpstreamState::Connected)
        );
        assert_eq!(tracker.poll_succeeded(None, t), None);
        assert_eq!(
            tracker
                .poll_failed(&UpstreamError::Unauthenticated, t)
                .map(|x| x.to),
            Some(UpstreamState::Unauthenticated)
        );
        assert_eq!(
            tracker
                .poll_succeeded(Some("2 streams failing".into()), t)
                .map(|x| x.to),
            Some(UpstreamState::Degraded)
        );
    }

    /// Every 4th call failing: a failed cycle now and then is `degraded`, retried at the fast
    /// rate, and never `down`; three failed cycles in a row are.
    #[test]
    fn a_failed_cycle_among_good_ones_is_degraded_and_down_takes_three_in_a_row() {
        let t = Timestamp(0);
        let freq = Duration::from_secs(10);
        let mut tracker = UpstreamTracker::new(3, Duration::from_secs(2), t);
        let hiccup = UpstreamError::Unavailable("injected".into());
        let mut states = Vec::new();
        for failed in [true, false, false, true, false, true, false, false, false] {
            if failed {
                tracker.poll_failed(&hiccup, t);
                assert_eq!(
                    tracker.next_poll_in(freq),
                    Duration::from_secs(2),
                    "retried soon"
                );
            } else {
                tracker.poll_succeeded(None, t);
                assert_eq!(tracker.next_poll_in(freq), freq);
            }
            states.push(tracker.state());
        }
        use UpstreamState::*;
        assert_eq!(
            states,
            [
                Degraded, Degraded, Connected, Degraded, Degraded, Degraded, Degraded, Connected,
                Connected
            ],
            "degraded until two clean cycles in a row; never down"
        );

        let mut transitions = Vec::new();
        for _ in 0..DOWN_AFTER_FAILURES {
            transitions.extend(tracker.poll_failed(&hiccup, t).map(|x| x.to));
        }
        assert_eq!(transitions, [Degraded, Down]);
        assert_eq!(
            tracker.poll_succeeded(None, t).map(|x| x.to),
            Some(Connected),
            "recovery from down is news at once"
        );
    }

    #[test]
    fn a_refused_connection_or_a_timeout_streak_is_down_and_an_answer_never_is() {
        let t = Timestamp(0);
        let mut tracker = UpstreamTracker::new(3, Duration::from_secs(2), t);
        tracker.poll_succeeded(None, t);
        assert_eq!(
            tracker
                .poll_failed(&UpstreamError::Refused("connection refused".into()), t)
                .map(|x| x.to),
            Some(UpstreamState::Down)
        );
        tracker.poll_succeeded(None, t);
        for _ in 0..5 {
            tracker.poll_failed(&UpstreamError::NotFound("application".into()), t);
        }
        assert_eq!(
            tracker.state(),
            UpstreamState::Degraded,
            "ChirpStack answered"
        );
        tracker.poll_succeeded(None, t);
        tracker.poll_succeeded(None, t);
        for _ in 0..DOWN_AFTER_FAILURES {
            tracker.poll_failed(&UpstreamError::Timeout(Duration::from_secs(5)), t);
        }
        assert_eq!(tracker.state(), UpstreamState::Down);
    }

    #[test]
    fn recovery_attempts_are_bounded_fast_then_slow() {
        let t = Timestamp(0);
        let freq = Duration::from_secs(10);
        let mut tracker = UpstreamTracker::new(3, Duration::from_secs(5), t);
        let down = UpstreamError::Unavailable("refused".into());
        let mut waits = Vec::new();
        for _ in 0..8 {
            tracker.poll_failed(&down, t);
            waits.push(tracker.next_poll_in(freq).as_secs());
        }
        assert_eq!(waits, [5, 5, 5, 10, 20, 40, 80, 160]);
        for _ in 0..20 {
            tracker.poll_failed(&down, t);
        }
        assert_eq!(tracker.next_poll_in(freq), SLOW_RETRY_CAP);
        tracker.poll_succeeded(None, t);
        assert_eq!(tracker.next_poll_in(freq), freq);
    }

    #[test]
    fn a_rejected_token_is_retried_slowly_from_the_start() {
        let t = Timestamp(0);
        let mut tracker = UpstreamTracker::new(10, Duration::from_secs(1), t);
        tracker.poll_failed(&UpstreamError::Unauthenticated, t);
        assert_eq!(tracker.next_poll_in(Duration::from_secs(1)), AUTH_RETRY);
        assert!(!tracker.state().allows_streams());
    }
}
