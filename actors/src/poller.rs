//! The Poller actor.
//!
//! Its duty arrives in a later release; until then it starts, stops, takes configuration
//! changes and answers `Status` honestly, so the supervision tree is complete.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::duty::DutyBase;
use crate::messages::{ConfigUpdate, PollerMsg};

pub const ROLE: &str = "poller";

pub struct PollerActor;

impl Actor for PollerActor {
    type Msg = PollerMsg;
    type State = DutyBase;
    type Arguments = ConfigUpdate;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        config: ConfigUpdate,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DutyBase::new(ROLE, config))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PollerMsg::Common(common) => state.handle_common(common, |_| {
                "idle: the ChirpStack poller duty is not built yet; nothing is polled".into()
            }),
        }
    }
}
