//! Idempotency keys of command requests: the same key for the same device and command within
//! ten minutes answers the first request's command id instead of queueing a second downlink (a
//! double click sends one). Concurrent requests with one key wait for the first to finish; if it
//! fails, the next one tries again. Memory is bounded: at most [`MAX_KEYS`] keys, the oldest
//! forgotten first.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::commands::CommandState;

/// How long a key is remembered.
pub const KEY_LIFETIME: Duration = Duration::from_secs(600);
/// Keys remembered at most.
pub const MAX_KEYS: usize = 10_000;

/// What the first request with a key answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: u64,
    pub state: CommandState,
}

type Key = (String, String, String);

#[derive(Debug)]
struct Slot {
    created: Instant,
    outcome: Arc<OnceCell<Accepted>>,
}

#[derive(Debug)]
pub struct IdempotencyKeys {
    slots: Mutex<HashMap<Key, Slot>>,
    capacity: usize,
}

impl Default for IdempotencyKeys {
    fn default() -> Self {
        Self::with_capacity(MAX_KEYS)
    }
}

impl IdempotencyKeys {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Runs `enqueue` unless the key already has an outcome (or one is being made, which is
    /// then awaited). Returns the outcome and whether this call made it.
    pub async fn run<F, Fut, E>(
        &self,
        device: &str,
        command: &str,
        key: &str,
        enqueue: F,
    ) -> Result<(Accepted, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Accepted, E>>,
    {
        let cell = self.slot((device.to_string(), command.to_string(), key.to_string()));
        let mut made = false;
        let outcome = cell
            .get_or_try_init(|| {
                made = true;
                enqueue()
            })
            .await?;
        Ok((*outcome, made))
    }

    fn slot(&self, key: Key) -> Arc<OnceCell<Accepted>> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|_, slot| now.saturating_duration_since(slot.created) < KEY_LIFETIME);
        if let Some(slot) = slots.get(&key) {
            return Arc::clone(&slot.outcome);
        }
        if slots.len() >= self.capacity {
            let oldest = slots
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        let outcome = Arc::new(OnceCell::new());
        slots.insert(
            key,
            Slot {
                created: now,
                outcome: Arc::clone(&outcome),
            },
        );
        outcome
    }

    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
