//! The part every duty actor shares: answering `Status`, taking `ConfigChanged`, and the
//! debug-build fault injection.

use ractor::ActorProcessingErr;
use tracing::debug;

use crate::messages::{ActorReport, Common, ConfigUpdate};

/// The state every duty actor keeps: its role and the configuration it runs with.
pub struct DutyBase {
    pub role: &'static str,
    pub config: ConfigUpdate,
}

impl DutyBase {
    pub fn new(role: &'static str, config: ConfigUpdate) -> Self {
        Self { role, config }
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
            #[cfg(debug_assertions)]
            Common::InjectPanic(reason) => panic!("{} actor: injected panic ({reason})", self.role),
        }
        Ok(())
    }
}
