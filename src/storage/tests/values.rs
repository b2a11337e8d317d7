//! Samples in, samples out: value types, latest, duplicates, out-of-order samples.

use super::*;
use crate::storage::{AppendReport, Fold, StorageErrorKind, MAX_NAME_BYTES, MAX_STRING_BYTES};

#[test]
fn every_value_type_round_trips_through_history_and_latest() {
    let (_dir, mut store) = fresh_store();
    let values = [
        Value::Float(0.0),
        Value::Float(-0.0),
        Value::Float(21.5),
        Value::Float(0.1),
        Value::Float(f64::MAX),
        Value::Float(f64::MIN),
        Value::Float(f64::MIN_POSITIVE),
        Value::Float(f64::INFINITY),
        Value::Float(f64::NEG_INFINITY),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(i64::MAX),
        Value::Int(i64::MIN),
        Value::Int(1 << 40),
        Value::Bool(true),
        Value::Bool(false),
        Value::String(String::new()),
        Value::String("Füllstand ✓ 水位 🚰".into()),
        Value::String("x".repeat(MAX_STRING_BYTES)),
        Value::String("\0 nul and \n newline".into()),
    ];
    let samples: Vec<Sample> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut s = sample("dev", &format!("m{i}"), v.clone(), 1_000 + i as i64);
            if i % 2 == 1 {
                s.origin = SampleOrigin::Aggregate;
            }
            s
        })
        .collect();
    let report = store.append(&samples).unwrap();
    assert_eq!(report.written, values.len());
    assert_eq!(report.latest_updated, values.len());
    assert_eq!(
        (report.duplicates, report.rejected, report.truncated),
        (0, 0, 0)
    );

    for expected in &samples {
        let rows = all_rows(
            &store,
            query("dev", &expected.metric, i64::MIN, i64::MAX, 10),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].time, expected.source_time);
        assert_eq!(rows[0].origin, expected.origin);
        assert_same_value(&rows[0].value, &expected.value);
    }
    let latest = store.latest(Some("dev")).unwrap();
    assert_eq!(latest.len(), values.len());
    for value in latest {
        let expected = samples.iter().find(|s| s.metric == value.metric).unwrap();
        assert_same_value(&value.value, &expected.value);
        assert_eq!(value.source_time, expected.source_time);
        assert_eq!(value.received_time, expected.received_time);
        assert_eq!(value.origin, expected.origin);
    }

    // NaN has no equality: check it separately.
    store
        .append(&[sample("dev", "nan", Value::Float(f64::NAN), 5)])
        .unwrap();
    let rows = all_rows(&store, query("dev", "nan", 0, 10, 10));
    assert!(matches!(rows[0].value, Value::Float(v) if v.is_nan()));
}

fn assert_same_value(got: &Value, expected: &Value) {
    match (got, expected) {
        (Value::Float(a), Value::Float(b)) => assert_eq!(a.to_bits(), b.to_bits()),
        _ => assert_eq!(got, expected),
    }
}

#[test]
fn values_survive_a_reopen() {
    let (dir, mut store) = fresh_store();
    store
        .append(&[sample("dev", "level", Value::Float(3.25), 100)])
        .unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("opcgw.redb")).unwrap();
    let latest = store.latest(None).unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].value, Value::Float(3.25));
    assert_eq!(
        all_rows(&store, query("dev", "level", 0, 1_000, 5)).len(),
        1
    );
}

#[test]
fn latest_never_moves_back_in_time() {
    let (_dir, mut store) = fresh_store();
    store
        .append(&[sample("dev", "level", Value::Int(2), 2_000)])
        .unwrap();
    let report = store
        .append(&[sample("dev", "level", Value::Int(1), 1_000)])
        .unwrap();
    assert_eq!(
        report.latest_updated, 0,
        "an older sample leaves latest alone"
    );
    assert_eq!(report.written, 1, "but lands in history");
    let latest = store.latest(Some("dev")).unwrap();
    assert_eq!(
        (latest[0].value.clone(), latest[0].source_time),
        (Value::Int(2), Timestamp(2_000))
    );

    // Within one batch the newest sample wins, whatever the order of the batch.
    let report = store
        .append(&[
            sample("dev", "level", Value::Int(5), 5_000),
            sample("dev", "level", Value::Int(3), 3_000),
        ])
        .unwrap();
    assert_eq!(report.latest_updated, 1);
    assert_eq!(store.latest(None).unwrap()[0].value, Value::Int(5));

    // The same time again replaces latest, as it replaces the history row.
    store
        .append(&[sample("dev", "level", Value::Int(6), 5_000)])
        .unwrap();
    assert_eq!(store.latest(None).unwrap()[0].value, Value::Int(6));
}

