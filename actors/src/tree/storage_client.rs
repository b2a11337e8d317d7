//! How the OPC UA server, the web console and the control socket query storage: always with
//! a timeout, and with an immediate error when storage is not running — never a hang.
//! History reads (raw pages and chart windows) run on a blocking thread of the asking task
//! against the database the storage actor has open (`Peers::reads`), so they never queue
//! behind appends in its mailbox; while it has none open they ask the actor.

use std::time::Duration;

use opcgw::commands::NewCommand;
use opcgw::model::Sample;
use opcgw::storage::{
    CommandFilter, CommandRecord, DownsampleQuery, Downsampled, HistoryPage, HistoryQuery,
    ProcessedPage, ProcessedQuery, ReadSlot, Reader, StorageError, StoreCounts,
};
use ractor::rpc::CallResult;
use ractor::ActorRef;

use crate::tree::messages::{Peers, StorageFailure, StorageMsg, StorageReply};

/// Longest wait for a storage answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct StorageClient {
    storage: Option<ActorRef<StorageMsg>>,
    /// The tree's published database, for reads that bypass the mailbox.
    reads: Option<ReadSlot>,
    timeout: Duration,
}

impl StorageClient {
    /// A client for the storage instance currently running in the tree.
    pub fn from_peers(peers: &Peers) -> Self {
        Self {
            storage: peers.storage().map(|peer| peer.actor().clone()),
            reads: Some(peers.reads().clone()),
            timeout: QUERY_TIMEOUT,
        }
    }

    /// A client of `storage` only (every query goes through its mailbox).
    pub fn new(storage: Option<ActorRef<StorageMsg>>, timeout: Duration) -> Self {
        Self {
            storage,
            reads: None,
            timeout,
        }
    }

    /// Also reads history from `reads` when the storage actor has published its database there.
    pub fn with_reads(mut self, reads: ReadSlot) -> Self {
        self.reads = Some(reads);
        self
    }

    /// Runs `read` on a blocking thread against the published database, within the timeout;
    /// `None` when nothing is published (storage restarting: ask the actor instead).
    async fn read_directly<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Reader) -> Result<T, StorageError> + Send + 'static,
    ) -> Option<Result<T, StorageFailure>> {
        let reader = self.reads.as_ref()?.reader()?;
        let task = tokio::task::spawn_blocking(move || read(&reader));
        Some(match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(result)) => result.map_err(StorageFailure::from),
            Ok(Err(_)) => Err(StorageFailure::Unavailable("the read failed".into())),
            Err(_) => Err(StorageFailure::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        })
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

    /// A query read on this task from the published database when there is one, else asked of
    /// the storage actor.
    async fn read_or_ask<Q, T>(
        &self,
        query: Q,
        read: fn(&Reader, &Q) -> Result<T, StorageError>,
        message: fn(Q, StorageReply<T>) -> StorageMsg,
    ) -> Result<T, StorageFailure>
    where
        Q: Clone + Send + 'static,
        T: Send + 'static,
    {
        let direct = query.clone();
        if let Some(answer) = self.read_directly(move |r| read(r, &direct)).await {
            return answer;
        }
        self.ask(|reply| message(query, reply)).await
    }

    pub async fn history(&self, query: HistoryQuery) -> Result<HistoryPage, StorageFailure> {
        self.read_or_ask(query, Reader::history, |query, reply| StorageMsg::History {
            query,
            reply,
        })
        .await
    }

    pub async fn downsample(&self, query: DownsampleQuery) -> Result<Downsampled, StorageFailure> {
        self.read_or_ask(query, Reader::history_downsampled, |query, reply| {
            StorageMsg::Downsample { query, reply }
        })
        .await
    }

    /// Aggregates of one series over one page of intervals (OPC UA ReadProcessed, `ctl
    /// history --aggregate`).
    pub async fn processed(&self, query: ProcessedQuery) -> Result<ProcessedPage, StorageFailure> {
        self.read_or_ask(query, Reader::history_processed, |query, reply| {
            StorageMsg::Processed { query, reply }
        })
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
