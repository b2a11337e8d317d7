//! Downsampled history: raw when the window fits, bucket figures otherwise, window edges,
//! Bool/String windows, the 7-day chart window, and refused requests.

use super::*;
use crate::storage::{
    Bucket, DownsampleQuery, Downsampled, StorageErrorKind, MAX_DOWNSAMPLE_POINTS,
    MIN_DOWNSAMPLE_POINTS,
};

fn window(metric: &str, from: i64, to: i64, max_points: usize) -> DownsampleQuery {
    DownsampleQuery {
        device_id: "dev".into(),
        metric: metric.into(),
        from: Timestamp(from),
        to: Timestamp(to),
        max_points,
    }
}

fn append(store: &mut Store, samples: Vec<Sample>) {
    for chunk in samples.chunks(10_000) {
        store.append(chunk).expect("append");
    }
}

/// `metric` at every time in `times`, the value being the time (as an Int).
fn ints_at(metric: &str, times: impl IntoIterator<Item = i64>) -> Vec<Sample> {
    times
        .into_iter()
        .map(|t| sample("dev", metric, Value::Int(t), t))
        .collect()
}

fn raw(answer: Downsampled) -> Vec<(i64, Value)> {
    match answer {
        Downsampled::Raw(rows) => rows
            .into_iter()
            .map(|r| (r.time.as_micros(), r.value))
            .collect(),
        Downsampled::Buckets(buckets) => panic!("expected raw rows, got {buckets:?}"),
    }
}

fn buckets(answer: Downsampled) -> Vec<Bucket> {
    match answer {
        Downsampled::Buckets(buckets) => buckets,
        Downsampled::Raw(rows) => panic!("expected buckets, got {} raw rows", rows.len()),
    }
}

#[test]
fn a_window_that_fits_comes_back_raw_and_one_row_more_is_bucketed() {
    let (_dir, mut store) = fresh_store();
    append(&mut store, ints_at("level", 0..100));
    let rows = raw(store
        .history_downsampled(&window("level", 0, 100, 100))
        .unwrap());
    assert_eq!(
        rows,
        (0..100).map(|t| (t, Value::Int(t))).collect::<Vec<_>>()
    );
    // 100 rows in a window asked for in 99 points: buckets.
    let answer = buckets(
        store
            .history_downsampled(&window("level", 0, 100, 99))
            .unwrap(),
    );
    assert!(answer.len() <= 99, "{} buckets", answer.len());
    assert_eq!(answer.iter().map(|b| b.count).sum::<u64>(), 100);
}

#[test]
fn bucket_figures_are_exact_on_a_known_series() {
    let (_dir, mut store) = fresh_store();
    // Times 0..100, value = time; floats on odd times, ints on even ones (both are numbers).
    let samples = (0..100)
        .map(|t| {
            let value = if t % 2 == 0 {
                Value::Int(t)
            } else {
                Value::Float(t as f64)
            };
            sample("dev", "level", value, t)
        })
        .collect();
    append(&mut store, samples);
    let answer = buckets(
        store
            .history_downsampled(&window("level", 0, 100, 10))
            .unwrap(),
    );
    assert_eq!(answer.len(), 10);
    for (k, bucket) in answer.iter().enumerate() {
        let base = k as i64 * 10;
        let want = Bucket {
            start: Timestamp(base),
            end: Timestamp(base + 10),
            min: base as f64,
            max: (base + 9) as f64,
            avg: base as f64 + 4.5,
            count: 10,
            first_time: Timestamp(base),
            first: base as f64,
            last_time: Timestamp(base + 9),
            last: (base + 9) as f64,
        };
        assert_eq!(*bucket, want, "bucket {k}");
    }
}

#[test]
fn empty_buckets_are_omitted() {
    let (_dir, mut store) = fresh_store();
    // Rows only in buckets 0, 3 and 9 of [0, 1000) in 10 buckets of 100.
    let times = (0..20).chain(300..305).chain(950..1000);
    append(&mut store, ints_at("level", times));
    let answer = buckets(
        store
            .history_downsampled(&window("level", 0, 1000, 10))
            .unwrap(),
    );
    let summary: Vec<(i64, i64, u64, f64)> = answer
        .iter()
        .map(|b| (b.start.as_micros(), b.end.as_micros(), b.count, b.avg))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 100, 20, 9.5),
            (300, 400, 5, 302.0),
            (900, 1000, 50, 974.5)
        ]
    );
}