#[test]
fn a_duplicate_series_and_time_is_one_row_holding_the_last_write() {
    let (_dir, mut store) = fresh_store();
    store
        .append(&[sample("dev", "level", Value::Int(1), 1_000)])
        .unwrap();
    let report = store
        .append(&[
            sample("dev", "level", Value::Int(2), 1_000),
            sample("dev", "level", Value::Int(3), 1_000),
            sample("dev", "other", Value::Int(4), 1_000),
        ])
        .unwrap();
    assert_eq!(report.written, 3);
    assert_eq!(
        report.duplicates, 2,
        "one against the database, one within the batch"
    );
    let rows = all_rows(&store, query("dev", "level", 0, 10_000, 10));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value, Value::Int(3));
    assert_eq!(store.counts().unwrap().history_rows, 2);
}

#[test]
fn a_batch_written_in_key_order_still_keeps_the_last_write_of_each_key() {
    // Appends write a batch in (time, series) order; among 20 writes of each of five times,
    // interleaved, the last one in the batch must win.
    let (_dir, mut store) = fresh_store();
    let batch: Vec<_> = (0..100)
        .map(|i| sample("dev", "level", Value::Int(i), (4 - i % 5) * 1_000))
        .collect();
    let report = store.append(&batch).unwrap();
    assert_eq!((report.written, report.duplicates), (100, 95));
    let rows = all_rows(&store, query("dev", "level", 0, 10_000, 10));
    let values: Vec<Value> = rows.iter().map(|r| r.value.clone()).collect();
    let expected: Vec<Value> = [99, 98, 97, 96, 95].map(Value::Int).to_vec();
    assert_eq!(
        values, expected,
        "times 0..4 s, each holding its last write"
    );
    assert_eq!(store.latest(None).unwrap()[0].value, Value::Int(95));
}

#[test]
fn pieces_append_as_one_batch_in_their_order() {
    // The forwarder hands storage the uplinks it gathered as pieces: one commit, a later
    // piece's write of a key wins, and a series created in one piece is reused by the next.
    let (_dir, mut store) = fresh_store();
    let first = [
        sample("dev", "level", Value::Int(1), 1_000),
        sample("dev", "new", Value::Int(2), 1_000),
    ];
    let second = [
        sample("dev", "level", Value::Int(3), 1_000),
        sample("dev", "new", Value::Int(4), 2_000),
    ];
    let report = store
        .append_pieces(&[&first, &[], &second], Fold::WhenDue)
        .unwrap();
    assert_eq!((report.written, report.duplicates), (4, 1));
    let level = all_rows(&store, query("dev", "level", 0, 10_000, 10));
    assert_eq!(
        level.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        [Value::Int(3)]
    );
    let new: Vec<Value> = (all_rows(&store, query("dev", "new", 0, 10_000, 10)).iter())
        .map(|r| r.value.clone())
        .collect();
    assert_eq!(new, [Value::Int(2), Value::Int(4)]);
    assert_eq!(store.counts().unwrap().series, 2);
    let latest: Vec<Value> = (store.latest(None).unwrap().iter())
        .map(|s| s.value.clone())
        .collect();
    assert_eq!(latest, [Value::Int(3), Value::Int(4)], "level, then new");
    assert_eq!(
        store.append_pieces(&[&[], &[]], Fold::WhenDue).unwrap(),
        AppendReport::default()
    );
}

#[test]
fn out_of_order_samples_land_at_their_own_time() {
    let (_dir, mut store) = fresh_store();
    for t in [50, 10, 40, 20, 30] {
        store
            .append(&[sample("dev", "level", Value::Int(t), t)])
            .unwrap();
    }
    let times: Vec<i64> = all_rows(&store, query("dev", "level", 0, 100, 2))
        .iter()
        .map(|r| r.time.as_micros())
        .collect();
    assert_eq!(times, vec![10, 20, 30, 40, 50]);
    assert_eq!(store.latest(None).unwrap()[0].value, Value::Int(50));
}

