//! The OpcUa actor.
//!
//! Its duty arrives in a later release; until then it starts, stops, takes configuration
//! changes and answers `Status` honestly, so the supervision tree is complete.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::duty::DutyBase;
use crate::messages::{ConfigUpdate, OpcUaMsg};

pub const ROLE: &str = "opcua";

pub struct OpcUaActor;

impl Actor for OpcUaActor {
    type Msg = OpcUaMsg;
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
            OpcUaMsg::Common(common) => state.handle_common(common, |_| "idle: the OPC UA server duty is not built yet; nothing listens on the OPC UA port".into()),
        }
    }
}
