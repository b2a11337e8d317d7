//! What the poller hands to storage: buffered while storage is down (bounded, oldest dropped
//! first and counted), replayed in order when it is back, and coalesced into large batches so
//! that one durable commit carries many uplinks. The tree keeps one forwarder for all the
//! poller's instances, so a restart of the poller loses nothing, and drains it when the gateway
//! stops, before storage stops ([`StorageForwarder::drain`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opcgw::backoff::Backoff;
use opcgw::commands::CommandUpdate;
use opcgw::model::Sample;
use opcgw::storage::Fold;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::tree::messages::StorageMsg;
use crate::tree::task::OwnedTask;

/// Samples kept while storage is unavailable (about 20 s of 1,000 devices x 10 metrics/s).
pub const MAX_BUFFERED_SAMPLES: usize = 200_000;
/// Largest batch in one append (one durable commit).
pub const MAX_APPEND_SAMPLES: usize = 10_000;
/// Largest batch while more than that waits (storage was away, or the events ChirpStack
/// replays to 10,000 newly opened streams): a commit rewrites the pages of `latest` and
/// `recent` its series fall on, at 110,000 series most of them whatever the batch's size,
/// so fewer, larger commits catch up sooner.
pub const MAX_CATCH_UP_SAMPLES: usize = 50_000;
/// Shortest time between the starts of two sample appends: what arrives meanwhile joins the
/// next one. Each append is a durable commit (an fsync and a redb commit, ~1-5 ms of CPU
/// whatever its size); 10,000 devices streaming 170 uplinks a second would otherwise commit
/// 170 times a second. Values reach OPC UA and the console without waiting for it; what this
/// bounds is how much a power cut can lose. Commands are never held back.
pub const MIN_APPEND_INTERVAL: Duration = Duration::from_millis(100);
/// A storage call that takes longer is treated as failed (and retried).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of a failed write: 250 ms doubling to 30 s, reset by a success.
const RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));

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
    /// Command updates not yet stored (they are never dropped).
    pub commands: AtomicU64,
    /// Samples of the append storage is working on (part of `buffered`).
    pub in_flight: AtomicU64,
    /// Woken whenever items are written or dropped.
    progress: Notify,
}

impl ForwardStats {
    fn settled(&self) -> bool {
        self.buffered.load(Ordering::Acquire) == 0 && self.commands.load(Ordering::Acquire) == 0
    }
}

/// What [`StorageForwarder::drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Samples stored while draining.
    pub samples_written: u64,
    /// Samples and command updates still not stored when the drain ended (storage not
    /// running, failing, or slower than the time given).
    pub samples_left: u64,
    pub commands_left: u64,
    /// Samples of the append sent to storage and not yet answered when the drain ended (not
    /// in `samples_left`): stored if storage was already writing them (it finishes a request
    /// before it stops, unless it is killed), lost if the request still waited in its queue.
    pub samples_in_flight: u64,
}

