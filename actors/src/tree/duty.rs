//! The part every duty actor shares: answering `Status`, taking `ConfigChanged`, and the
//! debug-build fault injection.

use ractor::ActorProcessingErr;
use tracing::debug;

use crate::tree::messages::{ActorReport, Common, ConfigUpdate, Feed, Peers};

/// The state every duty actor keeps: its role, the configuration it runs with, and where its
/// peers are.
pub struct DutyBase {
    pub role: &'static str,
    pub config: ConfigUpdate,
    pub peers: Peers,
}

impl DutyBase {
    pub fn new(role: &'static str, config: ConfigUpdate) -> Self {
        Self {
            role,
            config,
            peers: Peers::default(),
        }
    }

    /// Handles a [`Common`] message; `summary` describes what the actor is doing right now.
    pub fn handle_common(
        &mut self,
        message: Common,
        summary: impl FnOnce(&Self) -> String,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            Common::Status(reply) => {
                let report = ActorReport {
                    role: self.role.to_string(),
                    summary: summary(self),
                    config_generation: self.config.generation,
                };
                let _ = reply.send(report);
            }
            Common::ConfigChanged(update) => {
                debug!(
                    event = "config_applied",
                    actor = self.role,
                    generation = update.generation
                );
                self.config = update;
            }
            Common::PeersChanged(peers) => self.peers = peers,
            #[cfg(debug_assertions)]
            Common::InjectPanic(reason) => panic!("{} actor: injected panic ({reason})", self.role),
        }
        Ok(())
    }
}

/// What a duty actor whose own duty is not built yet has received from the poller, so its
/// status says so honestly instead of pretending to process it.
#[derive(Debug, Default)]
pub struct FeedCounts {
    pub samples: u64,
    pub upstream_updates: u64,
    pub device_health_updates: u64,
    pub command_updates: u64,
}

impl FeedCounts {
    pub fn count(&mut self, feed: &Feed) {
        match feed {
            Feed::Samples(samples) => self.samples += samples.len() as u64,
            Feed::Upstream(_) => self.upstream_updates += 1,
            Feed::DeviceHealth(_) => self.device_health_updates += 1,
            Feed::Command(_) => self.command_updates += 1,
        }
    }
}
