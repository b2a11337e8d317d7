//! The Web actor.
//!
//! Its duty arrives in a later release; until then it starts, stops, takes configuration
//! changes, counts what the poller feeds it (without keeping it) and answers `Status`
//! honestly, so the supervision tree is complete.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::tree::duty::{DutyBase, FeedCounts};
use crate::tree::messages::{ConfigUpdate, WebMsg};

pub const ROLE: &str = "web";

pub struct WebActor;

pub struct WebState {
    base: DutyBase,
    received: FeedCounts,
}

impl Actor for WebActor {
    type Msg = WebMsg;
    type State = WebState;
    type Arguments = ConfigUpdate;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        config: ConfigUpdate,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(WebState {
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
            WebMsg::Common(common) => {
                let samples = state.received.samples;
                state.base.handle_common(common, |_| format!("idle: the web console duty is not built yet; nothing listens on the web port (received {samples} samples, not kept)"))
            }
            WebMsg::Feed(feed) => {
                state.received.count(&feed);
                Ok(())
            }
        }
    }
}
