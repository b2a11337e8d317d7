//! The Storage actor.
//!
//! Its duty arrives in a later release; until then it starts, stops, takes configuration
//! changes, counts what the poller feeds it (without keeping it) and answers `Status`
//! honestly, so the supervision tree is complete.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::duty::{DutyBase, FeedCounts};
use crate::messages::{ConfigUpdate, StorageMsg};

pub const ROLE: &str = "storage";

pub struct StorageActor;

pub struct StorageState {
    base: DutyBase,
    received: FeedCounts,
}

impl Actor for StorageActor {
    type Msg = StorageMsg;
    type State = StorageState;
    type Arguments = ConfigUpdate;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        config: ConfigUpdate,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(StorageState {
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
            StorageMsg::Common(common) => {
                let samples = state.received.samples;
                state.base.handle_common(common, |_| format!("idle: the redb storage duty is not built yet (received {samples} samples, not kept)"))
            }
            StorageMsg::Feed(feed) => {
                state.received.count(&feed);
                Ok(())
            }
        }
    }
}