pub struct StorageForwarder {
    items: mpsc::UnboundedSender<StorageItem>,
    storage: watch::Sender<Option<ActorRef<StorageMsg>>>,
    /// Set by [`Self::drain`]: write everything at once, without gathering.
    flush: watch::Sender<bool>,
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
        Self::with_limit(MAX_BUFFERED_SAMPLES)
    }

    /// A forwarder that keeps at most `max_buffered` samples while storage is away.
    pub fn with_limit(max_buffered: usize) -> Self {
        let (items, rx) = mpsc::unbounded_channel();
        let (storage, storage_rx) = watch::channel(None);
        let (flush, flush_rx) = watch::channel(false);
        let stats = Arc::new(ForwardStats::default());
        let backlog = Backlog::new(max_buffered, stats.clone());
        let task = OwnedTask::spawn(run(rx, storage_rx, flush_rx, backlog));
        Self {
            items,
            storage,
            flush,
            stats,
            _task: task,
        }
    }

    pub fn send(&self, item: StorageItem) {
        match &item {
            StorageItem::Samples(samples) => self
                .stats
                .buffered
                .fetch_add(samples.len() as u64, Ordering::AcqRel),
            StorageItem::Command(_) => self.stats.commands.fetch_add(1, Ordering::AcqRel),
        };
        let _ = self.items.send(item);
    }

    /// Writes everything waiting now, without gathering more for one commit, and waits until
    /// it is stored, for at most `within`. Gives up at once while storage is not running (a
    /// stopping gateway cannot wait for it to come back). What the poller hands over
    /// meanwhile is written too.
    pub async fn drain(&self, within: Duration) -> Drained {
        let deadline = Instant::now() + within;
        let written_before = self.stats.written.load(Ordering::Acquire);
        self.flush.send_replace(true);
        loop {
            let progress = self.stats.progress.notified();
            tokio::pin!(progress);
            // Registered before the check, so a write in between is not missed.
            progress.as_mut().enable();
            if self.stats.settled() || !self.storage_running() {
                break;
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                break;
            }
        }
        self.flush.send_replace(false);
        // `buffered` before `in_flight`: the writer clears `in_flight` before it takes a
        // stored batch off `buffered`, so a write ending in between is counted as left (never
        // as neither).
        let buffered = self.stats.buffered.load(Ordering::Acquire);
        let in_flight = self.stats.in_flight.load(Ordering::Acquire);
        Drained {
            samples_written: self.stats.written.load(Ordering::Acquire) - written_before,
            samples_left: buffered.saturating_sub(in_flight),
            commands_left: self.stats.commands.load(Ordering::Acquire),
            samples_in_flight: in_flight,
        }
    }

    /// Whether the storage instance known here runs (one that stopped is as good as none).
    fn storage_running(&self) -> bool {
        self.storage
            .borrow()
            .as_ref()
            .is_some_and(|storage| ractor::ACTIVE_STATES.contains(&storage.get_status()))
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

    /// [`Self::drain`], logged: what was stored, or what is lost because storage could not
    /// take it before the gateway stopped.
    pub async fn drain_at_stop(&self, within: Duration) -> Drained {
        let started = Instant::now();
        let drained = self.drain(within).await;
        if drained.samples_left > 0 || drained.commands_left > 0 || drained.samples_in_flight > 0 {
            warn!(
                event = "storage_buffer_lost",
                samples = drained.samples_left,
                commands = drained.commands_left,
                written = drained.samples_written,
                within_ms = within.as_millis() as u64,
                in_flight = drained.samples_in_flight,
                "the gateway stopped before storage confirmed these (not running, failing or too slow; those in flight were sent and not yet answered: storage handles what waits in its queue before it stops, within its share of the budget); raise supervisor.shutdown_timeout_seconds if storage was only slow"
            );
        } else if drained.samples_written > 0 {
            info!(
                event = "storage_buffer_flushed",
                samples = drained.samples_written,
                ms = started.elapsed().as_millis() as u64
            );
        }
        drained
    }

    pub fn stats(&self) -> &ForwardStats {
        &self.stats
    }
}

/// Items waiting for storage, in order, with the samples among them bounded.
struct Backlog {
    queue: VecDeque<StorageItem>,
    samples: usize,
    limit: usize,
    /// Samples were dropped since the last successful write (warned about once).
    overflowing: bool,
    stats: Arc<ForwardStats>,
}

/// What one storage call carries: a command, or consecutive sample items merged into one
/// append (the pieces are kept to put them back in order if the append fails).
enum Batch {
    Command(Arc<CommandUpdate>),
    Samples(Vec<Arc<[Sample]>>),
}

impl Batch {
    fn samples(&self) -> usize {
        match self {
            Self::Command(_) => 0,
            Self::Samples(pieces) => pieces.iter().map(|piece| piece.len()).sum(),
        }
    }
}