#[test]
fn latest_lists_all_series_or_one_device_in_name_order() {
    let (_dir, mut store) = fresh_store();
    store
        .append(&[
            sample("b", "z", Value::Int(1), 1),
            sample("a", "y", Value::Int(2), 1),
            sample("ab", "x", Value::Int(3), 1),
            sample("a", "x", Value::Int(4), 1),
        ])
        .unwrap();
    let names = |v: Vec<crate::model::Sample>| {
        v.into_iter()
            .map(|l| format!("{}/{}", l.device_id, l.metric))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.latest(None).unwrap()),
        vec!["a/x", "a/y", "ab/x", "b/z"]
    );
    assert_eq!(names(store.latest(Some("a")).unwrap()), vec!["a/x", "a/y"]);
    assert!(store.latest(Some("nobody")).unwrap().is_empty());
    assert_eq!(store.counts().unwrap().series, 4);
}

#[test]
fn bad_names_are_rejected_and_long_strings_cut_without_losing_the_batch() {
    let (_dir, mut store) = fresh_store();
    let long_name = "n".repeat(MAX_NAME_BYTES + 1);
    let report = store
        .append(&[
            sample("", "level", Value::Int(1), 1),
            sample("dev", &long_name, Value::Int(1), 1),
            sample(
                "dev",
                "note",
                Value::String("é".repeat(MAX_STRING_BYTES)),
                1,
            ),
            sample("dev", "level", Value::Int(7), 1),
        ])
        .unwrap();
    assert_eq!(report.rejected, 2);
    assert_eq!(report.truncated, 1);
    assert_eq!(report.written, 2);
    let rows = all_rows(&store, query("dev", "note", 0, 10, 5));
    let Value::String(kept) = &rows[0].value else {
        panic!("not a string")
    };
    assert_eq!(kept.len(), MAX_STRING_BYTES);
    assert!(kept.chars().all(|c| c == 'é'));
    let longest = "n".repeat(MAX_NAME_BYTES);
    let report = store
        .append(&[sample("dev", &longest, Value::Int(1), 1)])
        .unwrap();
    assert_eq!(report.written, 1, "a name of exactly the maximum is fine");
}

#[test]
fn an_empty_batch_writes_nothing() {
    let (_dir, mut store) = fresh_store();
    assert_eq!(store.append(&[]).unwrap(), Default::default());
    assert_eq!(store.counts().unwrap().history_rows, 0);
}

#[test]
fn status_documents_round_trip_and_are_bounded() {
    let (dir, mut store) = fresh_store();
    assert_eq!(store.status("upstream").unwrap(), None);
    store
        .put_status(
            "upstream",
            r#"{"state":"up","since":"2024-05-01T12:00:00Z"}"#,
        )
        .unwrap();
    store.put_status("upstream", r#"{"state":"down"}"#).unwrap();
    drop(store);
    let mut store = Store::open(&dir.path().join("opcgw.redb")).unwrap();
    assert_eq!(
        store.status("upstream").unwrap().as_deref(),
        Some(r#"{"state":"down"}"#)
    );
    let too_big = "x".repeat(crate::storage::MAX_STATUS_BYTES + 1);
    let error = store.put_status("upstream", &too_big).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::InvalidQuery);
    assert_eq!(
        store.put_status("", "{}").unwrap_err().kind(),
        StorageErrorKind::InvalidQuery
    );
}

#[test]
fn several_status_documents_are_written_and_removed_together_or_not_at_all() {
    let (_dir, mut store) = fresh_store();
    store.put_status("devices", "[]").unwrap();
    store
        .put_statuses(
            &[("device/a", "{\"rssi\":-80}"), ("device/b", "{}")],
            &["devices"],
        )
        .unwrap();
    assert_eq!(
        store.status("device/a").unwrap().as_deref(),
        Some("{\"rssi\":-80}")
    );
    assert_eq!(store.status("device/b").unwrap().as_deref(), Some("{}"));
    assert_eq!(store.status("devices").unwrap(), None);

    let too_big = "x".repeat(crate::storage::MAX_STATUS_BYTES + 1);
    let error = store
        .put_statuses(
            &[("device/a", "{\"rssi\":-90}"), ("device/c", &too_big)],
            &["device/b"],
        )
        .unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::InvalidQuery);
    assert_eq!(
        store.status("device/a").unwrap().as_deref(),
        Some("{\"rssi\":-80}")
    );
    assert_eq!(store.status("device/b").unwrap().as_deref(), Some("{}"));
    assert_eq!(store.status("device/c").unwrap(), None);
}
