//! Staged rows (`recent`) and folded rows (`history`) read as one history: a seeded model test
//! with folds after every few rows.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const METRICS: [&str; 3] = ["a", "b", "c"];
/// Fixed, so a failure replays exactly.
const SEED: u64 = 20_240_501;

/// What the store must hold: per metric, time -> value.
type Model = BTreeMap<&'static str, BTreeMap<i64, Value>>;

fn check(store: &Store, model: &Model) {
    let mut total = 0;
    for (metric, rows) in model {
        let mut q = query("dev", metric, i64::MIN, i64::MAX, 4);
        let forward: Vec<(i64, Value)> = all_rows(store, q.clone())
            .into_iter()
            .map(|r| (r.time.as_micros(), r.value))
            .collect();
        let want: Vec<(i64, Value)> = rows.iter().map(|(t, v)| (*t, v.clone())).collect();
        assert_eq!(forward, want, "metric {metric}");
        q.reverse = true;
        let mut backward: Vec<(i64, Value)> = all_rows(store, q)
            .into_iter()
            .map(|r| (r.time.as_micros(), r.value))
            .collect();
        backward.reverse();
        assert_eq!(backward, want, "metric {metric} newest first");
        total += rows.len() as u64;
    }
    assert_eq!(store.counts().unwrap().history_rows, total, "row counter");
}

#[test]
fn staged_and_folded_rows_read_as_one_history_through_appends_prunes_and_reopens() {
    let (dir, mut store) = fresh_store_with(folding_options());
    let path = dir.path().join("opcgw.redb");
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut model: Model = BTreeMap::new();
    let mut horizon = 0;
    for step in 0..300 {
        match rng.gen_range(0..10) {
            // Mostly appends: times in a narrow window, so duplicates and out-of-order samples
            // hit both staged and folded rows.
            0..=7 => {
                let batch: Vec<Sample> = (0..rng.gen_range(1..12))
                    .map(|_| {
                        let metric = METRICS[rng.gen_range(0..METRICS.len())];
                        let time = horizon + rng.gen_range(0..60);
                        sample("dev", metric, Value::Int(step), time)
                    })
                    .collect();
                let report = store.append(&batch).unwrap();
                let mut duplicates = 0;
                for s in &batch {
                    let rows = model.entry(METRICS.iter().find(|m| **m == &*s.metric).unwrap());
                    if rows
                        .or_default()
                        .insert(s.source_time.as_micros(), s.value.clone())
                        .is_some()
                    {
                        duplicates += 1;
                    }
                }
                assert_eq!(report.duplicates, duplicates, "step {step}");
            }
            8 => {
                horizon += rng.gen_range(0..10);
                let chunk = rng.gen_range(1..6);
                loop {
                    let report = store.prune(Timestamp(horizon), chunk).unwrap();
                    if !report.more {
                        break;
                    }
                }
                for rows in model.values_mut() {
                    rows.retain(|t, _| *t >= horizon);
                }
            }
            _ => {
                drop(store);
                store = Store::open_with(&path, folding_options()).unwrap();
            }
        }
        check(&store, &model);
    }
}

#[test]
fn a_duplicate_of_a_folded_row_replaces_it_once() {
    let (_dir, mut store) = fresh_store_with(StoreOptions {
        fold_trigger_rows: 1,
        fold_chunk_rows: 100,
        fold_rows_per_series: 0,
        ..StoreOptions::default()
    });
    store
        .append(&[sample("dev", "level", Value::Int(1), 10)])
        .unwrap(); // folded at once
    let mut options = folding_options();
    options.fold_trigger_rows = 1_000;
    let path = store.path().to_path_buf();
    drop(store);
    let mut store = Store::open_with(&path, options).unwrap();
    let report = store
        .append(&[sample("dev", "level", Value::Int(2), 10)])
        .unwrap(); // staged, over the folded row
    assert_eq!(report.duplicates, 1);
    let rows = all_rows(&store, query("dev", "level", 0, 100, 10));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value, Value::Int(2));
    assert_eq!(store.counts().unwrap().history_rows, 1);
    let report = store.prune(Timestamp(11), 1).unwrap();
    assert_eq!(
        (report.removed, report.more),
        (0, true),
        "the staged copy went; the folded copy is still a row"
    );
    assert_eq!(store.counts().unwrap().history_rows, 1);
    let report = store.prune(Timestamp(11), 1).unwrap();
    assert_eq!((report.removed, report.more), (1, false));
    assert_eq!(store.counts().unwrap().history_rows, 0);
    assert!(all_rows(&store, query("dev", "level", 0, 100, 10)).is_empty());
}

