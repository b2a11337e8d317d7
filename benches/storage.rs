//! Storage figures: `cargo bench -p opcgw --bench storage`. Prints numbers; asserts nothing
//! (the targets of DESIGN §11 are printed next to the figures).
//!
//! Workload: 1,000 series (100 devices x 10 metrics), one sample per series every 10 s, a mix of
//! value types like a real deployment; every batch is one durable commit.
//!
//! `OPCGW_BENCH_CACHE_MB` sets the redb page cache (default: the gateway's default,
//! `[storage].cache_size_mb`), to measure speed against memory.

use std::path::Path;
use std::time::{Duration, Instant};

use opcgw::model::{Sample, SampleOrigin, Timestamp, Value};
use opcgw::storage::{DownsampleQuery, Downsampled, HistoryQuery, Store, StoreOptions};

const DEVICES: usize = 100;
const METRICS_PER_DEVICE: usize = 10;
const SERIES: usize = DEVICES * METRICS_PER_DEVICE;
/// Sampling period of every series.
const PERIOD_MICROS: i64 = 10_000_000;
/// 2024-05-01T00:00:00Z: where the synthetic clock starts.
const EPOCH_MICROS: i64 = 1_714_521_600_000_000;
/// Samples written per ingest run.
const INGEST_SAMPLES: usize = 1_000_000;
/// Ingest runs per batch size, each into a fresh file (a shared VM's disk is noisy: the median
/// and the range say more than one run).
const INGEST_RUNS: usize = 3;
/// 7 days at 10 s.
const WEEK_ROWS: i64 = 7 * 24 * 360;
/// Page sizes of the 7-day read (10,000: one big page; 1,000: an OPC UA-sized page).
const PAGE_ROWS: [usize; 2] = [10_000, 1_000];
const READ_RUNS: usize = 50;
/// Points of a chart: what the console asks a 7-day window to be cut down to.
const CHART_POINTS: usize = 1_000;
/// 1 hour at 10 s.
const HOUR_ROWS: i64 = 360;
/// Rows deleted per prune call (one write transaction each).
const PRUNE_CHUNK: usize = 10_000;

/// The options every store of the bench opens with.
fn options() -> StoreOptions {
    let megabytes = std::env::var("OPCGW_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(opcgw::config::DEFAULT_STORAGE_CACHE_MB as usize);
    StoreOptions {
        cache_bytes: megabytes * 1024 * 1024,
        ..StoreOptions::default()
    }
}

fn open(path: &Path) -> Store {
    Store::open_with(path, options()).expect("open")
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "opcgw storage benchmark ({SERIES} series, durable commit per batch, {} MiB page cache)",
        options().cache_bytes / (1024 * 1024)
    );
    println!("{}", machine());
    println!();

    for batch in [1_000, 10_000] {
        let mut rates = Vec::with_capacity(INGEST_RUNS);
        let mut details = String::new();
        for run in 0..INGEST_RUNS {
            let path = dir.path().join(format!("ingest-{batch}-{run}.redb"));
            let (rate, detail) = ingest(&path, batch);
            rates.push(rate);
            details = detail;
            if run + 1 < INGEST_RUNS {
                std::fs::remove_file(&path).expect("remove a finished run");
            }
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "ingest, batches of {batch:>6}: median {:>7.0} samples/s over {INGEST_RUNS} runs \
             (min {:.0}, max {:.0})   target >= 200,000/s",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
        );
        print!("{details}");
    }
    let path = dir
        .path()
        .join(format!("ingest-10000-{}.redb", INGEST_RUNS - 1));
    read_week(&path);
    downsample_week(&path);
    read_against_full_staging(dir.path());
    latest_listing(&path);
    prune(&path);
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("machine: {cpus} CPUs, {model}")
}

/// The value of series `s` at slot `t`: floats (some exact in f32, some not), ints, bools and
/// the odd string, as decoded uplinks give them.
fn value(series: usize, slot: i64) -> Value {
    match series % METRICS_PER_DEVICE {
        0..=3 => Value::Float(20.0 + (slot % 100) as f64 * 0.5),
        4..=5 => Value::Float(3.3 + (slot as f64 * 0.001).sin()),
        6..=7 => Value::Int(slot % 4_096),
        8 => Value::Bool(slot % 7 == 0),
        _ => Value::String(if slot % 2 == 0 { "open" } else { "closed" }.into()),
    }
}

