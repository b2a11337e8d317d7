//! The forwarder's tests: buffering, replay in order, batching, draining.

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
    let items =
        |count: usize| (0..count).map(|_| StorageItem::Samples(vec![one.clone(); 1_000].into()));
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

#[tokio::test(start_paused = true)]
async fn a_drain_writes_what_waits_at_once_and_says_what_storage_could_not_take() {
    let (storage, log) = fake_storage(0).await;
    let forwarder = StorageForwarder::new();
    let stats = forwarder.stats.clone();
    forwarder.set_storage(Some(storage.clone()));
    forwarder.send(samples(1));
    until("the first append", || {
        stats.written.load(Ordering::Relaxed) == 3
    })
    .await;
    // Right after an append, the next samples would wait to share a commit.
    forwarder.send(samples(2));
    forwarder.send(samples(3));
    let asked = Instant::now();
    let drained = forwarder.drain(MIN_APPEND_INTERVAL / 2).await;
    assert_eq!(
        drained,
        Drained {
            samples_written: 6,
            samples_left: 0,
            commands_left: 0,
            samples_in_flight: 0,
        }
    );
    assert!(
        asked.elapsed() < MIN_APPEND_INTERVAL / 2,
        "the drain waited {:?}",
        asked.elapsed()
    );
    assert_eq!(
        log.lock().unwrap().clone(),
        vec![
            Write::Appended(times(&[1])),
            Write::Appended(times(&[2, 3]))
        ]
    );
    storage.stop(None);

    // Storage not running: nothing to wait for, and what is left is told.
    let forwarder = StorageForwarder::new();
    forwarder.send(samples(4));
    forwarder.send(command(8));
    let asked = Instant::now();
    let drained = forwarder.drain(Duration::from_secs(5)).await;
    assert_eq!(
        drained,
        Drained {
            samples_written: 0,
            samples_left: 3,
            commands_left: 1,
            samples_in_flight: 0,
        }
    );
    assert_eq!(asked.elapsed(), Duration::ZERO);

    // Storage refusing: the drain ends when its time is up.
    let (refusing, _) = fake_storage(usize::MAX).await;
    forwarder.set_storage(Some(refusing.clone()));
    let asked = Instant::now();
    let drained = forwarder.drain(Duration::from_secs(2)).await;
    assert_eq!((drained.samples_left, drained.commands_left), (3, 1));
    assert!(
        (Duration::from_secs(2)..Duration::from_millis(2_100)).contains(&asked.elapsed()),
        "{:?}",
        asked.elapsed()
    );
    refusing.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_drain_does_not_wait_for_a_storage_that_stopped() {
    let (storage, _log) = fake_storage(0).await;
    let forwarder = StorageForwarder::new();
    forwarder.set_storage(Some(storage.clone()));
    storage.stop(None);
    until("storage stopped", || {
        storage.get_status() == ractor::ActorStatus::Stopped
    })
    .await;
    forwarder.send(samples(1));
    let asked = Instant::now();
    let drained = forwarder.drain(Duration::from_secs(5)).await;
    assert_eq!((drained.samples_written, drained.samples_left), (0, 3));
    assert_eq!(asked.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_drain_cuts_short_the_wait_after_failed_writes() {
    // Storage refuses five appends: the forwarder then waits 4 s before the next try.
    let (storage, log) = fake_storage(5).await;
    let forwarder = StorageForwarder::new();
    forwarder.set_storage(Some(storage.clone()));
    forwarder.send(samples(1));
    until("five refusals", || log.lock().unwrap().len() == 5).await;
    let asked = Instant::now();
    let drained = forwarder.drain(Duration::from_millis(500)).await;
    assert_eq!((drained.samples_written, drained.samples_left), (3, 0));
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    storage.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_drain_ends_when_storage_stops_while_it_waits() {
    let (storage, _log) = fake_storage(usize::MAX).await;
    let forwarder = StorageForwarder::new();
    forwarder.set_storage(Some(storage.clone()));
    forwarder.send(samples(1));
    let stopping = storage.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopping.stop(None);
    });
    let asked = Instant::now();
    let drained = forwarder.drain(Duration::from_secs(5)).await;
    assert_eq!(drained.samples_left, 3);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
}