#[test]
fn the_window_includes_its_start_and_excludes_its_end() {
    let (_dir, mut store) = fresh_store();
    append(&mut store, ints_at("level", 0..200));
    // Raw: rows at 50..=149 exactly.
    let rows = raw(store
        .history_downsampled(&window("level", 50, 150, 100))
        .unwrap());
    assert_eq!(rows.first().map(|r| r.0), Some(50));
    assert_eq!(rows.last().map(|r| r.0), Some(149));
    assert_eq!(rows.len(), 100);
    // Bucketed: the same edges; 105 micros in 10 buckets of 11, the last one cut at the end.
    let answer = buckets(
        store
            .history_downsampled(&window("level", 50, 155, 10))
            .unwrap(),
    );
    assert_eq!(answer.len(), 10);
    assert_eq!(answer[0].start, Timestamp(50));
    assert_eq!(answer[0].first_time, Timestamp(50));
    assert_eq!(answer[0].end, Timestamp(61));
    let last = answer.last().unwrap();
    assert_eq!((last.start, last.end), (Timestamp(149), Timestamp(155)));
    assert_eq!(last.last_time, Timestamp(154));
    assert_eq!(answer.iter().map(|b| b.count).sum::<u64>(), 105);
    // An empty window, a window outside the data.
    assert!(store
        .history_downsampled(&window("level", 70, 70, 10))
        .unwrap()
        .is_empty());
    assert!(store
        .history_downsampled(&window("level", 200, 10_000, 10))
        .unwrap()
        .is_empty());
}

#[test]
fn never_more_buckets_than_points_whatever_the_span() {
    let (_dir, mut store) = fresh_store();
    append(&mut store, ints_at("level", 0..400));
    for span in [11, 12, 99, 100, 101, 199, 257, 399, 400] {
        for max_points in [10, 11, 13, 50] {
            if span <= max_points as i64 {
                continue;
            }
            let answer = buckets(
                store
                    .history_downsampled(&window("level", 0, span, max_points))
                    .unwrap(),
            );
            assert!(
                answer.len() <= max_points,
                "span {span}, max_points {max_points}: {} buckets",
                answer.len()
            );
            assert_eq!(
                answer.iter().map(|b| b.count).sum::<u64>(),
                span as u64,
                "span {span}, max_points {max_points}"
            );
            assert!(answer.windows(2).all(|w| w[0].end <= w[1].start));
            assert_eq!(answer.last().unwrap().end, Timestamp(span));
        }
    }
}

