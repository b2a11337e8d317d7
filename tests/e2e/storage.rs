//! The storage actor inside the real tree, against the simulator: crash isolation, a locked
//! database, replay of what the poller buffered, and commands that survive in the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opcgw::chirpstack::client::DeviceSummary;
use opcgw::commands::{CommandState, NewCommand};
use opcgw::config::AppConfig;
use opcgw::model::Timestamp;
use opcgw::storage::{CommandFilter, HistoryQuery, ReadSlot, Store};
use opcgw_actors::duties::poller::PollerCounters;
use opcgw_actors::duties::storage::{device_health_key, StorageActor, StorageArgs};
use opcgw_actors::tree::gateway::Tree;
use opcgw_actors::tree::messages::{
    Common, ConfigUpdate, Feed, PollerMsg, StorageFailure, StorageMsg,
};
use opcgw_actors::tree::storage_client::StorageClient;
use opcgw_actors::tree::supervisor::{ChildState, ChildStatus};
use ractor::Actor;

use crate::poller::{gateway_config, simulator};

fn tree_config(
    sim: &opcgw::chirpstack::simulator::SimulatorHandle,
    dir: &std::path::Path,
) -> AppConfig {
    gateway_config(sim, |c| {
        c.storage.database_path = dir.join("opcgw.redb");
        c.supervisor.backoff_initial_ms = 50;
        c.supervisor.backoff_max_ms = 200;
        c.control.enabled = false;
    })
}

async fn start_tree(mut config: AppConfig) -> Tree {
    crate::logs::capture();
    let options = crate::support::tree_options(&mut config);
    Tree::start(Arc::new(config), options)
        .await
        .expect("tree starts")
}

async fn client(tree: &Tree) -> StorageClient {
    StorageClient::new(
        tree.handle.lookup::<StorageMsg>("storage").await,
        Duration::from_secs(2),
    )
}

async fn poller_counters(tree: &Tree) -> PollerCounters {
    let poller = tree
        .handle
        .lookup::<PollerMsg>("poller")
        .await
        .expect("poller running");
    poller
        .call(PollerMsg::Counters, Some(Duration::from_secs(2)))
        .await
        .unwrap()
        .success_or(())
        .unwrap()
}

/// The supervisor's view of the child `name`.
async fn child_status(tree: &Tree, name: &str) -> Option<ChildStatus> {
    tree.handle.status().await?.child(name).cloned()
}

async fn history_rows(client: &StorageClient) -> u64 {
    client.counts().await.map(|c| c.history_rows).unwrap_or(0)
}

