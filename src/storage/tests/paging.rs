//! History ranges and paging: boundaries, limits, resume keys, appends between pages.

use std::collections::BTreeMap;

use super::*;
use crate::storage::{StorageErrorKind, MAX_HISTORY_PAGE};

/// `count` rows at 0, 10, 20, ... with the value equal to the time.
fn store_with_rows(count: i64) -> (tempfile::TempDir, Store) {
    let (dir, mut store) = fresh_store();
    let samples: Vec<Sample> = (0..count)
        .map(|i| sample("dev", "level", Value::Int(i * 10), i * 10))
        .collect();
    store.append(&samples).unwrap();
    (dir, store)
}

fn times(rows: &[HistoryRow]) -> Vec<i64> {
    rows.iter().map(|r| r.time.as_micros()).collect()
}

#[test]
fn a_range_includes_its_start_and_excludes_its_end() {
    let (_dir, store) = store_with_rows(10);
    assert_eq!(
        times(&all_rows(&store, query("dev", "level", 20, 50, 100))),
        vec![20, 30, 40]
    );
    assert_eq!(
        times(&all_rows(&store, query("dev", "level", 19, 51, 100))),
        vec![20, 30, 40, 50]
    );
    assert_eq!(
        times(&all_rows(&store, query("dev", "level", 21, 30, 100))),
        Vec::<i64>::new()
    );
    let empty = store.history(&query("dev", "level", 30, 30, 100)).unwrap();
    assert!(empty.rows.is_empty() && empty.resume.is_none());
    assert_eq!(
        all_rows(&store, query("dev", "level", i64::MIN, i64::MAX, 3)).len(),
        10
    );
}

#[test]
fn invalid_queries_and_unknown_series_are_errors() {
    let (_dir, store) = store_with_rows(3);
    let error = store
        .history(&query("dev", "level", 50, 10, 10))
        .unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::InvalidQuery);
    assert!(error.to_string().contains("after it ends"), "{error}");
    for limit in [0, MAX_HISTORY_PAGE + 1] {
        let error = store
            .history(&query("dev", "level", 0, 10, limit))
            .unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::InvalidQuery);
    }
    let error = store
        .history(&query("dev", "missing", 0, 10, 10))
        .unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::UnknownSeries);
    assert!(error.to_string().contains("\"missing\""), "{error}");
    let error = store
        .history(&query("nodev", "level", 0, 10, 10))
        .unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::UnknownSeries);
}

#[test]
fn a_resume_key_only_continues_its_own_query() {
    let (_dir, mut store) = store_with_rows(10);
    store
        .append(&[sample("dev", "other", Value::Int(1), 5)])
        .unwrap();
    let page = store.history(&query("dev", "level", 0, 100, 2)).unwrap();
    let resume = page.resume.expect("more rows");
    assert_eq!(resume.last_time(), Timestamp(10));
    let mut other = query("dev", "other", 0, 100, 2);
    other.resume = Some(resume);
    assert_eq!(
        store.history(&other).unwrap_err().kind(),
        StorageErrorKind::InvalidQuery
    );
    let mut reversed = query("dev", "level", 0, 100, 2);
    reversed.reverse = true;
    reversed.resume = Some(resume);
    assert_eq!(
        store.history(&reversed).unwrap_err().kind(),
        StorageErrorKind::InvalidQuery
    );
    // The key survives JSON (the web console and the control socket carry it as text).
    let text = serde_json::to_string(&resume).unwrap();
    let mut same = query("dev", "level", 0, 100, 2);
    same.resume = Some(serde_json::from_str(&text).unwrap());
    assert_eq!(times(&store.history(&same).unwrap().rows), vec![20, 30]);
}

#[test]
fn paging_forward_and_reverse_returns_every_row_once() {
    let (_dir, store) = store_with_rows(3_000);
    for limit in [1, 7, 250, 2_999, 3_000, 3_001] {
        if limit == 1 {
            // 3,000 single-row pages is slow in debug builds: a shorter range says the same.
            let rows = all_rows(&store, query("dev", "level", 0, 500, 1));
            assert_eq!(times(&rows), (0..50).map(|i| i * 10).collect::<Vec<_>>());
            continue;
        }
        let forward = all_rows(&store, query("dev", "level", 0, 30_000, limit));
        assert_eq!(
            times(&forward),
            (0..3_000).map(|i| i * 10).collect::<Vec<_>>(),
            "limit {limit}"
        );
        let mut q = query("dev", "level", 0, 30_000, limit);
        q.reverse = true;
        let backward = all_rows(&store, q);
        assert_eq!(
            times(&backward),
            (0..3_000).rev().map(|i| i * 10).collect::<Vec<_>>(),
            "reverse limit {limit}"
        );
    }
    // A page that ends exactly at the last row says there is nothing more.
    let page = store
        .history(&query("dev", "level", 0, 30_000, 3_000))
        .unwrap();
    assert_eq!(page.rows.len(), 3_000);
    assert!(page.resume.is_none());
}

/// Pages through `[0, 30_000)` while appending between pages: rows behind the cursor must not
/// appear, rows ahead of it must, and no row may appear twice or be skipped.
fn page_while_appending(reverse: bool, options: StoreOptions) {
    let (_dir, mut store) = fresh_store_with(options);
    let rows: Vec<Sample> = (0..3_000)
        .map(|i| sample("dev", "level", Value::Int(i * 10), i * 10))
        .collect();
    for chunk in rows.chunks(500) {
        store.append(chunk).unwrap();
    }
    let (start, end) = (0, 30_000);
    let mut expected: BTreeMap<i64, Value> =
        (0..3_000).map(|i| (i * 10, Value::Int(i * 10))).collect();
    let mut q = query("dev", "level", start, end, 200);
    q.reverse = reverse;
    let mut got: Vec<HistoryRow> = Vec::new();
    let mut round = 0i64;
    loop {
        let page = store.history(&q).unwrap();
        got.extend(page.rows);
        let Some(resume) = page.resume else { break };
        q.resume = Some(resume);
        let cursor = resume.last_time().as_micros();
        round += 1;
        // New times both behind and ahead of the cursor, an overwrite ahead of it, and rows
        // outside the range.
        let behind = if reverse { cursor + 5 } else { cursor - 5 };
        let ahead = if reverse { cursor - 15 } else { cursor + 15 };
        let overwrite = if reverse { cursor - 30 } else { cursor + 30 };
        let batch = vec![
            sample("dev", "level", Value::Int(-round), behind),
            sample("dev", "level", Value::Int(-round), ahead),
            sample("dev", "level", Value::Int(-round), overwrite),
            sample("dev", "level", Value::Int(-round), end + round),
            sample("dev", "level", Value::Int(-round), start - round),
        ];
        store.append(&batch).unwrap();
        for t in [ahead, overwrite] {
            if (start..end).contains(&t) {
                expected.insert(t, Value::Int(-round));
            }
        }
    }
    let mut want: Vec<(i64, Value)> = expected.into_iter().collect();
    if reverse {
        want.reverse();
    }
    let got: Vec<(i64, Value)> = got
        .into_iter()
        .map(|r| (r.time.as_micros(), r.value))
        .collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}

#[test]
fn paging_forward_continues_exactly_after_the_last_row_while_rows_are_appended() {
    page_while_appending(false, StoreOptions::default());
    page_while_appending(false, folding_options());
}

#[test]
fn paging_in_reverse_continues_exactly_before_the_last_row_while_rows_are_appended() {
    page_while_appending(true, StoreOptions::default());
    page_while_appending(true, folding_options());
}
