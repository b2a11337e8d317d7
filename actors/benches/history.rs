//! History reads while ingest commits (issue: "reads never wait behind writes"): the last hour
//! of one variable (~100 rows) asked 2,000 times while 5,000 samples/s (1,000 devices x 5
//! metrics, one uplink per device per second) are appended through the storage actor in
//! batches of 500 every 100 ms, as the poller's forwarder hands them over. Each query goes
//! once through the storage actor's mailbox (the path before this change) and once on the
//! asking task against the published database (`Peers::reads`). Prints p50 / p99 / max of
//! both. Run with `make bench` (or `cargo bench -p opcgw-actors --bench history`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use opcgw::config::AppConfig;
use opcgw::model::{Sample, SampleOrigin, Timestamp, Value};
use opcgw::storage::{HistoryQuery, ReadSlot};
use opcgw_actors::duties::storage::{StorageActor, StorageArgs};
use opcgw_actors::tree::messages::{ConfigUpdate, StorageMsg};
use opcgw_actors::tree::storage_client::StorageClient;
use ractor::{Actor, ActorRef};

const DEVICES: usize = 1_000;
const METRICS: usize = 5;
const BATCH_EVERY: Duration = Duration::from_millis(100);
const QUERIES: usize = 2_000;
/// Rows of the queried variable in the last hour (one every 34 s).
const QUERIED_ROWS: i64 = 100;

fn sample(device: usize, metric: usize, at: Timestamp, value: i64) -> Sample {
    Sample {
        device_id: format!("{device:016x}").into(),
        metric: format!("m{metric}").into(),
        value: Value::Int(value),
        source_time: at,
        received_time: at,
        origin: SampleOrigin::Uplink,
    }
}

async fn append(storage: &ActorRef<StorageMsg>, samples: Vec<Sample>) {
    storage
        .call(
            |reply| StorageMsg::Append {
                pieces: vec![samples.into()],
                fold: opcgw::storage::Fold::WhenDue,
                reply,
            },
            Some(Duration::from_secs(30)),
        )
        .await
        .expect("storage runs")
        .success_or(())
        .expect("an answer")
        .expect("stored");
}

fn percentiles(mut took: Vec<Duration>) -> String {
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        took[took.len() - 1].as_secs_f64() * 1e3
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = AppConfig::default();
    config.storage.database_path = dir.path().join("opcgw.redb");
    let reads = ReadSlot::new();
    let args = StorageArgs {
        config: ConfigUpdate::initial(Arc::new(config)),
        reads: reads.clone(),
    };
    let (storage, _join) = Actor::spawn(None, StorageActor, args)
        .await
        .expect("storage starts");
    let mailbox = StorageClient::new(Some(storage.clone()), Duration::from_secs(30));
    let direct = mailbox.clone().with_reads(reads);

    // The queried variable: an hour of rows.
    let now = Timestamp::now();
    let hour_ago = Timestamp(now.0 - 3_600_000_000);
    // 100 rows from 58 minutes ago, 34 s apart: all inside the sliding last-hour window.
    let seeded: Vec<Sample> = (0..QUERIED_ROWS)
        .map(|i| {
            sample(
                0,
                0,
                Timestamp(hour_ago.0 + 120_000_000 + i * 34_000_000),
                i,
            )
        })
        .collect();
    append(&storage, seeded).await;

    // Ingest: every device's five metrics once a second, in ten batches.
    let ingest = {
        let storage = storage.clone();
        tokio::spawn(async move {
            let per_batch = DEVICES / 10;
            let mut tick = tokio::time::interval(BATCH_EVERY);
            let mut round = 0usize;
            let mut stored = 0usize;
            let started = Instant::now();
            loop {
                tick.tick().await;
                let at = Timestamp::now();
                let first = (round % 10) * per_batch;
                let batch: Vec<Sample> = (first..first + per_batch)
                    .flat_map(|d| (0..METRICS).map(move |m| (d, m)))
                    // Device 0, metric 0 is the queried variable: leave its hour as seeded.
                    .filter(|(d, m)| (*d, *m) != (0, 0))
                    .map(|(d, m)| sample(d + 1, m, at, round as i64))
                    .collect();
                stored += batch.len();
                append(&storage, batch).await;
                round += 1;
                if round % 50 == 0 {
                    let rate = stored as f64 / started.elapsed().as_secs_f64();
                    if rate < 4_500.0 {
                        eprintln!("ingest falls behind: {rate:.0} samples/s");
                    }
                }
            }
        })
    };
    // Let ingest run a few seconds first (the database grows, commits settle).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The last hour up to now, as a trend screen asks: the window covers the rows being stored
    // (of every series), not only the queried variable's.
    let query = || {
        let now = Timestamp::now();
        HistoryQuery {
            device_id: format!("{:016x}", 0),
            metric: "m0".into(),
            start: Timestamp(now.0 - 3_600_000_000),
            end: now,
            limit: 1_000,
            reverse: false,
            resume: None,
        }
    };
    let mut through_mailbox = Vec::with_capacity(QUERIES);
    let mut on_the_task = Vec::with_capacity(QUERIES);
    let started = Instant::now();
    for i in 0..QUERIES {
        // Alternate, so both paths see the same ingest.
        let (client, took) = if i % 2 == 0 {
            (&mailbox, &mut through_mailbox)
        } else {
            (&direct, &mut on_the_task)
        };
        let asked = Instant::now();
        let page = client.history(query()).await.expect("history");
        took.push(asked.elapsed());
        assert_eq!(page.rows.len(), QUERIED_ROWS as usize);
        // About 200 queries a second, as a few trend screens would ask.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    ingest.abort();
    println!(
        "history bench: last hour of one variable ({QUERIED_ROWS} rows) while {} samples/s are stored ({DEVICES} devices x {METRICS} metrics, batches every {} ms); {} queries per path over {:.1} s",
        DEVICES * METRICS,
        BATCH_EVERY.as_millis(),
        QUERIES / 2,
        elapsed.as_secs_f64()
    );
    println!(
        "  before (through the storage actor's mailbox): {}",
        percentiles(through_mailbox)
    );
    println!(
        "  now (read on the asking task):                {}   (target p50 <= 1 ms, p99 <= 5 ms)",
        percentiles(on_the_task)
    );
}