#[test]
fn bool_and_string_windows_are_never_averaged_but_give_their_last_rows() {
    let (_dir, mut store) = fresh_store();
    let samples = (0..50)
        .flat_map(|t| {
            [
                sample("dev", "open", Value::Bool(t % 3 == 0), t),
                sample("dev", "state", Value::String(format!("s{t}")), t),
            ]
        })
        .collect();
    append(&mut store, samples);
    let rows = raw(store
        .history_downsampled(&window("open", 0, 50, 10))
        .unwrap());
    assert_eq!(
        rows,
        (40..50)
            .map(|t| (t, Value::Bool(t % 3 == 0)))
            .collect::<Vec<_>>()
    );
    let rows = raw(store
        .history_downsampled(&window("state", 0, 45, 10))
        .unwrap());
    assert_eq!(
        rows,
        (35..45)
            .map(|t| (t, Value::String(format!("s{t}"))))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_window_mixing_numbers_and_text_is_not_averaged() {
    let (_dir, mut store) = fresh_store();
    // A metric whose type changed: numbers, then text.
    let mut samples = ints_at("level", 0..40);
    samples.extend((40..45).map(|t| sample("dev", "level", Value::String("x".into()), t)));
    append(&mut store, samples);
    let rows = raw(store
        .history_downsampled(&window("level", 0, 45, 10))
        .unwrap());
    let times: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(times, (35..45).collect::<Vec<_>>());
    // The numeric part alone is bucketed.
    let answer = buckets(
        store
            .history_downsampled(&window("level", 0, 40, 10))
            .unwrap(),
    );
    assert_eq!(answer.len(), 10);
}

#[test]
fn non_finite_floats_are_left_out_of_the_figures() {
    let (_dir, mut store) = fresh_store();
    let samples = (0..20)
        .map(|t| {
            let value = match t {
                3 => Value::Float(f64::NAN),
                4 => Value::Float(f64::INFINITY),
                _ => Value::Float(1.0),
            };
            sample("dev", "level", value, t)
        })
        .collect();
    append(&mut store, samples);
    let answer = buckets(
        store
            .history_downsampled(&window("level", 0, 20, 10))
            .unwrap(),
    );
    let first = &answer[0];
    assert_eq!((first.count, first.avg), (2, 1.0));
    let second = &answer[1];
    assert_eq!((second.start, second.count), (Timestamp(2), 1));
    assert_eq!((second.min, second.max, second.avg), (1.0, 1.0, 1.0));
}

#[test]
fn staged_folded_and_overwritten_rows_are_counted_once() {
    // Folds every few rows: the window is spread over both tables.
    let (_dir, mut store) = fresh_store_with(folding_options());
    for chunk in ints_at("level", 0..100).chunks(3) {
        store.append(chunk).unwrap();
    }
    // Overwrite times 0..10 with 1000: bucket 0 becomes all 1000s, still 10 rows.
    let overwrites: Vec<Sample> = (0..10)
        .map(|t| sample("dev", "level", Value::Int(1000), t))
        .collect();
    store.append(&overwrites).unwrap();
    let answer = buckets(
        store
            .history_downsampled(&window("level", 0, 100, 10))
            .unwrap(),
    );
    assert_eq!(answer.len(), 10);
    assert_eq!(
        (answer[0].count, answer[0].min, answer[0].max),
        (10, 1000.0, 1000.0)
    );
    assert_eq!(answer.iter().map(|b| b.count).sum::<u64>(), 100);
    assert_eq!((answer[9].min, answer[9].max), (90.0, 99.0));
}

#[test]
fn a_seven_day_window_at_ten_seconds_fits_in_a_thousand_points() {
    const SECOND: i64 = 1_000_000;
    const WEEK_ROWS: i64 = 7 * 24 * 360;
    let epoch = 1_714_521_600 * SECOND;
    let (_dir, mut store) = fresh_store();
    let samples = (0..WEEK_ROWS)
        .map(|i| {
            let t = epoch + i * 10 * SECOND;
            sample("dev", "temp", Value::Float(20.0 + (i % 100) as f64), t)
        })
        .collect();
    append(&mut store, samples);
    let end = epoch + WEEK_ROWS * 10 * SECOND;
    let answer = buckets(
        store
            .history_downsampled(&window("temp", epoch, end, 1_000))
            .unwrap(),
    );
    assert_eq!(answer.len(), 1_000);
    assert_eq!(
        answer.iter().map(|b| b.count).sum::<u64>(),
        WEEK_ROWS as u64
    );
    // 604.8 s buckets hold 60 or 61 rows at 10 s.
    assert!(answer.iter().all(|b| (60..=61).contains(&b.count)));
    assert!(answer.iter().all(|b| b.min >= 20.0 && b.max <= 119.0));
    assert_eq!(answer[0].start, Timestamp(epoch));
    assert_eq!(answer[1].start, Timestamp(epoch + 604_800_000));
}

#[test]
fn an_unknown_series_is_an_empty_window() {
    let (_dir, mut store) = fresh_store();
    append(&mut store, ints_at("level", 0..10));
    assert!(store
        .history_downsampled(&window("missing", 0, 100, 10))
        .unwrap()
        .is_empty());
    let mut other_device = window("level", 0, 100, 10);
    other_device.device_id = "nodev".into();
    assert_eq!(
        store.history_downsampled(&other_device).unwrap(),
        Downsampled::Raw(Vec::new())
    );
}

#[test]
fn out_of_range_point_counts_and_inverted_windows_are_refused() {
    let (_dir, mut store) = fresh_store();
    append(&mut store, ints_at("level", 0..10));
    for max_points in [
        0,
        MIN_DOWNSAMPLE_POINTS - 1,
        MAX_DOWNSAMPLE_POINTS + 1,
        usize::MAX,
    ] {
        let error = store
            .history_downsampled(&window("level", 0, 10, max_points))
            .unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::InvalidQuery, "{max_points}");
        assert!(error.to_string().contains("max_points"), "{error}");
    }
    for max_points in [MIN_DOWNSAMPLE_POINTS, MAX_DOWNSAMPLE_POINTS] {
        assert_eq!(
            store
                .history_downsampled(&window("level", 0, 10, max_points))
                .unwrap()
                .len(),
            10
        );
    }
    let error = store
        .history_downsampled(&window("level", 10, 0, 10))
        .unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::InvalidQuery);
    assert!(error.to_string().contains("after it ends"), "{error}");
}

#[test]
fn the_widest_window_does_not_overflow() {
    let (_dir, mut store) = fresh_store();
    let samples = (0..30)
        .map(|i| sample("dev", "level", Value::Int(i), i * 1_000_000_000_000))
        .collect();
    append(&mut store, samples);
    let answer = buckets(
        store
            .history_downsampled(&window("level", i64::MIN, i64::MAX, 10))
            .unwrap(),
    );
    assert_eq!(answer.iter().map(|b| b.count).sum::<u64>(), 30);
    assert!(answer.len() <= 10);
    assert!(answer
        .iter()
        .all(|b| b.start <= b.first_time && b.last_time < b.end));
}
