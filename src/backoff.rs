//! Exponential backoff: the one retry schedule of the gateway (supervisor restarts, event
//! streams, the storage forwarder, the OPC UA seed, the ChirpStack recovery polls).
//!
//! The jitter is injected ([`Jitter`]) so a schedule is tested with a fixed source and runs
//! with a random one.

use std::time::Duration;

/// `initial`, doubled per attempt, capped at `max`, optionally shortened by jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Fraction (0..1) the delay may be shortened by at random, so retriers that failed
    /// together (a shared upstream went away) do not retry in lockstep. Jitter only ever
    /// shortens the delay, so `max` stays a true upper bound.
    pub jitter: f64,
}

/// Where the random part of a delay comes from: a number in 0..1 per delay.
pub trait Jitter {
    fn unit(&mut self) -> f64;
}

/// The production source: uniformly random.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn unit(&mut self) -> f64 {
        rand::random::<f64>()
    }
}

/// The same number every time (tests; `FixedJitter(0.0)` is the nominal schedule).
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

impl Jitter for FixedJitter {
    fn unit(&mut self) -> f64 {
        self.0
    }
}

impl Backoff {
    /// A schedule without jitter.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: 0.0,
        }
    }

    /// The same schedule, shortened at random by up to `fraction` (0..1) of each delay.
    pub const fn with_jitter(self, fraction: f64) -> Self {
        Self {
            jitter: fraction,
            ..self
        }
    }

    /// The jitter-free delay before retry number `attempt` (0-based): `initial * 2^attempt`,
    /// at most `max`; saturates instead of overflowing for any `attempt`.
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry number `attempt`, shortened by the jitter drawn from `jitter`.
    pub fn delay(&self, attempt: u32, jitter: &mut impl Jitter) -> Duration {
        let unit = jitter.unit();
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.nominal_delay(attempt)
            .mul_f64(1.0 - self.jitter.clamp(0.0, 1.0) * unit)
    }

    /// The delay before retry number `attempt`, with random jitter.
    pub fn random_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, &mut RandomJitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));

    #[test]
    fn the_delay_doubles_from_initial_and_caps_at_max() {
        let millis: Vec<u64> = (0..10)
            .map(|n| SCHEDULE.nominal_delay(n).as_millis() as u64)
            .collect();
        assert_eq!(
            millis,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn a_huge_attempt_number_saturates_at_max() {
        for attempt in [31, 32, 33, 64, u32::MAX] {
            assert_eq!(SCHEDULE.nominal_delay(attempt), SCHEDULE.max, "{attempt}");
        }
        let wide = Backoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert_eq!(wide.nominal_delay(40), Duration::MAX);
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_its_fraction() {
        let jittered = SCHEDULE.with_jitter(0.2);
        assert_eq!(
            jittered.delay(3, &mut FixedJitter(0.0)),
            Duration::from_secs(2)
        );
        assert_eq!(
            jittered.delay(3, &mut FixedJitter(1.0)),
            Duration::from_millis(1_600)
        );
        assert_eq!(
            jittered.delay(3, &mut FixedJitter(0.5)),
            Duration::from_millis(1_800)
        );
        // A source outside 0..1 cannot lengthen the delay or make it negative.
        assert_eq!(
            jittered.delay(3, &mut FixedJitter(7.0)),
            Duration::from_millis(1_600)
        );
        assert_eq!(
            jittered.delay(3, &mut FixedJitter(-1.0)),
            Duration::from_secs(2)
        );
        assert_eq!(
            jittered.delay(3, &mut FixedJitter(f64::NAN)),
            Duration::from_secs(2)
        );
        for _ in 0..100 {
            let delay = jittered.random_delay(20);
            assert!(delay <= jittered.max && delay >= jittered.max.mul_f64(0.8));
        }
    }

    #[test]
    fn without_jitter_the_source_is_ignored() {
        assert_eq!(
            SCHEDULE.delay(1, &mut FixedJitter(1.0)),
            Duration::from_millis(500)
        );
    }
}
