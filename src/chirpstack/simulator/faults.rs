//! The front door every call goes through: counting, injected latency, authentication and
//! injected failures, in the order a client would meet them over a real network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// Whether a call is unary (subject to the injected error rate) or opens a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Unary,
    Stream,
}

pub(crate) struct Gate {
    token: RwLock<String>,
    latency_us: AtomicU64,
    /// The error fraction and its seeded RNG: the same seed fails the same calls.
    failures: Mutex<(f64, StdRng)>,
    /// Every n-th authorized unary call fails (0: none), counted in `unary`.
    fail_every: AtomicU64,
    unary: AtomicU64,
    calls: Mutex<HashMap<&'static str, u64>>,
    unauthenticated: AtomicU64,
}

impl Gate {
    pub(crate) fn new(token: &str, seed: u64) -> Self {
        Self {
            token: RwLock::new(token.to_string()),
            latency_us: AtomicU64::new(0),
            failures: Mutex::new((0.0, StdRng::seed_from_u64(seed))),
            fail_every: AtomicU64::new(0),
            unary: AtomicU64::new(0),
            calls: Mutex::new(HashMap::new()),
            unauthenticated: AtomicU64::new(0),
        }
    }

    /// Admits one call to `method` (`"DeviceService.GetMetrics"`) or says why not.
    pub(crate) async fn admit(
        &self,
        method: &'static str,
        metadata: &MetadataMap,
        kind: CallKind,
    ) -> Result<(), Status> {
        *lock(&self.calls).entry(method).or_insert(0) += 1;
        let authorized = self.is_authorized(metadata);
        let latency = self.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if !authorized {
            self.unauthenticated.fetch_add(1, Ordering::Relaxed);
            // Never echo what was presented: a near-miss token is still a secret.
            return Err(Status::unauthenticated(
                "missing or invalid API token (expected authorization: Bearer <token>)",
            ));
        }
        if kind == CallKind::Unary && (self.nth_failure() | self.roll_failure()) {
            return Err(Status::unavailable(
                "injected failure: the simulator fails this fraction of calls",
            ));
        }
        Ok(())
    }

    fn is_authorized(&self, metadata: &MetadataMap) -> bool {
        let presented = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let expected = self.token.read().unwrap_or_else(PoisonError::into_inner);
        match presented {
            Some(presented) => {
                !expected.is_empty() && same_bytes(presented.as_bytes(), expected.as_bytes())
            }
            None => false,
        }
    }

    /// Counts an authorized unary call; whether it is an n-th one that fails.
    fn nth_failure(&self) -> bool {
        let n = self.unary.fetch_add(1, Ordering::Relaxed) + 1;
        let every = self.fail_every.load(Ordering::Relaxed);
        every > 0 && n % every == 0
    }

    /// Every `n`-th unary call from now on fails with UNAVAILABLE (0: none); the count starts
    /// afresh.
    pub(crate) fn set_fail_every(&self, n: u64) {
        self.unary.store(0, Ordering::Relaxed);
        self.fail_every.store(n, Ordering::Relaxed);
    }

    fn roll_failure(&self) -> bool {
        let mut failures = lock(&self.failures);
        let (rate, rng) = &mut *failures;
        *rate > 0.0 && rng.gen_bool(*rate)
    }

    pub(crate) fn set_token(&self, token: &str) {
        *self.token.write().unwrap_or_else(PoisonError::into_inner) = token.to_string();
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        let micros = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        self.latency_us.store(micros, Ordering::Relaxed);
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    /// Sets the fraction of unary calls that fail; clamped to 0..=1, NaN means none.
    pub(crate) fn set_error_rate(&self, fraction: f64) {
        let rate = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        lock(&self.failures).0 = rate;
    }

    pub(crate) fn calls(&self, method: &str) -> u64 {
        lock(&self.calls).get(method).copied().unwrap_or(0)
    }

    pub(crate) fn unauthenticated_calls(&self) -> u64 {
        self.unauthenticated.load(Ordering::Relaxed)
    }
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Locks a mutex, recovering from poisoning: the guarded data stays consistent between
/// statements, and a simulator must not cascade one panicking test into every call.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: &str) -> MetadataMap {
        let mut md = MetadataMap::new();
        md.insert("authorization", value.parse().unwrap());
        md
    }

    #[tokio::test]
    async fn only_the_exact_bearer_token_is_admitted_and_refusals_are_counted() {
        let gate = Gate::new("s3cret", 1);
        assert!(gate
            .admit("X.Y", &metadata("Bearer s3cret"), CallKind::Unary)
            .await
            .is_ok());
        for bad in ["Bearer s3cre", "bearer s3cret", "s3cret", "Bearer s3cret "] {
            let err = gate
                .admit("X.Y", &metadata(bad), CallKind::Unary)
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
            assert!(!err.message().contains("s3cre"));
        }
        assert!(gate
            .admit("X.Y", &MetadataMap::new(), CallKind::Unary)
            .await
            .is_err());
        assert_eq!((gate.calls("X.Y"), gate.unauthenticated_calls()), (6, 5));
    }

    #[tokio::test]
    async fn the_error_rate_fails_that_fraction_of_unary_calls_only() {
        let gate = Gate::new("t", 7);
        gate.set_error_rate(0.25);
        let md = metadata("Bearer t");
        let mut failed = 0;
        for _ in 0..2_000 {
            if gate.admit("X.Y", &md, CallKind::Unary).await.is_err() {
                failed += 1;
            }
            assert!(gate.admit("X.S", &md, CallKind::Stream).await.is_ok());
        }
        assert!((400..600).contains(&failed), "{failed}");
        gate.set_error_rate(f64::NAN);
        assert!(gate.admit("X.Y", &md, CallKind::Unary).await.is_ok());
    }

    #[tokio::test]
    async fn every_nth_unary_call_fails_and_streams_never_do() {
        let gate = Gate::new("t", 7);
        gate.set_fail_every(4);
        let md = metadata("Bearer t");
        let mut outcomes = Vec::new();
        for _ in 0..8 {
            outcomes.push(gate.admit("X.Y", &md, CallKind::Unary).await.is_ok());
            assert!(gate.admit("X.S", &md, CallKind::Stream).await.is_ok());
        }
        assert_eq!(outcomes, [true, true, true, false, true, true, true, false]);
        gate.set_fail_every(0);
        assert!(gate.admit("X.Y", &md, CallKind::Unary).await.is_ok());
    }
}
