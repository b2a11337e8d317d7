//! What the poller hands to storage: buffered while storage is down (bounded, oldest dropped
//! first and counted), replayed in order when it is back, and coalesced into large batches so
//! that one durable commit carries many uplinks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opcgw::commands::CommandUpdate;
use opcgw::model::Sample;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::messages::StorageMsg;
use crate::task::OwnedTask;

/// Samples kept while storage is unavailable (about 20 s of 1,000 devices x 10 metrics/s).
pub const MAX_BUFFERED_SAMPLES: usize = 200_000;
/// Largest batch in one append (one durable commit).
pub const MAX_APPEND_SAMPLES: usize = 10_000;
/// A storage call that takes longer is treated as failed (and retried).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_INITIAL: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// An item for storage, in the order the poller produced it.
#[derive(Debug, Clone)]
pub enum StorageItem {
    Samples(Arc<[Sample]>),
    Command(Arc<CommandUpdate>),
}

impl StorageItem {
    fn samples(&self) -> usize {
        match self {
            Self::Samples(s) => s.len(),
            Self::Command(_) => 0,
        }
    }
}

/// Counters shared with the poller's status.
#[derive(Debug, Default)]
pub struct ForwardStats {
    pub buffered: AtomicU64,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct StorageForwarder {
    items: mpsc::UnboundedSender<StorageItem>,
    storage: watch::Sender<Option<ActorRef<StorageMsg>>>,
    stats: Arc<ForwardStats>,
    _task: OwnedTask,
}

impl Default for StorageForwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl StorageForwarder {
    pub fn new() -> Self {
        let (items, rx) = mpsc::unbounded_channel();
        let (storage, storage_rx) = watch::channel(None);
        let stats = Arc::new(ForwardStats::default());
        let task = OwnedTask::spawn(run(rx, storage_rx, stats.clone()));
        Self {
            items,
            storage,
            stats,
            _task: task,
        }
    }

    pub fn send(&self, item: StorageItem) {
        self.stats
            .buffered
            .fetch_add(item.samples() as u64, Ordering::Relaxed);
        let _ = self.items.send(item);
    }

    /// Where storage is now (None while it is down or restarting).
    pub fn set_storage(&self, storage: Option<ActorRef<StorageMsg>>) {
        self.storage.send_if_modified(|current| {
            let changed =
                current.as_ref().map(|s| s.get_id()) != storage.as_ref().map(|s| s.get_id());
            if changed {
                *current = storage;
            }
            changed
        });
    }

    pub fn stats(&self) -> &ForwardStats {
        &self.stats
    }
}

async fn run(
    mut items: mpsc::UnboundedReceiver<StorageItem>,
    mut storage: watch::Receiver<Option<ActorRef<StorageMsg>>>,
    stats: Arc<ForwardStats>,
) {
    let mut queue: VecDeque<StorageItem> = VecDeque::new();
    let mut queued_samples = 0usize;
    let mut overflowing = false;
    let mut failing = false;
    let mut retry = RETRY_INITIAL;
    loop {
        while let Ok(item) = items.try_recv() {
            queued_samples += item.samples();
            queue.push_back(item);
        }
        // Bounded: drop the oldest samples (commands are never dropped).
        while queued_samples > MAX_BUFFERED_SAMPLES {
            let Some(index) = queue
                .iter()
                .position(|i| matches!(i, StorageItem::Samples(_)))
            else {
                break;
            };
            if let Some(dropped) = queue.remove(index) {
                let n = dropped.samples();
                queued_samples -= n;
                stats.buffered.fetch_sub(n as u64, Ordering::Relaxed);
                stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                if !overflowing {
                    overflowing = true;
                    warn!(
                        event = "storage_buffer_overflow",
                        limit = MAX_BUFFERED_SAMPLES,
                        "storage is unavailable and the buffer is full: the oldest samples are dropped (counted)"
                    );
                }
            }
        }
        let target = storage.borrow().clone();
        let Some(target) = target.filter(|_| !queue.is_empty()) else {
            tokio::select! {
                item = items.recv() => match item {
                    Some(item) => {
                        queued_samples += item.samples();
                        queue.push_back(item);
                    }
                    None => return,
                },
                changed = storage.changed() => if changed.is_err() { return },
            }
            continue;
        };
        let Some(front) = queue.pop_front() else {
            continue;
        };
        let (message_result, item_back): (Result<(), String>, Option<StorageItem>) = match front {
            StorageItem::Command(update) => {
                let result = target
                    .call(
                        |reply| StorageMsg::UpdateCommand {
                            update: update.clone(),
                            reply,
                        },
                        Some(WRITE_TIMEOUT),
                    )
                    .await;
                (flatten(result), Some(StorageItem::Command(update)))
            }
            StorageItem::Samples(first) => {
                // Coalesce the samples queued behind it, up to one append's worth.
                let mut batch: Vec<Sample> = first.to_vec();
                let mut merged = vec![first];
                while let Some(StorageItem::Samples(next)) = queue.front() {
                    if batch.len() + next.len() > MAX_APPEND_SAMPLES {
                        break;
                    }
                    batch.extend(next.iter().cloned());
                    if let Some(StorageItem::Samples(next)) = queue.pop_front() {
                        merged.push(next);
                    }
                }
                let n = batch.len();
                let samples: Arc<[Sample]> = batch.into();
                let result = target
                    .call(
                        |reply| StorageMsg::Append { samples, reply },
                        Some(WRITE_TIMEOUT),
                    )
                    .await;
                let result = flatten(result);
                if result.is_ok() {
                    queued_samples -= n;
                    stats.buffered.fetch_sub(n as u64, Ordering::Relaxed);
                    stats.written.fetch_add(n as u64, Ordering::Relaxed);
                    overflowing = false;
                    (Ok(()), None)
                } else {
                    // Put the pieces back in order (a partial commit is impossible: one
                    // transaction; a repeated commit is harmless: same series + time = one row).
                    for piece in merged.into_iter().rev() {
                        queue.push_front(StorageItem::Samples(piece));
                    }
                    (result, None)
                }
            }
        };
        match message_result {
            Ok(()) => {
                if failing {
                    failing = false;
                    info!(event = "storage_writes_resumed", queued = queued_samples);
                }
                retry = RETRY_INITIAL;
            }
            Err(error) => {
                if let Some(item) = item_back {
                    queue.push_front(item);
                }
                if !failing {
                    failing = true;
                    warn!(
                        event = "storage_write_failed",
                        error = error.as_str(),
                        "samples are kept and retried"
                    );
                }
                // Wait before retrying, but go at once when a new storage instance appears.
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    changed = storage.changed() => if changed.is_err() { return },
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

fn flatten<T, E: std::fmt::Display>(
    result: Result<CallResult<Result<T, E>>, ractor::MessagingErr<StorageMsg>>,
) -> Result<(), String> {
    match result {
        Ok(CallResult::Success(Ok(_))) => Ok(()),
        Ok(CallResult::Success(Err(e))) => Err(e.to_string()),
        Ok(CallResult::Timeout) => Err(format!(
            "storage did not answer within {} s",
            WRITE_TIMEOUT.as_secs()
        )),
        Ok(CallResult::SenderError) => Err("storage stopped while writing".into()),
        Err(_) => Err("storage is not running".into()),
    }
}
