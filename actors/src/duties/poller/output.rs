//! Where the poller's results go: to its peers in the tree, or to a test's channel.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::forward::{StorageForwarder, StorageItem, MAX_BUFFERED_SAMPLES};

/// Samples on their way to storage from which the event streams are held back: half the
/// buffer, so what polls and streams already in flight bring still fits.
pub const BACKLOG_SAMPLES: usize = MAX_BUFFERED_SAMPLES / 2;
use crate::tree::messages::{Feed, OpcUaMsg, Peers, StorageMsg, WebMsg};

/// A consumer of the poller's feed.
pub trait PollerOutput: Send + 'static {
    fn send(&mut self, peers: &Peers, feed: Feed);

    /// The tree's actors moved (one restarted); called before the next `send`.
    fn peers_changed(&mut self, _peers: &Peers) {}

    /// `(buffered, written, dropped)` samples on their way to storage.
    fn storage_stats(&self) -> (u64, u64, u64) {
        (0, 0, 0)
    }

    /// Samples pile up on their way to storage (it is slow, opening or away): the poller then
    /// holds the event streams back (ChirpStack keeps their events) instead of buffering more.
    fn storage_backlogged(&self) -> bool {
        false
    }
}

/// Feeds the tree: samples and command updates to storage through a [`StorageForwarder`]
/// (buffered and replayed across storage restarts; the tree's one forwarder outlives the
/// poller's restarts too), and everything to the OPC UA and web actors as it happens (they
/// only ever want the newest state).
pub struct PeerOutput {
    storage: Arc<StorageForwarder>,
}

impl Default for PeerOutput {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerOutput {
    pub fn new() -> Self {
        Self::through(Arc::new(StorageForwarder::new()))
    }

    /// Feeds storage through `forwarder`, shared with the poller's later instances.
    pub fn through(forwarder: Arc<StorageForwarder>) -> Self {
        Self { storage: forwarder }
    }
}

impl PollerOutput for PeerOutput {
    fn send(&mut self, peers: &Peers, feed: Feed) {
        self.peers_changed(peers);
        match &feed {
            Feed::Samples(samples) => self.storage.send(StorageItem::Samples(samples.clone())),
            Feed::Command(update) => self.storage.send(StorageItem::Command(update.clone())),
            Feed::Upstream(_) | Feed::DeviceHealth(_) => {
                if let Some(storage) = peers.storage() {
                    storage.cast(StorageMsg::Feed(feed.clone()));
                }
            }
        }
        if let Some(opcua) = peers.opcua() {
            opcua.cast(OpcUaMsg::Feed(feed.clone()));
        }
        if let Some(web) = peers.web() {
            web.cast(WebMsg::Feed(feed));
        }
    }

    fn peers_changed(&mut self, peers: &Peers) {
        self.storage
            .set_storage(peers.storage().map(|peer| peer.actor().clone()));
    }

    fn storage_backlogged(&self) -> bool {
        self.storage.stats().buffered.load(Ordering::Relaxed) >= BACKLOG_SAMPLES as u64
    }

    fn storage_stats(&self) -> (u64, u64, u64) {
        let stats = self.storage.stats();
        (
            stats.buffered.load(Ordering::Relaxed),
            stats.written.load(Ordering::Relaxed),
            stats.dropped.load(Ordering::Relaxed),
        )
    }
}

/// Sends the feed to a channel (tests, benchmarks).
pub struct ChannelOutput(pub mpsc::UnboundedSender<Feed>);

impl PollerOutput for ChannelOutput {
    fn send(&mut self, _peers: &Peers, feed: Feed) {
        let _ = self.0.send(feed);
    }
}
