//! What the poller hands to storage: buffered while storage is down (bounded, oldest dropped
//! first and counted), replayed in order when it is back, and coalesced into large batches so
//! that one durable commit carries many uplinks.

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
use tokio::sync::{mpsc, watch};
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
        Self::with_limit(MAX_BUFFERED_SAMPLES)
    }

    /// A forwarder that keeps at most `max_buffered` samples while storage is away.
    pub fn with_limit(max_buffered: usize) -> Self {
        let (items, rx) = mpsc::unbounded_channel();
        let (storage, storage_rx) = watch::channel(None);
        let stats = Arc::new(ForwardStats::default());
        let backlog = Backlog::new(max_buffered, stats.clone());
        let task = OwnedTask::spawn(run(rx, storage_rx, backlog));
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
            self.stats.buffered.fetch_sub(n as u64, Ordering::Relaxed);
            self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
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

    /// `n` samples are stored.
    fn written(&mut self, n: usize) {
        self.samples -= n;
        self.stats.buffered.fetch_sub(n as u64, Ordering::Relaxed);
        self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
        self.overflowing = false;
    }
}

async fn run(
    mut items: mpsc::UnboundedReceiver<StorageItem>,
    mut storage: watch::Receiver<Option<ActorRef<StorageMsg>>>,
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
            .filter(|due| *due > Instant::now() && backlog.may_wait())
        {
            // Gather more for one commit; a command or a full batch goes at once.
            tokio::select! {
                _ = tokio::time::sleep_until(due) => last_append = None,
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
        match write(&target, &batch, fold).await {
            Ok(samples) => {
                if matches!(batch, Batch::Samples(_)) {
                    backlog.written(samples);
                    last_append = Some(started);
                }
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
                    _ = tokio::time::sleep(RETRY.nominal_delay(retry_attempt)) => {}
                    changed = storage.changed() => if changed.is_err() { return },
                }
                retry_attempt = retry_attempt.saturating_add(1);
            }
        }
    }
}

