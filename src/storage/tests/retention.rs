//! Retention: exactly the rows older than the horizon go, in bounded chunks.

use super::*;
use crate::storage::{PruneReport, StorageErrorKind};

#[test]
fn pruning_removes_exactly_the_rows_older_than_the_horizon_in_bounded_chunks() {
    let (_dir, mut store) = fresh_store();
    // 3 series x 100 rows at 0, 10, ..., 990.
    let samples: Vec<Sample> = ["a", "b", "c"]
        .iter()
        .flat_map(|metric| (0..100).map(move |i| sample("dev", metric, Value::Int(i), i * 10)))
        .collect();
    store.append(&samples).unwrap();
    let horizon = Timestamp(500); // rows 0..=490 go (50 per series), 500.. stay

    let mut chunks = Vec::new();
    loop {
        let report = store.prune(horizon, 40).unwrap();
        assert!(report.removed <= 40);
        chunks.push(report);
        if !report.more {
            break;
        }
    }
    let removed: Vec<usize> = chunks.iter().map(|r| r.removed).collect();
    assert_eq!(removed, vec![40, 40, 40, 30]);
    assert!(chunks[..3].iter().all(|r| r.more));

    for metric in ["a", "b", "c"] {
        let rows = all_rows(&store, query("dev", metric, i64::MIN, i64::MAX, 1_000));
        assert_eq!(
            rows.first().map(|r| r.time),
            Some(Timestamp(500)),
            "at the horizon stays"
        );
        assert_eq!(rows.len(), 50);
        let before = all_rows(&store, query("dev", metric, 0, 500, 1_000));
        assert!(before.is_empty(), "490, just before the horizon, is gone");
    }
    assert_eq!(store.counts().unwrap().history_rows, 150);
    assert_eq!(store.prune(horizon, 40).unwrap(), Default::default());
    // Latest is not history: it stays whatever its age.
    assert_eq!(store.latest(None).unwrap().len(), 3);
}

#[test]
fn a_chunk_that_ends_exactly_at_the_last_old_row_reports_nothing_more() {
    let (_dir, mut store) = fresh_store();
    let samples: Vec<Sample> = (0..10)
        .map(|i| sample("dev", "level", Value::Int(i), i))
        .collect();
    store.append(&samples).unwrap();
    let report = store.prune(Timestamp(5), 5).unwrap();
    assert_eq!((report.removed, report.more), (5, false));
    let report = store.prune(Timestamp(7), 1).unwrap();
    assert_eq!(
        (report.removed, report.more),
        (1, true),
        "6 is still older than 7"
    );
    let report = store.prune(Timestamp(7), 1).unwrap();
    assert_eq!((report.removed, report.more), (1, false));
    assert_eq!(
        store.prune(Timestamp(0), 0).unwrap_err().kind(),
        StorageErrorKind::InvalidQuery
    );
}

#[test]
fn pruning_an_empty_database_is_a_no_op() {
    let (_dir, mut store) = fresh_store();
    assert_eq!(
        store.prune(Timestamp(i64::MAX), 10).unwrap(),
        Default::default()
    );
}

/// Every row of `metrics` of "dev", oldest first.
fn times_of(store: &Store, metrics: &[&str]) -> Vec<Vec<i64>> {
    metrics
        .iter()
        .map(|metric| {
            all_rows(store, query("dev", metric, i64::MIN, i64::MAX, 1_000))
                .iter()
                .map(|row| row.time.as_micros())
                .collect()
        })
        .collect()
}

/// Makes the file one from before the history floor was recorded.
fn forget_history_floor(store: &Store) {
    let txn = store.db().unwrap().begin_write().unwrap();
    txn.open_table(crate::storage::schema::META)
        .unwrap()
        .remove(crate::storage::schema::META_HISTORY_FLOOR)
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_pass_reads_nothing_while_no_row_is_older_than_the_horizon() {
    // Folds after a handful of rows: rows are both staged and folded.
    let (dir, mut store) = fresh_store_with(folding_options());
    let metrics = ["a", "b", "c"];
    // 3 series x 10 rows at 1,000, 1,010, ..., 1,090.
    let samples: Vec<Sample> = (metrics.iter())
        .flat_map(|metric| {
            (0..10).map(move |i| sample("dev", metric, Value::Int(i), 1_000 + i * 10))
        })
        .collect();
    store.append(&samples).unwrap();
    // A new file knows its floor from the start.
    assert_eq!(
        store.prune(Timestamp(1_000), 100).unwrap(),
        PruneReport::default()
    );

    // A file from before the floor: the first pass looks at every series, finds nothing.
    forget_history_floor(&store);
    let first = store.prune(Timestamp(500), 100).unwrap();
    assert_eq!((first.removed, first.more, first.scanned), (0, false, 3));
    // From then on, a horizon not past the oldest row (1,000) reads nothing, after a reopen too.
    assert_eq!(
        store.prune(Timestamp(1_000), 100).unwrap(),
        PruneReport::default()
    );
    drop(store);
    let mut store = Store::open_with(&dir.path().join("opcgw.redb"), folding_options()).unwrap();
    assert_eq!(
        store.prune(Timestamp(900), 100).unwrap(),
        PruneReport::default()
    );

    // A device sends an older value (a backfill): the next pass looks again and removes it.
    store
        .append(&[sample("dev", "b", Value::Int(-1), 700)])
        .unwrap();
    let report = store.prune(Timestamp(800), 100).unwrap();
    assert_eq!((report.removed, report.scanned), (1, 3));
    assert_eq!(
        store.prune(Timestamp(1_000), 100).unwrap(),
        PruneReport::default()
    );

    // Past the oldest row, rows go as before, in chunks; the floor follows what is left.
    let mut removed = 0;
    loop {
        let report = store.prune(Timestamp(1_050), 4).unwrap();
        removed += report.removed;
        if !report.more {
            break;
        }
    }
    assert_eq!(removed, 15);
    assert_eq!(
        times_of(&store, &metrics),
        vec![(1_050..1_100).step_by(10).collect::<Vec<i64>>(); 3]
    );
    assert_eq!(
        store.prune(Timestamp(1_050), 100).unwrap(),
        PruneReport::default()
    );

    // Everything gone: nothing to read until something is stored again.
    assert_eq!(store.prune(Timestamp(5_000), 100).unwrap().removed, 15);
    assert_eq!(
        store.prune(Timestamp(9_000), 100).unwrap(),
        PruneReport::default()
    );
    store
        .append(&[sample("dev", "a", Value::Int(1), 6_000)])
        .unwrap();
    let report = store.prune(Timestamp(9_000), 100).unwrap();
    assert_eq!((report.removed, report.scanned), (1, 3));
    assert_eq!(store.counts().unwrap().history_rows, 0);
}
