//! Durability against a kill -9 mid-commit and against a full disk, with a real child process.
//!
//! The child appends numbered batches and prints `committed N` after each durable commit; every
//! sample of batch N carries N as its value and a time inside batch N's slot. The parent stops
//! the child (SIGKILL, or the file size limit), reopens the file and checks that every batch
//! reported committed is there in full, and that no batch is there in part.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;
use rand::Rng;

use super::*;

/// Series written by every batch.
const SERIES_PER_BATCH: usize = 20;
/// Samples per series per batch (so a batch is 2,000 samples: a commit of several ms, long
/// enough for a kill to land inside one).
const SAMPLES_PER_SERIES: i64 = 100;
/// Batches a child writes at most (it is stopped long before).
const MAX_BATCHES: i64 = 100_000;
/// File size limit of the full-disk child.
const FILE_SIZE_LIMIT: u64 = 6 * 1024 * 1024;
/// Environment variable carrying the first batch number to a child.
const FIRST_BATCH_ENV: &str = "OPCGW_STORAGE_TEST_FIRST_BATCH";

/// Bytes of the string values of a wide batch (filling a file limit in a few batches keeps the
/// debug-build test short).
const WIDE_VALUE_BYTES: usize = 200;

fn batch(number: i64) -> Vec<Sample> {
    batch_of(number, Value::Int(number))
}

fn wide_batch(number: i64) -> Vec<Sample> {
    batch_of(number, wide_value(number))
}

fn wide_value(number: i64) -> Value {
    Value::String(format!("{number:0width$}", width = WIDE_VALUE_BYTES))
}

fn batch_of(number: i64, value: Value) -> Vec<Sample> {
    (0..SERIES_PER_BATCH)
        .flat_map(|series| {
            let value = value.clone();
            (0..SAMPLES_PER_SERIES).map(move |j| {
                sample(
                    &format!("dev{series}"),
                    "counter",
                    value.clone(),
                    number * SAMPLES_PER_SERIES + j,
                )
            })
        })
        .collect()
}

/// Folds every couple of batches, so that kills also land inside folds.
fn child_options() -> StoreOptions {
    StoreOptions {
        fold_trigger_rows: 4_000,
        fold_chunk_rows: 3_000,
        fold_rows_per_series: 0,
        ..StoreOptions::default()
    }
}

/// How many samples of `number` are stored, per series, and whether they carry the right value.
fn batch_presence(store: &Store, number: i64) -> Vec<usize> {
    (0..SERIES_PER_BATCH)
        .map(|series| {
            let start = number * SAMPLES_PER_SERIES;
            let rows = all_rows(
                store,
                query(
                    &format!("dev{series}"),
                    "counter",
                    start,
                    start + SAMPLES_PER_SERIES,
                    1_000,
                ),
            );
            assert!(
                rows.iter()
                    .all(|r| r.value == Value::Int(number) || r.value == wide_value(number)),
                "batch {number} holds values of another batch"
            );
            rows.len()
        })
        .collect()
}

/// Checks batches `first..=last_reported` are complete and that the batches after them are
/// all-or-nothing. Returns the first batch that is absent.
fn verify_batches(path: &Path, first: i64, last_reported: Option<i64>) -> i64 {
    let store = Store::open(path).expect("reopen after the child stopped");
    let full = vec![SAMPLES_PER_SERIES as usize; SERIES_PER_BATCH];
    let none = vec![0; SERIES_PER_BATCH];
    for number in first..=last_reported.unwrap_or(first - 1) {
        assert_eq!(
            batch_presence(&store, number),
            full,
            "committed batch {number} is incomplete"
        );
    }
    // The batch in flight (or one more, committed but not yet reported) is whole or absent.
    let mut next = last_reported.map_or(first, |n| n + 1);
    loop {
        let presence = batch_presence(&store, next);
        if presence == none {
            break;
        }
        assert_eq!(presence, full, "batch {next} is partially visible");
        next += 1;
    }
    let latest = store.latest(None).unwrap();
    if next > 0 {
        assert!(latest
            .iter()
            .all(|l| l.source_time == Timestamp(next * SAMPLES_PER_SERIES - 1)));
    }
    next
}

