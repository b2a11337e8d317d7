//! Scenario tests on real redb files in temporary directories.
//!
//! Some scenarios need a second process (a kill -9 mid-commit, a file size limit, another
//! uid): those re-execute this test binary, running one child entry point selected by name with
//! an environment variable saying which role to play. The entry points are `#[ignore]`d test
//! functions, so that a normal run neither counts them as tests nor runs them; the parent
//! selects one with `--ignored --exact`. Run without a role (`--include-ignored`), they return
//! at once.

mod commands;
mod downsample;
mod durability;
mod files;
mod fold;
mod ownership;
mod paging;
mod processed;
mod reads;
mod retention;
mod values;

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Fold, HistoryQuery, HistoryRow, Store, StoreOptions};
use crate::model::{Sample, SampleOrigin, Timestamp, Value};

/// Which role a re-executed test binary plays (unset in a normal run).
const CHILD_ROLE_ENV: &str = "OPCGW_STORAGE_TEST_CHILD_ROLE";
/// The database the child works on.
const CHILD_DB_ENV: &str = "OPCGW_STORAGE_TEST_CHILD_DB";

/// A fresh store in its own temporary directory (kept alive by the returned guard).
fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("opcgw.redb")).expect("open a new store");
    (dir, store)
}

/// Options that fold after a handful of rows, so that tests move rows between `recent` and
/// `history` all the time.
fn folding_options() -> StoreOptions {
    StoreOptions {
        fold_trigger_rows: 7,
        fold_chunk_rows: 5,
        // No wait for rows per series (tested on its own in `fold`): folds of a few rows
        // over several ranges of series, all the time.
        fold_rows_per_series: 0,
        ..StoreOptions::default()
    }
}

/// A fresh store with `options`.
fn fresh_store_with(options: StoreOptions) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_with(&dir.path().join("opcgw.redb"), options).expect("open");
    (dir, store)
}

fn sample(device_id: &str, metric: &str, value: Value, micros: i64) -> Sample {
    Sample {
        device_id: device_id.into(),
        metric: metric.into(),
        value,
        source_time: Timestamp(micros),
        received_time: Timestamp(micros + 1),
        origin: SampleOrigin::Uplink,
    }
}

fn query(device_id: &str, metric: &str, start: i64, end: i64, limit: usize) -> HistoryQuery {
    HistoryQuery {
        device_id: device_id.into(),
        metric: metric.into(),
        start: Timestamp(start),
        end: Timestamp(end),
        limit,
        reverse: false,
        resume: None,
    }
}

/// Every row of a query, following resume keys.
fn all_rows(store: &Store, mut query: HistoryQuery) -> Vec<HistoryRow> {
    let mut rows = Vec::new();
    loop {
        let page = store.history(&query).expect("history page");
        rows.extend(page.rows);
        match page.resume {
            Some(resume) => query.resume = Some(resume),
            None => return rows,
        }
    }
}

/// The database path when this process is a child started for `role`.
fn child_db(role: &str) -> Option<PathBuf> {
    if std::env::var(CHILD_ROLE_ENV).ok()? != role {
        return None;
    }
    // libtest has printed "test <name> ... " without a newline: start the child's own lines
    // on a fresh one, so the parent can match them by prefix.
    println!();
    std::env::var_os(CHILD_DB_ENV).map(PathBuf::from)
}

/// A command that runs the child test `test` (a function of module `module`, as given by
/// `module_path!()`) of this binary in the role `role` on `db`.
fn child_command(module: &str, test: &str, role: &str, db: &Path) -> Command {
    let exe = std::env::current_exe().expect("the test binary");
    // Test names omit the crate name that module_path! starts with.
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    let mut command = Command::new(exe);
    command
        .arg(format!("{module}::{test}"))
        .args(["--ignored", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE_ENV, role)
        .env(CHILD_DB_ENV, db);
    command
}
