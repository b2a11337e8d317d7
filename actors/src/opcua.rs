//! The OpcUa actor.
//!
//! Its duty arrives in a later release; until then it starts, stops, takes configuration
//! changes, counts what the poller feeds it (without keeping it) and answers `Status`
//! honestly, so the supervision tree is complete.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::duty::{DutyBase, FeedCounts};
use crate::messages::{ConfigUpdate, OpcUaMsg};

pub const ROLE: &str = "opcua";

pub struct OpcUaActor;

pub struct OpcUaState {
    base: DutyBase,
    received: FeedCounts,
}

impl Actor for OpcUaActor {
    type Msg = OpcUaMsg;
    type State = OpcUaState;
    type Arguments = ConfigUpdate;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        config: ConfigUpdate,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(OpcUaState {
            base: DutyBase::new(ROLE, config),
            received: FeedCounts::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            OpcUaMsg::Common(common) => {
                let samples = state.received.samples;
                state.base.handle_common(common, |_| format!("idle: the OPC UA server duty is not built yet; nothing listens on the OPC UA port (received {samples} samples, not kept)"))
            }
            OpcUaMsg::Feed(feed) => {
                state.received.count(&feed);
                Ok(())
            }
        }
    }
}
