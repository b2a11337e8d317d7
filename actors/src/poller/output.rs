//! Where the poller's results go: to its peers in the tree, or to a test's channel.

use tokio::sync::mpsc;

use crate::messages::{Feed, OpcUaMsg, Peers, StorageMsg, WebMsg};
use crate::{opcua, storage, web};

/// A consumer of the poller's feed.
pub trait PollerOutput: Send + 'static {
    fn send(&mut self, peers: &Peers, feed: Feed);
}

/// Fans the feed out to the storage, OPC UA and web actors of the tree. A peer that is down
/// (restarting) misses what is sent meanwhile; storage replay covers that (see DESIGN §3).
pub struct PeerOutput;

impl PollerOutput for PeerOutput {
    fn send(&mut self, peers: &Peers, feed: Feed) {
        if let Some(storage) = peers.get::<StorageMsg>(storage::ROLE) {
            let _ = storage.cast(StorageMsg::Feed(feed.clone()));
        }
        if let Some(opcua) = peers.get::<OpcUaMsg>(opcua::ROLE) {
            let _ = opcua.cast(OpcUaMsg::Feed(feed.clone()));
        }
        if let Some(web) = peers.get::<WebMsg>(web::ROLE) {
            let _ = web.cast(WebMsg::Feed(feed));
        }
    }
}

/// Sends the feed to a channel (tests, benchmarks).
pub struct ChannelOutput(pub mpsc::UnboundedSender<Feed>);

impl PollerOutput for ChannelOutput {
    fn send(&mut self, _peers: &Peers, feed: Feed) {
        let _ = self.0.send(feed);
    }
}
