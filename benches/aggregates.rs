//! Processed HistoryRead figures (OPC UA Part 13 aggregates computed in storage):
//! `cargo bench -p opcgw --bench aggregates` (also in `make bench`). Prints numbers with the
//! targets beside them; asserts only that the answers are complete.
//!
//! 1. One variable, 7 days at 10 s (60,480 rows) -> 168 hourly Averages.
//! 2. 1,000 variables x 24 h at one sample a minute (1,440,000 rows) -> hourly Minimum,
//!    Maximum and Average of every variable, as one OPC UA request of 3,000 entries asks
//!    them: one pass per variable computing the three.

use std::time::{Duration, Instant};

use opcgw::model::{Sample, SampleOrigin, Timestamp, Value};
use opcgw::storage::{
    Aggregate, AggregateConfig, Interpolation, IntervalPlan, ProcessedQuery, ResultQuality, Store,
};

/// 2024-05-01T00:00:00Z.
const EPOCH: i64 = 1_714_521_600_000_000;
const SECOND: i64 = 1_000_000;
const HOUR: i64 = 3_600 * SECOND;
const RUNS: usize = 30;
const FLEET: usize = 1_000;

fn sample(device: &str, metric: &str, time: i64, value: f64) -> Sample {
    Sample {
        device_id: device.into(),
        metric: metric.into(),
        value: Value::Float(value),
        source_time: Timestamp(time),
        received_time: Timestamp(time),
        origin: SampleOrigin::Uplink,
    }
}

fn query(device: &str, metric: &str, hours: i64, aggregates: Vec<Aggregate>) -> ProcessedQuery {
    ProcessedQuery {
        device_id: device.into(),
        metric: metric.into(),
        plan: IntervalPlan {
            start: Timestamp(EPOCH),
            end: Timestamp(EPOCH + hours * HOUR),
            interval: HOUR,
        },
        first_interval: 0,
        max_intervals: 1_000,
        aggregates,
        config: AggregateConfig::default(),
        interpolation: Interpolation::Sloped,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(mut runs: Vec<Duration>) -> String {
    runs.sort();
    format!(
        "median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(runs[runs.len() / 2]),
        ms(runs[runs.len() * 9 / 10]),
        ms(runs[runs.len() - 1])
    )
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("opcgw aggregates benchmark ({cpus} CPUs, release build)");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("opcgw.redb")).expect("open");

    // 1. A week of one variable.
    let week: Vec<Sample> = (0..7 * 24 * 360)
        .map(|i| {
            sample(
                "weekly",
                "level",
                EPOCH + i * 10 * SECOND,
                (i % 500) as f64 * 0.1,
            )
        })
        .collect();
    for chunk in week.chunks(10_000) {
        store.append(chunk).expect("append");
    }
    let weekly = query("weekly", "level", 7 * 24, vec![Aggregate::Average]);
    let runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let page = store.history_processed(&weekly).expect("processed");
            let took = t.elapsed();
            assert_eq!(page.values[0].len(), 168);
            assert!(page.values[0]
                .iter()
                .all(|v| v.quality == ResultQuality::Good));
            took
        })
        .collect();
    println!(
        "7 days at 10 s (60,480 rows) -> 168 hourly Averages: {}   target <= 20 ms",
        summary(runs)
    );
    // The same rows read raw in one page: what the scan alone costs.
    let raw = opcgw::storage::HistoryQuery {
        device_id: "weekly".into(),
        metric: "level".into(),
        start: Timestamp(EPOCH),
        end: Timestamp(EPOCH + 7 * 24 * HOUR),
        limit: 100_000,
        reverse: false,
        resume: None,
    };
    let runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let page = store.history(&raw).expect("history");
            assert_eq!(page.rows.len(), 60_480);
            t.elapsed()
        })
        .collect();
    println!(
        "  (the same 60,480 rows read raw in one page: {})",
        summary(runs)
    );

    // 2. A fleet's day, one sample a minute per variable.
    let t = Instant::now();
    for minute in (0..24 * 60).step_by(60) {
        let batch: Vec<Sample> = (minute..minute + 60)
            .flat_map(|m| {
                (0..FLEET).map(move |v| {
                    sample(
                        &format!("device-{v:04}"),
                        "flow",
                        EPOCH + m * 60 * SECOND,
                        (v as i64 + m) as f64 % 97.0,
                    )
                })
            })
            .collect();
        for chunk in batch.chunks(10_000) {
            store.append(chunk).expect("append");
        }
    }
    println!(
        "(stored {} rows for {FLEET} variables in {:.1} s)",
        FLEET * 24 * 60,
        t.elapsed().as_secs_f64()
    );
    let wanted = vec![Aggregate::Minimum, Aggregate::Maximum, Aggregate::Average];
    let fleet: Vec<ProcessedQuery> = (0..FLEET)
        .map(|v| query(&format!("device-{v:04}"), "flow", 24, wanted.clone()))
        .collect();
    let runs: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for q in &fleet {
                let page = store.history_processed(q).expect("processed");
                assert!(page.values.iter().all(|v| v.len() == 24));
            }
            t.elapsed()
        })
        .collect();
    println!(
        "{FLEET} variables x 24 h (1 a minute) -> hourly Min/Max/Average, one pass each: {}   \
         target <= 500 ms",
        summary(runs)
    );
}
