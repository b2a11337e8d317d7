//! The poll cycle as plain Rust: what the poller asks ChirpStack each period, and what it
//! makes of the answers. The poller actor only wires it (timers, messages, streams); the
//! cycle talks to ChirpStack through [`ChirpstackApi`], so it is tested with an in-crate
//! double instead of a server.

pub mod api;
pub mod cycle;
pub mod state;

#[cfg(test)]
mod tests;

pub use api::{paginate, ChirpstackApi};
pub use cycle::{run_cycle, CycleInput, CycleReport, FallbackTarget};
pub use state::{CycleOutcome, PollCycle};

use crate::model::Timestamp;

/// Where the cycle reads wall-clock time (stamps of received values, of the report): the
/// system clock in the gateway, a fixed or stepped one in tests. Durations use tokio's clock,
/// which tests pause.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