/// One storage call; the samples it stored.
async fn write(target: &ActorRef<StorageMsg>, batch: &Batch, fold: Fold) -> Result<usize, String> {
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
            flatten(result).map(|()| 0)
        }
        Batch::Samples(pieces) => {
            let n = batch.samples();
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
            flatten(result).map(|()| n)
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
mod tests {
    use std::sync::Mutex;

    use opcgw::commands::CommandState;
    use opcgw::model::{SampleOrigin, Timestamp, Value};
    use opcgw::storage::AppendReport;
    use ractor::{Actor, ActorProcessingErr};

    use super::*;
    use crate::tree::messages::StorageFailure;

    /// What the fake storage was asked, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum Write {
        Refused(Vec<i64>),
        Appended(Vec<i64>),
        Command(u64),
    }

    /// Storage that refuses its first `refuse` appends and records every write.
    struct FakeStorage;

    struct FakeState {
        log: Arc<Mutex<Vec<Write>>>,
        refuse: usize,
    }

    impl Actor for FakeStorage {
        type Msg = StorageMsg;
        type State = FakeState;
        type Arguments = FakeState;

        async fn pre_start(
            &self,
            _myself: ActorRef<StorageMsg>,
            state: FakeState,
        ) -> Result<FakeState, ActorProcessingErr> {
            Ok(state)
        }

        async fn handle(
            &self,
            _myself: ActorRef<StorageMsg>,
            message: StorageMsg,
            state: &mut FakeState,
        ) -> Result<(), ActorProcessingErr> {
            let mut log = state.log.lock().unwrap_or_else(|e| e.into_inner());
            match message {
                StorageMsg::Append { pieces, reply, .. } => {
                    let values = (pieces.iter().flat_map(|piece| piece.iter()))
                        .map(|s| s.source_time.0)
                        .collect();
                    if state.refuse > 0 {
                        state.refuse -= 1;
                        log.push(Write::Refused(values));
                        let _ = reply.send(Err(StorageFailure::Unavailable("disk full".into())));
                    } else {
                        log.push(Write::Appended(values));
                        let _ = reply.send(Ok(AppendReport::default()));
                    }
                }
                StorageMsg::UpdateCommand { update, reply } => {
                    log.push(Write::Command(update.id));
                    let _ = reply.send(Ok(None));
                }
                _ => {}
            }
            Ok(())
        }
    }

    /// Item `item`'s three samples, told apart by their source times `item*10 + 0..3`.
    fn samples(item: i64) -> StorageItem {
        let samples: Vec<Sample> = (0..3)
            .map(|j| Sample {
                device_id: "dev".into(),
                metric: "m".into(),
                value: Value::Float(1.0),
                source_time: Timestamp(item * 10 + j),
                received_time: Timestamp(0),
                origin: SampleOrigin::Uplink,
            })
            .collect();
        StorageItem::Samples(samples.into())
    }

    fn command(id: u64) -> StorageItem {
        StorageItem::Command(Arc::new(CommandUpdate {
            id,
            device_id: "dev".into(),
            command_name: "c".into(),
            state: CommandState::Sent,
            queue_item_id: None,
            transmitted: false,
            detail: None,
            at: Timestamp(0),
        }))
    }

    fn times(items: &[i64]) -> Vec<i64> {
        items
            .iter()
            .flat_map(|i| (0..3).map(move |j| i * 10 + j))
            .collect()
    }

    /// A fake storage refusing its first `refuse` appends, and the log of what it was asked.
    async fn fake_storage(refuse: usize) -> (ActorRef<StorageMsg>, Arc<Mutex<Vec<Write>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (storage, _join) = Actor::spawn(
            None,
            FakeStorage,
            FakeState {
                log: log.clone(),
                refuse,
            },
        )
        .await
        .expect("fake storage starts");
        (storage, log)
    }

    /// Waits (on the paused clock) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never happened: {what}");
    }

    /// The appends `backlog` is written in when nothing else arrives: the samples in each, and
    /// whether more wait behind it.
    fn append_sizes(backlog: &mut Backlog) -> Vec<(usize, bool)> {
        let mut sizes = Vec::new();
        while let Some(batch) = backlog.next_batch() {
            assert!(
                matches!(batch, Batch::Samples(_)),
                "only samples were queued"
            );
            let catching_up = backlog.catching_up(&batch);
            backlog.samples -= batch.samples();
            sizes.push((batch.samples(), catching_up));
        }
        sizes
    }

    #[test]
    fn a_backlog_is_written_in_larger_appends_and_a_trickle_in_ordinary_ones() {
        let one = match samples(1) {
            StorageItem::Samples(samples) => samples[0].clone(),
            StorageItem::Command(_) => unreachable!(),
        };
        let items = |count: usize| {
            (0..count).map(|_| StorageItem::Samples(vec![one.clone(); 1_000].into()))
        };
        let mut backlog = Backlog::new(MAX_BUFFERED_SAMPLES, Arc::default());
        // 60,000 samples waiting (storage was away, or 10,000 streams replayed their events).
        items(60).for_each(|item| backlog.push(item));
        // Storage is told when more waits behind an append, or when an append is a full
        // one (a catch-up's end): it defers its fold.
        assert_eq!(
            append_sizes(&mut backlog),
            [(MAX_CATCH_UP_SAMPLES, true), (10_000, true)]
        );
        // More than one ordinary append's worth goes in one.
        items(15).for_each(|item| backlog.push(item));
        assert_eq!(append_sizes(&mut backlog), [(15_000, true)]);
        items(9).for_each(|item| backlog.push(item));
        assert_eq!(append_sizes(&mut backlog), [(9_000, false)]);
        // Less: all of it, as before.
        items(4).for_each(|item| backlog.push(item));
        assert_eq!(append_sizes(&mut backlog), [(4_000, false)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_buffer_drops_the_oldest_samples_counted_and_replays_the_rest_in_order() {
        let forwarder = StorageForwarder::with_limit(10);
        let stats = forwarder.stats.clone();
        // Storage is down: 18 samples and a command arrive for a buffer of 10 samples.
        for item in [
            samples(1),
            samples(2),
            samples(3),
            command(7),
            samples(4),
            samples(5),
        ] {
            forwarder.send(item);
        }
        until("the oldest samples are dropped", || {
            stats.dropped.load(Ordering::Relaxed) == 6
        })
        .await;
        assert_eq!(stats.buffered.load(Ordering::Relaxed), 9);
        assert_eq!(stats.written.load(Ordering::Relaxed), 0);

        // Storage comes back, refuses the first append, then takes everything.
        let (storage, log) = fake_storage(1).await;
        forwarder.set_storage(Some(storage.clone()));
        until("the rest is written", || {
            stats.written.load(Ordering::Relaxed) == 9
        })
        .await;

        let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            log,
            vec![
                Write::Refused(times(&[3])),
                Write::Appended(times(&[3])),
                Write::Command(7),
                Write::Appended(times(&[4, 5])),
            ],
            "the oldest two items dropped, the command kept, the rest in order"
        );
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 6);
        assert_eq!(stats.buffered.load(Ordering::Relaxed), 0);
        storage.stop(None);
    }

    #[tokio::test(start_paused = true)]
    async fn uplinks_arriving_one_by_one_share_a_commit_and_commands_do_not_wait() {
        let (storage, log) = fake_storage(0).await;
        let forwarder = StorageForwarder::new();
        let stats = forwarder.stats.clone();
        forwarder.set_storage(Some(storage.clone()));
        // 30 uplinks, one every 10 ms (300 ms), as thousands of streamed devices deliver them.
        for item in 1..=30 {
            forwarder.send(samples(item));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        until("every sample is written", || {
            stats.written.load(Ordering::Relaxed) == 90
        })
        .await;
        let appends = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|w| matches!(w, Write::Appended(_)))
            .count();
        assert!(
            (2..=5).contains(&appends),
            "30 uplinks over 300 ms in {appends} appends (one per {MIN_APPEND_INTERVAL:?} or so)"
        );
        // Right after an append, a command is written at once, and the samples before it.
        log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        forwarder.send(samples(40));
        until("an append", || !log.lock().unwrap().is_empty()).await;
        let appended = Instant::now();
        forwarder.send(samples(41));
        forwarder.send(command(9));
        until("the command", || log.lock().unwrap().len() == 3).await;
        assert!(
            appended.elapsed() < MIN_APPEND_INTERVAL,
            "the command waited {:?}",
            appended.elapsed()
        );
        assert_eq!(
            log.lock().unwrap().clone(),
            vec![
                Write::Appended(times(&[40])),
                Write::Appended(times(&[41])),
                Write::Command(9),
            ]
        );
        storage.stop(None);
    }
}