/// Rows staged in `recent`, not yet folded.
fn staged_rows(store: &Store) -> u64 {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let txn = store.db().unwrap().begin_read().unwrap();
    txn.open_table(super::super::schema::RECENT)
        .unwrap()
        .len()
        .unwrap()
}

#[test]
fn a_fold_waits_for_rows_per_series_unless_too_many_are_staged() {
    // A fold waits for 3 staged rows per series, or `max_staged` rows in all.
    let waiting = |max_staged| StoreOptions {
        fold_trigger_rows: 2,
        fold_chunk_rows: 100,
        fold_rows_per_series: 3,
        fold_max_staged_rows: max_staged,
        ..StoreOptions::default()
    };
    let (_dir, mut store) = fresh_store_with(waiting(100));
    let one_each = |time| -> Vec<Sample> {
        (0..4)
            .map(|m| sample("dev", &format!("m{m}"), Value::Int(time), time))
            .collect()
    };
    // 4 series: past the trigger at once, but a fold waits for 3 rows each (12).
    store.append(&one_each(1)).unwrap();
    store.append(&one_each(2)).unwrap();
    assert_eq!(staged_rows(&store), 8, "2 rows per series: no fold yet");
    store.append(&one_each(3)).unwrap();
    assert_eq!(staged_rows(&store), 0, "3 rows per series: folded");
    assert_eq!(store.counts().unwrap().history_rows, 12);

    // Many series with a row each: the cap folds them anyway.
    let (_dir, mut store) = fresh_store_with(waiting(10));
    let wide = |count: usize| -> Vec<Sample> {
        (0..count)
            .map(|m| sample("dev", &format!("m{m}"), Value::Int(1), 1))
            .collect()
    };
    store.append(&wide(9)).unwrap();
    assert_eq!(
        staged_rows(&store),
        9,
        "under the cap, a row per series: staged"
    );
    store.append(&wide(10)).unwrap();
    assert_eq!(staged_rows(&store), 0, "at the cap: folded");
    assert_eq!(store.counts().unwrap().history_rows, 10);
}

#[test]
fn a_catch_up_defers_the_fold_to_its_end_or_to_the_cap() {
    let options = StoreOptions {
        fold_trigger_rows: 2,
        fold_chunk_rows: 100,
        fold_rows_per_series: 1,
        fold_max_staged_rows: 12,
        ..StoreOptions::default()
    };
    let (_dir, mut store) = fresh_store_with(options);
    let batch = |time| -> Vec<Sample> {
        (0..4)
            .map(|m| sample("dev", &format!("m{m}"), Value::Int(time), time))
            .collect()
    };
    // A fold is due after each of these appends; more batches wait: it waits too.
    store.append_then(&batch(1), Fold::Deferred).unwrap();
    store.append_then(&batch(2), Fold::Deferred).unwrap();
    assert_eq!(staged_rows(&store), 8, "deferred while more batches wait");
    // The last batch of the catch-up folds everything.
    store.append_then(&batch(3), Fold::WhenDue).unwrap();
    assert_eq!(staged_rows(&store), 0, "folded at the end of the catch-up");
    assert_eq!(store.counts().unwrap().history_rows, 12);
    // A catch-up that never ends still folds at the cap.
    for time in 4..=6 {
        store.append_then(&batch(time), Fold::Deferred).unwrap();
    }
    assert_eq!(
        staged_rows(&store),
        0,
        "12 staged rows: at the cap, folded anyway"
    );
    assert_eq!(store.counts().unwrap().history_rows, 24);
    let rows = all_rows(&store, query("dev", "m0", i64::MIN, i64::MAX, 100));
    assert_eq!(rows.len(), 6, "every row of the series read back once");
}

