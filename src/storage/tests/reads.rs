//! Reads on other tasks ([`crate::storage::Reader`]): the same answers as the store's own, a
//! consistent snapshot beside a writer, and nothing to read while no store has the file open.

use super::*;
use crate::storage::{DownsampleQuery, ReadSlot, StorageErrorKind};

fn appended(store: &mut Store, metric: &str, times: impl IntoIterator<Item = i64>) {
    let samples: Vec<Sample> = times
        .into_iter()
        .map(|t| sample("dev", metric, Value::Int(t), t))
        .collect();
    store.append(&samples).expect("append");
}

#[test]
fn a_reader_answers_every_query_as_the_store_does_staged_and_folded_rows_alike() {
    let (_dir, mut store) = fresh_store_with(folding_options());
    let slot = ReadSlot::new();
    store.publish(&slot);
    for chunk in 0..6 {
        appended(
            &mut store,
            "level",
            (chunk * 10..chunk * 10 + 10).map(|t| t * 1_000),
        );
    }
    let reader = slot.reader().expect("published");
    for reverse in [false, true] {
        for limit in [1, 7, 100] {
            let mut q = query("dev", "level", 5_000, 55_000, limit);
            q.reverse = reverse;
            let ours = store.history(&q).unwrap();
            assert_eq!(
                reader.history(&q).unwrap(),
                ours,
                "limit {limit}, reverse {reverse}"
            );
            if let Some(resume) = ours.resume {
                q.resume = Some(resume);
                assert_eq!(reader.history(&q).unwrap(), store.history(&q).unwrap());
            }
        }
    }
    let chart = DownsampleQuery {
        device_id: "dev".into(),
        metric: "level".into(),
        from: Timestamp(0),
        to: Timestamp(60_000),
        max_points: 10,
    };
    assert_eq!(
        format!("{:?}", reader.history_downsampled(&chart).unwrap()),
        format!("{:?}", store.history_downsampled(&chart).unwrap())
    );
    let unknown = reader
        .history(&query("dev", "nothing", 0, 10, 10))
        .unwrap_err();
    assert_eq!(unknown.kind(), StorageErrorKind::UnknownSeries, "{unknown}");
}

#[test]
fn a_reader_sees_what_was_committed_when_it_began_and_never_blocks_the_writer() {
    let (_dir, mut store) = fresh_store();
    let slot = ReadSlot::new();
    store.publish(&slot);
    appended(&mut store, "level", [1_000, 2_000]);
    let reader = slot.reader().unwrap();
    // A reader holding the database while appends commit: both go on.
    appended(&mut store, "level", [3_000]);
    let rows = reader
        .history(&query("dev", "level", 0, 10_000, 10))
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 3, "each read is a new snapshot: {rows:?}");
    // A series created after the reader was taken is found too (looked up in the table).
    appended(&mut store, "flow", [4_000]);
    let rows = reader
        .history(&query("dev", "flow", 0, 10_000, 10))
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1);
}

#[test]
fn nothing_is_read_while_no_store_has_the_file_open_and_a_reopen_is_published_again() {
    let (dir, mut store) = fresh_store();
    let slot = ReadSlot::new();
    assert!(slot.reader().is_none(), "nothing published yet");
    store.publish(&slot);
    appended(&mut store, "level", [1_000]);
    store.reopen().expect("reopen");
    let reader = slot.reader().expect("the reopened database is published");
    assert_eq!(
        reader
            .history(&query("dev", "level", 0, 10_000, 10))
            .unwrap()
            .rows
            .len(),
        1
    );
    drop(reader);
    drop(store);
    assert!(
        slot.reader().is_none(),
        "a closed store leaves nothing to read"
    );
    // The next store (a restart of the storage actor) publishes in the same slot.
    let mut again = Store::open(&dir.path().join("opcgw.redb")).unwrap();
    again.publish(&slot);
    assert!(slot.reader().is_some());
}

/// A reader still holding the database when its store is dropped (a storage actor restarting
/// while a HistoryRead runs): the next store meets a lock held by this process — retried,
/// never taken for another opcgw (which would stop the gateway) — and opens once the reader
/// lets go.
#[test]
fn a_reader_outliving_its_store_keeps_the_file_ours_until_it_lets_go() {
    let (dir, mut store) = fresh_store();
    let slot = ReadSlot::new();
    store.publish(&slot);
    let reader = slot.reader().unwrap();
    drop(store);
    let path = dir.path().join("opcgw.redb");
    let error = Store::open(&path).expect_err("the reader still holds the file");
    assert!(!error.is_locked_by_another_process(), "{error}");
    assert_eq!(error.kind(), StorageErrorKind::Locked, "{error}");
    drop(reader);
    Store::open(&path).expect("opens once the reader let go");
}
