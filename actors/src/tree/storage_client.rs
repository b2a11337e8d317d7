//! How the OPC UA server, the web console and the control socket query storage: always with
//! a timeout, and with an immediate error when storage is not running — never a hang.

use std::time::Duration;

use opcgw::commands::NewCommand;
use opcgw::model::Sample;
use opcgw::storage::{
    CommandFilter, CommandRecord, DownsampleQuery, Downsampled, HistoryPage, HistoryQuery,
    StoreCounts,
};
use ractor::rpc::CallResult;
use ractor::ActorRef;

use crate::tree::messages::{Peers, StorageFailure, StorageMsg, StorageReply};

/// Longest wait for a storage answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct StorageClient {
    storage: Option<ActorRef<StorageMsg>>,
    timeout: Duration,
}

impl StorageClient {
    /// A client for the storage instance currently running in the tree.
    pub fn from_peers(peers: &Peers) -> Self {
        Self {
            storage: peers.storage().map(|peer| peer.actor().clone()),
            timeout: QUERY_TIMEOUT,
        }
    }

    pub fn new(storage: Option<ActorRef<StorageMsg>>, timeout: Duration) -> Self {
        Self { storage, timeout }
    }

    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(StorageReply<T>) -> StorageMsg,
    ) -> Result<T, StorageFailure> {
        let Some(storage) = &self.storage else {
            return Err(StorageFailure::Unavailable(
                "the storage actor is not running".into(),
            ));
        };
        match storage.call(build, Some(self.timeout)).await {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(StorageFailure::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
            Ok(CallResult::SenderError) => Err(StorageFailure::Unavailable(
                "storage stopped while answering".into(),
            )),
            Err(_) => Err(StorageFailure::Unavailable(
                "the storage actor is not running".into(),
            )),
        }
    }

    pub async fn history(&self, query: HistoryQuery) -> Result<HistoryPage, StorageFailure> {
        self.ask(|reply| StorageMsg::History { query, reply }).await
    }

    pub async fn downsample(&self, query: DownsampleQuery) -> Result<Downsampled, StorageFailure> {
        self.ask(|reply| StorageMsg::Downsample { query, reply })
            .await
    }

    pub async fn latest(&self, device_id: Option<String>) -> Result<Vec<Sample>, StorageFailure> {
        self.ask(|reply| StorageMsg::Latest { device_id, reply })
            .await
    }

    pub async fn enqueue_command(
        &self,
        command: NewCommand,
    ) -> Result<CommandRecord, StorageFailure> {
        self.ask(|reply| StorageMsg::EnqueueCommand { command, reply })
            .await
    }

    pub async fn commands(
        &self,
        filter: CommandFilter,
    ) -> Result<Vec<CommandRecord>, StorageFailure> {
        self.ask(|reply| StorageMsg::Commands { filter, reply })
            .await
    }

    pub async fn counts(&self) -> Result<StoreCounts, StorageFailure> {
        self.ask(|reply| StorageMsg::Counts { reply }).await
    }
}
