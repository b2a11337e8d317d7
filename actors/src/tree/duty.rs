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
            // Generations only grow. The reload actor swaps its own configuration before the
            // supervisor's broadcast of it comes back, so under a burst of edits an older
            // update can arrive after a newer one was applied: it is dropped, not re-applied.
            Common::ConfigChanged(update) if update.generation < self.config.generation => {
                debug!(
                    event = "config_update_superseded",
                    actor = self.role,
                    generation = update.generation,
                    current = self.config.generation
                );
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opcgw::config::AppConfig;

    use super::*;

    fn update(generation: u64) -> ConfigUpdate {
        let mut update = ConfigUpdate::initial(Arc::new(AppConfig::default()));
        update.generation = generation;
        update
    }

    /// An update older than the one in force (the reload actor's own broadcast coming back
    /// after a later edit) is dropped; newer and equal ones are taken.
    #[test]
    fn an_older_configuration_never_replaces_a_newer_one() {
        let mut base = DutyBase::new("test", update(5));
        base.handle_common(Common::ConfigChanged(update(3)), |_| String::new())
            .unwrap();
        assert_eq!(base.config.generation, 5);
        base.handle_common(Common::ConfigChanged(update(5)), |_| String::new())
            .unwrap();
        assert_eq!(base.config.generation, 5);
        base.handle_common(Common::ConfigChanged(update(6)), |_| String::new())
            .unwrap();
        assert_eq!(base.config.generation, 6);
    }
}