async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every `temperature` row of `device` since `since`, oldest first, through paged queries.
async fn temperature_times(
    client: &StorageClient,
    device: &str,
    since: Timestamp,
) -> Vec<Timestamp> {
    let mut times = Vec::new();
    let mut resume = None;
    loop {
        let query = HistoryQuery {
            device_id: device.into(),
            metric: "temperature".into(),
            start: since,
            end: Timestamp::now().saturating_add(Duration::from_secs(60)),
            limit: 1_000,
            reverse: false,
            resume,
        };
        let page = client.history(query).await.expect("history");
        times.extend(page.rows.iter().map(|r| r.time));
        match page.resume {
            Some(next) => resume = Some(next),
            None => return times,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_panic_loses_nothing_and_queries_fail_fast_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(|c| {
        c.uplink_interval = Duration::from_millis(100);
        c.devices_per_application = 2;
    })
    .await;
    let started = Timestamp::now();
    let tree = start_tree(tree_config(&sim, dir.path())).await;
    let device = sim.world().devices().next().unwrap().dev_eui.clone();
    let before = client(&tree).await;
    wait_until(Duration::from_secs(10), "rows in storage", || async {
        history_rows(&before).await > 20
    })
    .await;

    // Crash storage while uplinks keep coming.
    let crashed = Timestamp::now();
    let storage = tree.handle.lookup::<StorageMsg>("storage").await.unwrap();
    storage
        .cast(StorageMsg::Common(Common::InjectPanic("test".into())))
        .unwrap();
    // Callers holding the dead instance get an error at once, not a hang.
    let asked = Instant::now();
    let answer = before.counts().await;
    assert!(
        matches!(answer, Err(StorageFailure::Unavailable(_))),
        "{answer:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "took {:?}",
        asked.elapsed()
    );

    wait_until(Duration::from_secs(10), "storage restarted", || async {
        child_status(&tree, "storage")
            .await
            .is_some_and(|c| c.restarts == 1 && c.state == ChildState::Running)
    })
    .await;
    let after = client(&tree).await;
    // The poller's buffer drains into the new instance.
    wait_until(Duration::from_secs(10), "buffer drained", || async {
        let c = poller_counters(&tree).await;
        c.storage_buffered == 0 && c.storage_written > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counters = poller_counters(&tree).await;
    assert_eq!(counters.storage_dropped, 0, "{counters:?}");

    // No gap in the device's history across the crash: uplinks every 100 ms. Wait until the
    // history reaches half a second past the crash.
    wait_until(Duration::from_secs(10), "rows after the crash", || async {
        temperature_times(&after, &device, started)
            .await
            .iter()
            .any(|t| t.as_micros() > crashed.as_micros() + 500_000)
    })
    .await;
    let times = temperature_times(&after, &device, started).await;
    assert!(
        times.iter().any(|t| *t < crashed)
            && times
                .iter()
                .any(|t| t.as_micros() > crashed.as_micros() + 500_000),
        "{} rows",
        times.len()
    );
    let widest = times
        .windows(2)
        .map(|w| w[1].as_micros() - w[0].as_micros())
        .max()
        .unwrap();
    assert!(
        widest < 400_000,
        "a gap of {widest} µs in the history across the crash"
    );
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_retried_while_the_poller_buffers_and_then_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(|c| {
        c.uplink_interval = Duration::from_millis(100);
        c.devices_per_application = 1;
    })
    .await;
    let config = tree_config(&sim, dir.path());
    // Another owner holds the database.
    let squatter = Store::open(&config.storage.database_path).expect("open");
    let started = Timestamp::now();
    let tree = start_tree(config).await;
    wait_until(Duration::from_secs(10), "several failed starts", || async {
        child_status(&tree, "storage")
            .await
            .is_some_and(|c| c.start_failures >= 3)
    })
    .await;
    let status = tree.handle.status().await.unwrap();
    let storage = status.child("storage").unwrap();
    let error = storage.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("in use by another opcgw")
            && error.contains(&std::process::id().to_string()),
        "{error}"
    );
    assert_eq!(status.child("poller").unwrap().state, ChildState::Running);
    // Queries answer "unavailable" at once.
    let answer = client(&tree).await.counts().await;
    assert!(
        matches!(answer, Err(StorageFailure::Unavailable(_))),
        "{answer:?}"
    );
    wait_until(Duration::from_secs(10), "samples buffered", || async {
        poller_counters(&tree).await.storage_buffered > 5
    })
    .await;
    let locked_until = Timestamp::now();

    drop(squatter);
    wait_until(Duration::from_secs(10), "storage up", || async {
        child_status(&tree, "storage")
            .await
            .is_some_and(|c| c.state == ChildState::Running)
    })
    .await;
    wait_until(Duration::from_secs(10), "buffer replayed", || async {
        poller_counters(&tree).await.storage_buffered == 0
    })
    .await;
    let device = sim.world().devices().next().unwrap().dev_eui.clone();
    let times = temperature_times(&client(&tree).await, &device, started).await;
    assert!(
        times.iter().any(|t| *t < locked_until),
        "values from the locked period were replayed: {} rows",
        times.len()
    );
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_command_is_dispatched_and_its_final_state_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let tree = start_tree(tree_config(&sim, dir.path())).await;
    let device = sim.world().devices().next().unwrap().dev_eui.clone();
    wait_until(Duration::from_secs(5), "streams", || async {
        sim.open_streams() == 1
    })
    .await;
    let storage = client(&tree).await;
    let record = storage
        .enqueue_command(NewCommand {
            downlink: opcgw::commands::Downlink {
                device_id: device.clone(),
                command_name: "setpoint".into(),
                f_port: 10,
                confirmed: true,
                payload: vec![42],
            },
            requested_by: "test".into(),
        })
        .await
        .expect("queued");
    assert_eq!(record.state, CommandState::Queued);
    wait_until(
        Duration::from_secs(10),
        "acknowledged in storage",
        || async {
            let filter = CommandFilter {
                device_id: Some(device.clone()),
                states: None,
                limit: 10,
            };
            storage
                .commands(filter)
                .await
                .unwrap_or_default()
                .first()
                .is_some_and(|c| c.state == CommandState::Acknowledged && c.transmitted)
        },
    )
    .await;
    let downlinks = sim.downlinks();
    assert_eq!(downlinks.len(), 1);
    assert_eq!(
        (
            downlinks[0].f_port,
            downlinks[0].confirmed,
            downlinks[0].data.clone()
        ),
        (10, true, vec![42])
    );
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_retention_applies_at_once() {
    use opcgw::model::{Sample, SampleOrigin, Value};
    use opcgw_actors::tree::messages::ConfigUpdate;
    use opcgw_actors::tree::supervisor::SupervisorMsg;

    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let mut config = tree_config(&sim, dir.path());
    config.storage.retention_days = 30;
    let day = Duration::from_secs(86_400);
    let now = Timestamp::now();
    {
        let mut store = Store::open(&config.storage.database_path).unwrap();
        let old = |age_days: u32| Sample {
            device_id: "old-device".into(),
            metric: "level".into(),
            value: Value::Float(f64::from(age_days)),
            source_time: now.saturating_sub(day * age_days),
            received_time: now,
            origin: SampleOrigin::Uplink,
        };
        store.append(&[old(20), old(10), old(1)]).unwrap();
        // A command finished 20 days ago goes with the old history.
        let long_ago = now.saturating_sub(day * 20);
        let command = NewCommand {
            downlink: opcgw::commands::Downlink {
                device_id: "old-device".into(),
                command_name: "valve".into(),
                f_port: 10,
                confirmed: true,
                payload: vec![1],
            },
            requested_by: "test".into(),
        };
        let record = store.enqueue_command(command, long_ago, 100).unwrap();
        let update = opcgw::commands::CommandUpdate {
            id: record.id,
            device_id: "old-device".into(),
            command_name: "Valve".into(),
            state: CommandState::Acknowledged,
            queue_item_id: Some("q".into()),
            transmitted: true,
            detail: None,
            at: long_ago,
        };
        store.update_command(&update).unwrap();
    }
    let tree = start_tree(config.clone()).await;
    let rows = |tree: &Tree| {
        let handle = tree.handle.clone();
        async move {
            let storage = StorageClient::new(
                handle.lookup::<StorageMsg>("storage").await,
                Duration::from_secs(2),
            );
            let query = HistoryQuery {
                device_id: "old-device".into(),
                metric: "level".into(),
                start: Timestamp::from_micros(0),
                end: Timestamp::now(),
                limit: 100,
                reverse: false,
                resume: None,
            };
            storage
                .history(query)
                .await
                .map(|p| p.rows.len())
                .unwrap_or(usize::MAX)
        }
    };
    // Once storage answers (it may still be starting on a loaded machine), give a wrong prune
    // the time to happen before checking that nothing was pruned.
    wait_until(Duration::from_secs(10), "storage answers", || async {
        rows(&tree).await != usize::MAX
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rows(&tree).await, 3, "30 days keep everything");
    let listed = StorageClient::new(
        tree.handle.lookup::<StorageMsg>("storage").await,
        Duration::from_secs(2),
    )
    .commands(CommandFilter {
        device_id: None,
        states: None,
        limit: 10,
    })
    .await
    .unwrap();
    assert_eq!(listed.len(), 1, "30 days keep the finished command too");

    let mut shorter = config.clone();
    shorter.storage.retention_days = 14;
    let diff = opcgw::config::ConfigDiff::between(&config, &shorter);
    let update = ConfigUpdate {
        config: Arc::new(shorter),
        diff: Arc::new(diff),
        generation: 1,
    };
    tree.handle
        .supervisor
        .cast(SupervisorMsg::Broadcast(update))
        .unwrap();
    // Well before the first scheduled pass (5 s after start): the change itself triggers it.
    wait_until(
        Duration::from_secs(2),
        "the 20-day-old row pruned",
        || async { rows(&tree).await == 2 },
    )
    .await;
    let storage = StorageClient::new(
        tree.handle.lookup::<StorageMsg>("storage").await,
        Duration::from_secs(2),
    );
    wait_until(
        Duration::from_secs(2),
        "the finished 20-day-old command pruned",
        || async {
            storage
                .commands(CommandFilter {
                    device_id: None,
                    states: None,
                    limit: 10,
                })
                .await
                .is_ok_and(|c| c.is_empty())
        },
    )
    .await;
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_of_ten_thousand_devices_is_kept_one_document_each() {
    // One document for every device outgrew the status bound at ~6,500 devices and failed
    // every poll cycle (`storage_status_write_failed`); each device now has its own.
    crate::logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let mut config = AppConfig::default();
    config.storage.database_path = path.clone();
    let args = StorageArgs {
        config: ConfigUpdate::initial(Arc::new(config)),
        reads: ReadSlot::new(),
    };
    let (storage, join) = Actor::spawn(None, StorageActor, args)
        .await
        .expect("storage starts");
    let client = StorageClient::new(Some(storage.clone()), Duration::from_secs(10));
    let device = |i: usize, rssi: f32| DeviceSummary {
        dev_eui: format!("{i:016x}"),
        name: format!("sensor {i}"),
        last_seen: Some(Timestamp::from_micros(1_700_000_000_000_000)),
        margin: Some(7),
        battery_level: Some(88.5),
        external_power_source: false,
        rssi: Some(rssi),
        snr: Some(9.25),
    };
    let fleet: Vec<DeviceSummary> = (0..10_000).map(|i| device(i, -80.0)).collect();
    storage
        .cast(StorageMsg::Feed(Feed::DeviceHealth(fleet.into())))
        .unwrap();
    // A later cycle with one device changed.
    let changed = vec![device(42, -101.5), device(43, -80.0)];
    storage
        .cast(StorageMsg::Feed(Feed::DeviceHealth(changed.into())))
        .unwrap();
    client
        .counts()
        .await
        .expect("storage answers after both feeds");
    storage.stop(None);
    join.await.unwrap();

    assert!(
        crate::logs::events("storage_status_write_failed", "").is_empty(),
        "{}",
        crate::logs::text()
    );
    let store = Store::open(&path).unwrap();
    for i in [0, 43, 9_999] {
        let json = store
            .status(&device_health_key(&format!("{i:016x}")))
            .unwrap()
            .unwrap_or_else(|| panic!("no health stored for device {i}"));
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["rssi"], -80.0, "{json}");
        assert_eq!(json["battery_level"], 88.5, "{json}");
    }
    let json = store
        .status(&device_health_key(&format!("{:016x}", 42)))
        .unwrap()
        .unwrap();
    assert!(json.contains("-101.5"), "{json}");
}

/// While the storage actor commits a large batch, a history read through the tree's read slot
/// answers at once; through the mailbox it waits for the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_reads_do_not_wait_behind_a_commit() {
    crate::logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::default();
    config.storage.database_path = dir.path().join("opcgw.redb");
    let reads = ReadSlot::new();
    let args = StorageArgs {
        config: ConfigUpdate::initial(Arc::new(config)),
        reads: reads.clone(),
    };
    let (storage, join) = Actor::spawn(None, StorageActor, args)
        .await
        .expect("storage starts");
    let through_mailbox = StorageClient::new(Some(storage.clone()), Duration::from_secs(60));
    let direct = through_mailbox.clone().with_reads(reads);
    let sample = |metric: &str, i: i64| opcgw::model::Sample {
        device_id: "dev".into(),
        metric: metric.into(),
        value: opcgw::model::Value::Int(i),
        source_time: Timestamp(1_700_000_000_000_000 + i * 1_000_000),
        received_time: Timestamp(1_700_000_000_000_000 + i * 1_000_000),
        origin: opcgw::model::SampleOrigin::Uplink,
    };
    let append = |samples: Vec<opcgw::model::Sample>| {
        let storage = storage.clone();
        async move {
            storage
                .call(
                    |reply| StorageMsg::Append {
                        pieces: vec![samples.into()],
                        fold: opcgw::storage::Fold::WhenDue,
                        reply,
                    },
                    Some(Duration::from_secs(60)),
                )
                .await
                .expect("storage runs")
                .success_or(())
                .expect("an answer")
                .expect("stored")
        }
    };
    append((0..100).map(|i| sample("level", i)).collect()).await;
    let query = HistoryQuery {
        device_id: "dev".into(),
        metric: "level".into(),
        start: Timestamp(0),
        end: Timestamp(i64::MAX),
        limit: 1_000,
        reverse: false,
        resume: None,
    };
    // A batch large enough to keep the actor busy for a while (about a second in a debug build).
    let batch: Vec<_> = (0..20_000).map(|i| sample("flow", i)).collect();
    let busy = tokio::spawn(append(batch));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let page = direct.history(query.clone()).await.expect("direct read");
    let direct_took = started.elapsed();
    assert_eq!(page.rows.len(), 100);
    assert!(
        !busy.is_finished(),
        "the commit ended before the direct read ({direct_took:?}): make the batch larger"
    );
    let started = Instant::now();
    through_mailbox.history(query).await.expect("mailbox read");
    let mailbox_took = started.elapsed();
    assert!(
        busy.is_finished(),
        "the mailbox read was answered before the commit ended"
    );
    eprintln!("history of 100 rows during a 20,000-sample commit: direct {direct_took:?}, through the mailbox {mailbox_took:?}");
    assert!(
        direct_took * 5 < mailbox_took,
        "direct {direct_took:?} vs through the mailbox {mailbox_took:?}"
    );
    assert_eq!(busy.await.unwrap().written, 20_000);
    storage.stop(None);
    join.await.unwrap();
}

/// Storage is locked by another owner from the start: the poller buffers what arrives.
async fn buffering_tree(
    sim: &opcgw::chirpstack::simulator::SimulatorHandle,
    dir: &std::path::Path,
) -> (Tree, Store) {
    let config = tree_config(sim, dir);
    let squatter = Store::open(&config.storage.database_path).expect("open");
    let tree = start_tree(config).await;
    wait_until(Duration::from_secs(10), "samples buffered", || async {
        poller_counters(&tree).await.storage_buffered > 5
    })
    .await;
    (tree, squatter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_poller_buffered_survives_its_crash_and_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    // No replay on a new stream: what the crashed poller held is nowhere else.
    let sim = simulator(|c| {
        c.uplink_interval = Duration::from_millis(100);
        c.devices_per_application = 1;
        c.event_history = 0;
    })
    .await;
    let started = Timestamp::now();
    let (tree, squatter) = buffering_tree(&sim, dir.path()).await;
    // A second and a half of uplinks waits for storage.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let crashed = Timestamp::now();
    let poller = tree.handle.lookup::<PollerMsg>("poller").await.unwrap();
    poller
        .cast(PollerMsg::Common(Common::InjectPanic("test".into())))
        .unwrap();
    wait_until(Duration::from_secs(10), "poller restarted", || async {
        child_status(&tree, "poller")
            .await
            .is_some_and(|c| c.restarts == 1 && c.state == ChildState::Running)
    })
    .await;

    drop(squatter);
    wait_until(Duration::from_secs(10), "buffer replayed", || async {
        let c = poller_counters(&tree).await;
        c.storage_buffered == 0 && c.storage_written > 0
    })
    .await;
    let device = sim.world().devices().next().unwrap().dev_eui.clone();
    let before_crash: Vec<Timestamp> = temperature_times(&client(&tree).await, &device, started)
        .await
        .into_iter()
        .filter(|t| *t < crashed)
        .collect();
    // ~15 uplinks before the crash, all stored, with no gap.
    assert!(before_crash.len() >= 10, "{} rows", before_crash.len());
    let widest = before_crash
        .windows(2)
        .map(|w| w[1].as_micros() - w[0].as_micros())
        .max()
        .unwrap();
    assert!(widest < 400_000, "a gap of {widest} µs before the crash");
    assert_eq!(poller_counters(&tree).await.storage_dropped, 0);
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_storage_could_not_take_before_the_gateway_stopped_is_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(|c| {
        c.uplink_interval = Duration::from_millis(100);
        c.devices_per_application = 1;
    })
    .await;
    let (tree, squatter) = buffering_tree(&sim, dir.path()).await;
    let buffered = poller_counters(&tree).await.storage_buffered;
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    drop(squatter);
    let lost = crate::logs::events("storage_buffer_lost", "");
    assert_eq!(lost.len(), 1, "{lost:?}");
    let samples: u64 = lost[0]
        .split_whitespace()
        .find_map(|field| field.strip_prefix("samples="))
        .and_then(|n| n.parse().ok())
        .expect("a sample count");
    assert!(
        samples >= buffered,
        "{samples} lost, {buffered} buffered before"
    );
    sim.shutdown().await;
}

/// Appends still waiting in storage's mailbox when the gateway stops are stored and answered:
/// storage handles its queue before it stops (a plain stop is handled before queued messages,
/// which would be dropped unanswered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_waiting_in_storage_when_the_gateway_stops_are_stored() {
    use opcgw::model::{Sample, SampleOrigin, Value};
    const APPENDS: usize = 12;
    const EACH: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let tree = start_tree(tree_config(&sim, dir.path())).await;
    let storage = tree
        .handle
        .lookup::<StorageMsg>("storage")
        .await
        .expect("storage running");
    let start = Timestamp::now().0 - (APPENDS * EACH) as i64 * 1_000_000;
    let mut answers = Vec::with_capacity(APPENDS);
    for append in 0..APPENDS {
        let samples: Arc<[Sample]> = (0..EACH)
            .map(|i| {
                let at = Timestamp(start + (append * EACH + i) as i64 * 1_000_000);
                Sample {
                    device_id: "queued".into(),
                    metric: format!("m{}", i % 10).into(),
                    value: Value::Int(i as i64),
                    source_time: at,
                    received_time: at,
                    origin: SampleOrigin::Uplink,
                }
            })
            .collect();
        let (reply, answer) = ractor::concurrency::oneshot();
        storage
            .cast(StorageMsg::Append {
                pieces: vec![samples],
                fold: opcgw::storage::Fold::WhenDue,
                reply: reply.into(),
            })
            .expect("storage takes appends");
        answers.push(answer);
    }
    // All of them queued at once: storage is still working through them when its stop comes.
    assert!(tree.handle.shutdown(Duration::from_secs(30)).await);
    sim.shutdown().await;
    let mut answered = 0;
    for answer in answers {
        if let Ok(Ok(report)) = answer.await {
            assert_eq!(report.written, EACH);
            answered += 1;
        }
    }
    assert_eq!(answered, APPENDS, "appends answered before the stop");
    drop(tree);
    // The stopped actor's file handle goes with its state, just after the stop is reported.
    let path = dir.path().join("opcgw.redb");
    let mut opened = None;
    wait_until(
        Duration::from_secs(5),
        "the stopped storage to let go of the file",
        || {
            opened = Store::open(&path).ok();
            std::future::ready(opened.is_some())
        },
    )
    .await;
    let store = opened.expect("opened");
    let rows: usize = (0..10)
        .map(|metric| {
            store
                .history(&HistoryQuery {
                    device_id: "queued".into(),
                    metric: format!("m{metric}"),
                    start: Timestamp(0),
                    end: Timestamp(i64::MAX),
                    limit: 100_000,
                    reverse: false,
                    resume: None,
                })
                .expect("history")
                .rows
                .len()
        })
        .sum();
    assert_eq!(rows, APPENDS * EACH);
}
