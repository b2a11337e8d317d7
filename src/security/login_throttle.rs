//! How long a refused login (OPC UA or web console) waits before its answer, per source address: 300 ms for a
//! first failure, doubling with each further failure from the same address up to 5 s, forgotten
//! after a quiet minute or a successful login from that address. A password guesser is slowed
//! while a client at another address logs in at full speed; a global delay would slow everyone
//! (and hand the attacker a lever on every client).
//!
//! Memory is bounded: at most [`MAX_TRACKED_ADDRESSES`] addresses are remembered; beyond that the
//! address whose last failure is oldest is forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Delay of a first failure (and of every failure whose source is unknown).
pub const FIRST_FAILURE_DELAY: Duration = Duration::from_millis(300);
/// The delay doubles per failure up to this.
pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(5);
/// Failures older than this (counted from the address's last failure) are forgotten.
pub const QUIET_PERIOD: Duration = Duration::from_secs(60);
/// Addresses remembered at most (about 40 bytes each).
pub const MAX_TRACKED_ADDRESSES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The per-address failure counts. Time is passed in, so the rules are testable without sleeping.
#[derive(Debug)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
    capacity: usize,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED_ADDRESSES)
    }
}

impl LoginThrottle {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Records a failed login from `source` at `now`; returns how long its answer waits.
    pub fn failed(&self, source: Option<IpAddr>, now: Instant) -> Duration {
        let Some(source) = source.map(|ip| ip.to_canonical()) else {
            return FIRST_FAILURE_DELAY;
        };
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = match failures.get_mut(&source) {
            Some(entry) if now.saturating_duration_since(entry.last) < QUIET_PERIOD => {
                entry.count = entry.count.saturating_add(1);
                entry.last = now;
                entry.count
            }
            Some(entry) => {
                *entry = Failures {
                    count: 1,
                    last: now,
                };
                1
            }
            None => {
                if failures.len() >= self.capacity {
                    forget_oldest(&mut failures);
                }
                failures.insert(
                    source,
                    Failures {
                        count: 1,
                        last: now,
                    },
                );
                1
            }
        };
        delay_after(count)
    }

    /// A successful login from `source`: its failures are forgotten.
    pub fn succeeded(&self, source: Option<IpAddr>) {
        if let Some(source) = source.map(|ip| ip.to_canonical()) {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            failures.remove(&source);
        }
    }

    /// Addresses currently remembered.
    pub fn tracked(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// 300 ms, 600 ms, 1.2 s, 2.4 s, 4.8 s, then 5 s.
fn delay_after(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    FIRST_FAILURE_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_FAILURE_DELAY)
}

fn forget_oldest(failures: &mut HashMap<IpAddr, Failures>) {
    let oldest = failures
        .iter()
        .min_by_key(|(_, f)| f.last)
        .map(|(ip, _)| *ip);
    if let Some(ip) = oldest {
        failures.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn repeated_failures_from_one_address_double_the_delay_up_to_the_cap() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let delays: Vec<u128> = (0..8)
            .map(|i| {
                throttle
                    .failed(ip("127.0.0.1"), t0 + Duration::from_millis(i))
                    .as_millis()
            })
            .collect();
        assert_eq!(delays, [300, 600, 1200, 2400, 4800, 5000, 5000, 5000]);
    }

    #[test]
    fn another_address_is_not_slowed_by_an_attackers_failures() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..20 {
            throttle.failed(ip("127.0.0.1"), t0);
        }
        assert_eq!(throttle.failed(ip("127.0.0.2"), t0), FIRST_FAILURE_DELAY);
        assert_eq!(throttle.failed(ip("127.0.0.1"), t0), MAX_FAILURE_DELAY);
    }

    #[test]
    fn a_success_or_a_quiet_period_resets_an_address() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            throttle.failed(ip("10.0.0.1"), t0);
        }
        throttle.succeeded(ip("10.0.0.1"));
        assert_eq!(throttle.failed(ip("10.0.0.1"), t0), FIRST_FAILURE_DELAY);

        for _ in 0..5 {
            throttle.failed(ip("10.0.0.2"), t0);
        }
        let later = t0 + QUIET_PERIOD + Duration::from_millis(1);
        assert_eq!(throttle.failed(ip("10.0.0.2"), later), FIRST_FAILURE_DELAY);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_same_source_as_ipv4() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        throttle.failed(ip("::ffff:192.0.2.7"), t0);
        assert_eq!(
            throttle.failed(ip("192.0.2.7"), t0),
            FIRST_FAILURE_DELAY * 2
        );
    }

    #[test]
    fn memory_is_bounded_and_the_stalest_address_is_forgotten_first() {
        let throttle = LoginThrottle::with_capacity(3);
        let t0 = Instant::now();
        for (i, source) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
            throttle.failed(ip(source), t0 + Duration::from_millis(i as u64));
        }
        // 10.0.0.1 failed again most recently: 10.0.0.2 is now the stalest.
        throttle.failed(ip("10.0.0.1"), t0 + Duration::from_millis(10));
        throttle.failed(ip("10.0.0.4"), t0 + Duration::from_millis(11));
        assert_eq!(throttle.tracked(), 3);
        let at = t0 + Duration::from_millis(12);
        assert_eq!(throttle.failed(ip("10.0.0.1"), at), FIRST_FAILURE_DELAY * 4);
        assert_eq!(throttle.failed(ip("10.0.0.2"), at), FIRST_FAILURE_DELAY);
    }

    #[test]
    fn an_unknown_source_gets_the_first_failure_delay_and_is_not_tracked() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(throttle.failed(None, t0), FIRST_FAILURE_DELAY);
        }
        assert_eq!(throttle.tracked(), 0);
    }
}