/// The name of series `m` in the range-fold tests.
fn series_name(m: i64) -> String {
    format!("m{m:02}")
}

/// A store holding 30 series x `rows` staged rows (row `time` of series `m` holds
/// `time * 100 + m`), nothing folded, reopened to fold at every append in chunks of 25 rows.
fn thirty_series_staged(rows: i64) -> (tempfile::TempDir, Store) {
    let (dir, mut store) = fresh_store_with(StoreOptions {
        fold_trigger_rows: 1_000,
        ..StoreOptions::default()
    });
    for time in 0..rows {
        let batch: Vec<Sample> = (0..30)
            .map(|m| sample("dev", &series_name(m), Value::Int(time * 100 + m), time))
            .collect();
        store.append(&batch).unwrap();
    }
    assert_eq!(staged_rows(&store), 30 * rows as u64);
    drop(store);
    let options = StoreOptions {
        fold_trigger_rows: 1,
        fold_chunk_rows: 25,
        fold_rows_per_series: 0,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&dir.path().join("opcgw.redb"), options).unwrap();
    (dir, store)
}

/// Appends one sample of series `late` at a time until nothing is staged (at most 20); the
/// staged rows before the first append and after each.
fn append_late_until_folded(store: &mut Store) -> Vec<u64> {
    let mut staged = vec![staged_rows(store)];
    for time in 10..30 {
        store
            .append(&[sample("dev", "late", Value::Int(time), time)])
            .unwrap();
        staged.push(staged_rows(store));
        if staged.last() == Some(&0) {
            break;
        }
    }
    staged
}

#[test]
fn more_staged_rows_than_a_chunk_fold_a_range_per_append_and_read_the_same() {
    // 30 series x 4 rows = 120 staged rows; a fold at every append, in chunks of at most 25
    // rows: 6 series a range.
    let (_dir, mut store) = thirty_series_staged(4);
    let staged = append_late_until_folded(&mut store);
    // One range per append (120 + 1 - 24 = 97, ...), then, once a chunk holds the rest,
    // everything at once.
    assert_eq!(
        staged[..3],
        [120, 97, 74],
        "staged after each append: {staged:?}"
    );
    assert_eq!(staged.last(), Some(&0), "{staged:?}");
    let late = staged.len() as u64 - 1;
    assert_eq!(store.counts().unwrap().history_rows, 120 + late);
    for m in 0..30 {
        let rows = all_rows(&store, query("dev", &series_name(m), 0, 10, 3));
        let values: Vec<Value> = rows.into_iter().map(|r| r.value).collect();
        let expected: Vec<Value> = (0..4).map(|time| Value::Int(time * 100 + m)).collect();
        assert_eq!(values, expected, "series {}", series_name(m));
    }
    assert_eq!(
        all_rows(&store, query("dev", "late", 0, 100, 7)).len() as u64,
        late
    );
}

#[test]
fn a_range_of_exactly_a_chunk_is_forgotten_by_the_index_not_rebuilt() {
    // 30 series x 5 rows: with chunks of 25 rows, every range holds exactly a chunk (as at
    // 110,000 series of ten replayed rows each with chunks of 100,000).
    let (_dir, mut store) = thirty_series_staged(5);
    let staged = append_late_until_folded(&mut store);
    assert_eq!(staged[..3], [150, 126, 102], "{staged:?}");
    assert_eq!(staged.last(), Some(&0), "{staged:?}");
    assert_eq!(
        store.staged_rebuilds, 1,
        "only the last fold (everything at once) rebuilds the index"
    );
    for m in 0..30 {
        let rows = all_rows(&store, query("dev", &series_name(m), 0, 10, 3));
        assert_eq!(rows.len(), 5, "series {}", series_name(m));
    }
}