fn sample(series: usize, slot: i64) -> Sample {
    let time = EPOCH_MICROS + slot * PERIOD_MICROS;
    Sample {
        device_id: format!("device-{:04}", series / METRICS_PER_DEVICE).into(),
        metric: format!("metric_{}", series % METRICS_PER_DEVICE).into(),
        value: value(series, slot),
        source_time: Timestamp(time),
        received_time: Timestamp(time + 150_000),
        origin: SampleOrigin::Uplink,
    }
}

/// Batches as the poller makes them: every series at one slot, then the next slot.
fn batches(batch: usize, total: usize) -> impl Iterator<Item = Vec<Sample>> {
    let mut next = 0usize;
    std::iter::from_fn(move || {
        if next >= total {
            return None;
        }
        let samples: Vec<Sample> = (next..(next + batch).min(total))
            .map(|i| sample(i % SERIES, (i / SERIES) as i64))
            .collect();
        next += samples.len();
        Some(samples)
    })
}

/// One ingest run; returns samples/s and a description of the run.
fn ingest(path: &Path, batch: usize) -> (f64, String) {
    let mut store = open(path);
    let prepared: Vec<Vec<Sample>> = batches(batch, INGEST_SAMPLES).collect();
    let mut commits = Vec::with_capacity(prepared.len());
    let started = Instant::now();
    for samples in &prepared {
        let t = Instant::now();
        store.append(samples).expect("append");
        commits.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    let counts = store.counts().expect("counts");
    let space = store.space_usage().expect("space");
    commits.sort();
    let rate = INGEST_SAMPLES as f64 / elapsed.as_secs_f64();
    let details = format!(
        "    last run: {INGEST_SAMPLES} samples in {:.2} s; commit median {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms (a commit that triggers a fold waits for it)\n    size per million \
         samples: file {:.1} MB, pages in use {:.1} MB (keys+values {:.1} MB)\n",
        elapsed.as_secs_f64(),
        ms(percentile(&commits, 50)),
        ms(percentile(&commits, 99)),
        ms(*commits.last().unwrap_or(&Duration::ZERO)),
        // bytes per row = MB per million rows
        counts.file_bytes as f64 / counts.history_rows as f64,
        space.allocated_bytes as f64 / counts.history_rows as f64,
        space.stored_bytes as f64 / counts.history_rows as f64,
    );
    (rate, details)
}

/// The most a page pays for the staging table: every staged row lies in the page's range and
/// belongs to other series, so the merge scans them all.
fn read_against_full_staging(dir: &Path) {
    let options = options();
    let staged_rows = options.fold_trigger_rows - 1;
    let mut store = Store::open_with(&dir.join("staging.redb"), options).expect("open");
    for samples in batches(SERIES, staged_rows) {
        store.append(&samples).expect("append");
    }
    let mut runs: Vec<Duration> = (0..READ_RUNS)
        .map(|_| {
            let query = HistoryQuery {
                device_id: "device-0000".into(),
                metric: "metric_0".into(),
                start: Timestamp(i64::MIN),
                end: Timestamp(i64::MAX),
                limit: 1_000,
                reverse: false,
                resume: None,
            };
            let t = Instant::now();
            let page = store.history(&query).expect("history");
            assert!(!page.rows.is_empty());
            t.elapsed()
        })
        .collect();
    runs.sort();
    println!(
        "one page with {staged_rows} rows of other series staged in its range: median {:.2} ms, \
         p99 {:.2} ms (the worst case of the staging merge)",
        ms(percentile(&runs, 50)),
        ms(percentile(&runs, 99)),
    );
}

/// A 7-day range of one series (60,480 rows), in a database that also holds the ingest runs'
/// 1,000 series.
fn read_week(path: &Path) {
    let mut store = open(path);
    let week: Vec<Sample> = (0..WEEK_ROWS)
        .map(|slot| {
            let mut s = sample(3, slot);
            s.device_id = "weekly".into();
            s
        })
        .collect();
    for chunk in week.chunks(10_000) {
        store.append(chunk).expect("append week");
    }
    let start = Timestamp(EPOCH_MICROS);
    let end = Timestamp(EPOCH_MICROS + WEEK_ROWS * PERIOD_MICROS);
    println!();
    for page_rows in PAGE_ROWS {
        for reverse in [false, true] {
            let mut runs = Vec::with_capacity(READ_RUNS);
            let mut first_page = Vec::with_capacity(READ_RUNS);
            for _ in 0..READ_RUNS {
                let mut query = HistoryQuery {
                    device_id: "weekly".into(),
                    metric: "metric_3".into(),
                    start,
                    end,
                    limit: page_rows,
                    reverse,
                    resume: None,
                };
                let started = Instant::now();
                let mut rows = 0;
                loop {
                    let t = Instant::now();
                    let page = store.history(&query).expect("history");
                    if rows == 0 {
                        first_page.push(t.elapsed());
                    }
                    rows += page.rows.len();
                    match page.resume {
                        Some(resume) => query.resume = Some(resume),
                        None => break,
                    }
                }
                runs.push(started.elapsed());
                assert_eq!(rows as i64, WEEK_ROWS);
            }
            runs.sort();
            first_page.sort();
            println!(
                "7-day read ({WEEK_ROWS} rows) in pages of {page_rows:>6}{}: median {:.1} ms, p99 \
                 {:.1} ms (one page: median {:.2} ms, p99 {:.2} ms)   target <= 50 ms",
                if reverse { ", newest first" } else { "" },
                ms(percentile(&runs, 50)),
                ms(percentile(&runs, 99)),
                ms(percentile(&first_page, 50)),
                ms(percentile(&first_page, 99)),
            );
        }
    }
}

/// The console's charts: the 7-day series of `read_week` cut down to 1,000 buckets in storage,
/// and its last hour (360 rows), which fits and comes back raw.
fn downsample_week(path: &Path) {
    let store = open(path);
    let end = EPOCH_MICROS + WEEK_ROWS * PERIOD_MICROS;
    let windows = [
        ("7 days", EPOCH_MICROS, WEEK_ROWS, "target <= 50 ms"),
        ("1 hour", end - HOUR_ROWS * PERIOD_MICROS, HOUR_ROWS, ""),
    ];
    for (label, from, rows, target) in windows {
        let query = DownsampleQuery {
            device_id: "weekly".into(),
            metric: "metric_3".into(),
            from: Timestamp(from),
            to: Timestamp(end),
            max_points: CHART_POINTS,
        };
        let mut points = 0;
        let mut runs: Vec<Duration> = (0..READ_RUNS)
            .map(|_| {
                let t = Instant::now();
                let answer = store.history_downsampled(&query).expect("downsample");
                let elapsed = t.elapsed();
                let counted = match &answer {
                    Downsampled::Raw(raw) => raw.len() as u64,
                    Downsampled::Buckets(buckets) => buckets.iter().map(|b| b.count).sum(),
                };
                assert_eq!(counted, rows as u64);
                points = answer.len();
                elapsed
            })
            .collect();
        runs.sort();
        println!(
            "{label} window ({rows} rows) downsampled to <= {CHART_POINTS} points -> {points} \
             points: median {:.2} ms, p99 {:.2} ms   {target}",
            ms(percentile(&runs, 50)),
            ms(percentile(&runs, 99)),
        );
    }
}

fn latest_listing(path: &Path) {
    let store = open(path);
    let mut runs: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let latest = store.latest(None).expect("latest");
            assert!(latest.len() > SERIES);
            t.elapsed()
        })
        .collect();
    runs.sort();
    println!(
        "latest(None), {} series: median {:.2} ms",
        SERIES + 1,
        ms(percentile(&runs, 50))
    );
}

/// Deletes the whole ingest history in chunks, as retention would.
fn prune(path: &Path) {
    let mut store = open(path);
    let before = store.counts().expect("counts").history_rows;
    let mut chunks = Vec::new();
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let report = store
            .prune(Timestamp(i64::MAX), PRUNE_CHUNK)
            .expect("prune");
        chunks.push(t.elapsed());
        if !report.more {
            break;
        }
    }
    let elapsed = started.elapsed();
    let after = store.counts().expect("counts");
    chunks.sort();
    println!();
    println!(
        "prune {} rows in chunks of {PRUNE_CHUNK}: {:.2} s = {:.2} s per million rows (chunk \
         median {:.1} ms, max {:.1} ms); file stays {:.1} MB (pages are reused)",
        before - after.history_rows,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / (before - after.history_rows) as f64 * 1e6,
        ms(percentile(&chunks, 50)),
        ms(*chunks.last().unwrap_or(&Duration::ZERO)),
        after.file_bytes as f64 / 1e6,
    );
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * p).div_ceil(100)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
