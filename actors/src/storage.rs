//! The Storage actor.
//!
//! Its duty arrives in a later release; until then it starts, stops, takes configuration
//! changes and answers `Status` honestly, so the supervision tree is complete.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::duty::DutyBase;
use crate::messages::{ConfigUpdate, StorageMsg};

pub const ROLE: &str = "storage";

pub struct StorageActor;

impl Actor for StorageActor {
    type Msg = StorageMsg;
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
            StorageMsg::Common(common) => state.handle_common(common, |_| {
                "idle: the redb storage duty is not built yet; no data is stored".into()
            }),
        }
    }
}