/// Child side: appends batches until killed.
#[test]
#[ignore = "child-process entry point: run by its parent test, not a test itself"]
fn child_appends_batches_until_killed() {
    let Some(path) = child_db("append_until_killed") else {
        return;
    };
    let first: i64 = std::env::var(FIRST_BATCH_ENV).unwrap().parse().unwrap();
    let mut store = Store::open_with(&path, child_options()).unwrap();
    for number in first..first + MAX_BATCHES {
        store.append(&batch(number)).unwrap();
        println!("committed {number}");
    }
}

fn committed_number(line: &str) -> Option<i64> {
    line.strip_prefix("committed ")?.trim().parse().ok()
}

#[test]
fn every_batch_reported_committed_survives_a_kill_and_none_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let mut rng = rand::thread_rng();
    let mut first = 0;
    // Several kills on the same file: each reopen repairs what the previous kill left.
    for _round in 0..3 {
        let mut child = child_command(
            module_path!(),
            "child_appends_batches_until_killed",
            "append_until_killed",
            &path,
        )
        .env(FIRST_BATCH_ENV, first.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = rng.gen_range(5..15);
        let mut last = None;
        for line in lines.by_ref() {
            if let Some(n) = committed_number(&line.unwrap()) {
                last = Some(n);
                if n >= first + kill_after {
                    break;
                }
            }
        }
        // Land somewhere inside the next batch: building it, or in the middle of its commit.
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..8_000)));
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        for line in lines {
            if let Some(n) = line.ok().as_deref().and_then(committed_number) {
                last = Some(n);
            }
        }
        assert!(last.is_some(), "the child committed nothing");
        first = verify_batches(&path, 0, last);
    }
}

/// Child side: appends under a small file size limit until the writes fail.
#[test]
#[ignore = "child-process entry point: run by its parent test, not a test itself"]
fn child_appends_until_the_file_size_limit() {
    let Some(path) = child_db("fill_to_limit") else {
        return;
    };
    // Exceeding RLIMIT_FSIZE raises SIGXFSZ, which kills by default. Blocked in this thread (the
    // one that writes), it stays pending and the write fails with EFBIG instead, as if ignored.
    let mut xfsz = SigSet::empty();
    xfsz.add(Signal::SIGXFSZ);
    xfsz.thread_block().unwrap();
    let (_, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
    setrlimit(Resource::RLIMIT_FSIZE, FILE_SIZE_LIMIT, hard).unwrap();

    let mut store = match Store::open_with(&path, child_options()) {
        Ok(store) => store,
        Err(e) => {
            println!("error {:?}: {e}", e.kind());
            return;
        }
    };
    for number in 0..MAX_BATCHES {
        match store.append(&wide_batch(number)) {
            Ok(_) => println!("committed {number}"),
            Err(e) => {
                println!("error {:?}: {e}", e.kind());
                // The store stays usable as an object: the next write reopens and fails again.
                match store.append(&wide_batch(number)) {
                    Ok(_) => println!("retry committed {number}"),
                    Err(e) => println!("retry error {:?}: {e}", e.kind()),
                }
                return;
            }
        }
    }
}

#[test]
fn a_full_disk_is_an_error_not_a_panic_and_committed_batches_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let output = child_command(
        module_path!(),
        "child_appends_until_the_file_size_limit",
        "fill_to_limit",
        &path,
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child must end normally: {stdout}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stdout.lines().filter_map(committed_number).max();
    assert!(last.is_some(), "nothing fitted under the limit: {stdout}");
    let error = stdout
        .lines()
        .find(|l| l.starts_with("error "))
        .unwrap_or_else(|| panic!("the limit was never hit: {stdout}"));
    assert!(error.starts_with("error Io: "), "{error}");
    assert!(error.contains("File too large"), "EFBIG expected: {error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("free disk space"), "{error}");
    let retry = stdout
        .lines()
        .find(|l| l.starts_with("retry "))
        .unwrap_or_else(|| panic!("no retry: {stdout}"));
    assert!(retry.starts_with("retry error "), "{retry}");

    // Without the limit: everything reported is there, and the store takes new batches.
    let next = verify_batches(&path, 0, last);
    let mut store = Store::open(&path).unwrap();
    let report = store.append(&batch(next)).unwrap();
    assert_eq!(report.written, batch(next).len());
    assert_eq!(
        store.counts().unwrap().history_rows,
        (next as u64 + 1) * SERIES_PER_BATCH as u64 * SAMPLES_PER_SERIES as u64
    );
}