impl Backlog {
    fn new(limit: usize, stats: Arc<ForwardStats>) -> Self {
        Self {
            queue: VecDeque::new(),
            samples: 0,
            limit,
            overflowing: false,
            stats,
        }
    }

    fn push(&mut self, item: StorageItem) {
        self.samples += item.samples();
        self.queue.push_back(item);
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the next write may wait for more samples: no command is queued and the
    /// samples would not fill one append.
    fn may_wait(&self) -> bool {
        self.samples < MAX_APPEND_SAMPLES
            && !self
                .queue
                .iter()
                .any(|i| matches!(i, StorageItem::Command(_)))
    }

    /// Drops the oldest samples beyond the limit (commands are never dropped), counted.
    fn trim(&mut self) {
        while self.samples > self.limit {
            let Some(index) = self
                .queue
                .iter()
                .position(|i| matches!(i, StorageItem::Samples(_)))
            else {
                break;
            };
            let Some(dropped) = self.queue.remove(index) else {
                break;
            };
            let n = dropped.samples();
            self.samples -= n;
            self.stats.buffered.fetch_sub(n as u64, Ordering::AcqRel);
            self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
            self.stats.progress.notify_waiters();
            if !self.overflowing {
                self.overflowing = true;
                warn!(
                    event = "storage_buffer_overflow",
                    limit = self.limit,
                    "storage is unavailable and the buffer is full: the oldest samples are dropped (counted)"
                );
            }
        }
    }

    /// The front item, with the sample items queued behind it up to one append's worth
    /// (the whole backlog up to [`MAX_CATCH_UP_SAMPLES`] while more than one append waits).
    fn next_batch(&mut self) -> Option<Batch> {
        let limit = self.samples.clamp(MAX_APPEND_SAMPLES, MAX_CATCH_UP_SAMPLES);
        match self.queue.pop_front()? {
            StorageItem::Command(update) => Some(Batch::Command(update)),
            StorageItem::Samples(first) => {
                let mut total = first.len();
                let mut pieces = vec![first];
                while let Some(StorageItem::Samples(next)) = self.queue.front() {
                    if total + next.len() > limit {
                        break;
                    }
                    total += next.len();
                    if let Some(StorageItem::Samples(next)) = self.queue.pop_front() {
                        pieces.push(next);
                    }
                }
                Some(Batch::Samples(pieces))
            }
        }
    }

    /// Whether `batch` (just taken) is part of a catch-up, for which storage defers its
    /// fold: samples still wait behind it, or it is larger than an ordinary append. The
    /// second holds at a catch-up's end, where the queue empties between two batches while
    /// the event streams, held back, still have events to replay: a fold there (a range of
    /// series, 0.3-1.4 s at 110,000 series) kept them held for seconds.
    fn catching_up(&self, batch: &Batch) -> bool {
        self.samples > batch.samples() || batch.samples() >= MAX_APPEND_SAMPLES
    }

    /// A batch that could not be written goes back to the front, in order.
    fn put_back(&mut self, batch: Batch) {
        match batch {
            Batch::Command(update) => self.queue.push_front(StorageItem::Command(update)),
            Batch::Samples(pieces) => {
                for piece in pieces.into_iter().rev() {
                    self.queue.push_front(StorageItem::Samples(piece));
                }
            }
        }
    }

    /// `batch` is stored.
    fn written(&mut self, batch: &Batch) {
        match batch {
            Batch::Command(_) => {
                self.stats.commands.fetch_sub(1, Ordering::AcqRel);
            }
            Batch::Samples(_) => {
                let n = batch.samples();
                self.samples -= n;
                self.stats.written.fetch_add(n as u64, Ordering::AcqRel);
                self.stats.buffered.fetch_sub(n as u64, Ordering::AcqRel);
                self.overflowing = false;
            }
        }
        self.stats.progress.notify_waiters();
    }
}

async fn run(
    mut items: mpsc::UnboundedReceiver<StorageItem>,
    mut storage: watch::Receiver<Option<ActorRef<StorageMsg>>>,
    mut flush: watch::Receiver<bool>,
    mut backlog: Backlog,
) {
    let mut failing = false;
    let mut retry_attempt = 0u32;
    // When the last sample append started (only successful ones pace the next).
    let mut last_append: Option<Instant> = None;
    loop {
        while let Ok(item) = items.try_recv() {
            backlog.push(item);
        }
        backlog.trim();
        let target = storage.borrow().clone();
        let Some(target) = target.filter(|_| !backlog.is_empty()) else {
            // Nothing to write, or nowhere to write it: wait for either to change.
            tokio::select! {
                item = items.recv() => match item {
                    Some(item) => backlog.push(item),
                    None => return,
                },
                changed = storage.changed() => if changed.is_err() { return },
            }
            continue;
        };
        if let Some(due) = last_append
            .map(|at| at + MIN_APPEND_INTERVAL)
            .filter(|due| *due > Instant::now() && backlog.may_wait() && !*flush.borrow())
        {
            // Gather more for one commit; a command, a full batch or a drain goes at once.
            tokio::select! {
                _ = tokio::time::sleep_until(due) => last_append = None,
                _ = flush.wait_for(|now| *now) => {}
                item = items.recv() => match item {
                    Some(item) => backlog.push(item),
                    None => return,
                },
                changed = storage.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let Some(batch) = backlog.next_batch() else {
            continue;
        };
        let started = Instant::now();
        // A catch-up's batches are stored first, their fold after.
        let fold = if backlog.catching_up(&batch) {
            Fold::Deferred
        } else {
            Fold::WhenDue
        };
        backlog
            .stats
            .in_flight
            .store(batch.samples() as u64, Ordering::Release);
        let written = write(&target, &batch, fold).await;
        backlog.stats.in_flight.store(0, Ordering::Release);
        match written {
            Ok(()) => {
                if matches!(batch, Batch::Samples(_)) {
                    last_append = Some(started);
                }
                backlog.written(&batch);
                if failing {
                    failing = false;
                    info!(event = "storage_writes_resumed", queued = backlog.samples);
                }
                retry_attempt = 0;
            }
            Err(error) => {
                // A partial commit is impossible (one transaction) and a repeated one is
                // harmless (same series + time = one row): the whole batch is retried.
                backlog.put_back(batch);
                // A drain looks again whether storage still runs.
                backlog.stats.progress.notify_waiters();
                if !failing {
                    failing = true;
                    warn!(
                        event = "storage_write_failed",
                        error = error.as_str(),
                        "samples are kept and retried"
                    );
                }
                // Wait before retrying, but go at once when a new storage instance appears;
                // while draining (the gateway stops), no longer than the first delay.
                let draining = *flush.borrow();
                let delay = RETRY.nominal_delay(if draining { 0 } else { retry_attempt });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    changed = storage.changed() => if changed.is_err() { return },
                    _ = flush.wait_for(|now| *now), if !draining => {}
                }
                retry_attempt = retry_attempt.saturating_add(1);
            }
        }
    }
}

/// One storage call.
async fn write(target: &ActorRef<StorageMsg>, batch: &Batch, fold: Fold) -> Result<(), String> {
    match batch {
        Batch::Command(update) => {
            let result = target
                .call(
                    |reply| StorageMsg::UpdateCommand {
                        update: update.clone(),
                        reply,
                    },
                    Some(WRITE_TIMEOUT),
                )
                .await;
            flatten(result)
        }
        Batch::Samples(pieces) => {
            let result = target
                .call(
                    |reply| StorageMsg::Append {
                        pieces: pieces.clone(),
                        fold,
                        reply,
                    },
                    Some(WRITE_TIMEOUT),
                )
                .await;
            flatten(result)
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

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
