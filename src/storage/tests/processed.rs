//! Processed reads (Part 13 aggregates) over a real store: staged and folded rows alike,
//! pages of intervals, backwards time, a series never stored.

use super::*;
use crate::storage::{
    Aggregate, AggregateConfig, Interpolation, IntervalPlan, ProcessedQuery, ResultQuality,
};

fn query(start: i64, end: i64, interval: i64, first: u64, max: usize) -> ProcessedQuery {
    ProcessedQuery {
        device_id: "dev".into(),
        metric: "level".into(),
        plan: IntervalPlan {
            start: Timestamp(start),
            end: Timestamp(end),
            interval,
        },
        first_interval: first,
        max_intervals: max,
        aggregates: vec![
            Aggregate::Count,
            Aggregate::Average,
            Aggregate::Interpolative,
        ],
        config: AggregateConfig::default(),
        interpolation: Interpolation::Sloped,
    }
}

fn numbers(values: &[crate::storage::AggregateValue]) -> Vec<Option<Value>> {
    values.iter().map(|v| v.value.clone()).collect()
}

#[test]
fn intervals_page_through_staged_and_folded_rows_in_one_pass_per_page() {
    // Folds every few rows, so the pages read both tables.
    let (_dir, mut store) = fresh_store_with(folding_options());
    for t in 0..100 {
        store
            .append(&[sample("dev", "level", Value::Float(t as f64), t * 10)])
            .unwrap();
    }
    // [0, 1000) in intervals of 100: ten rows each, row value = time / 10.
    let first = store
        .history_processed(&query(0, 1_000, 100, 0, 4))
        .unwrap();
    assert_eq!(first.next_interval, Some(4));
    assert_eq!(first.values.len(), 3, "one vector per aggregate");
    assert_eq!(
        numbers(&first.values[0]),
        vec![Some(Value::Int(10)); 4],
        "counts"
    );
    assert_eq!(
        numbers(&first.values[1]),
        [4.5, 14.5, 24.5, 34.5]
            .map(|v| Some(Value::Float(v)))
            .to_vec()
    );
    let last = store
        .history_processed(&query(0, 1_000, 100, 8, 4))
        .unwrap();
    assert_eq!(last.next_interval, None);
    assert_eq!(last.values[0].len(), 2);
    assert_eq!(last.values[1][1].value, Some(Value::Float(94.5)));
    // The newest row is in the last interval: Partial there only.
    assert!(last.values[0][1].partial);
    assert!(!last.values[0][0].partial);
    // Interpolated between the bounding rows outside the page: 45 at 450.
    let middle = store
        .history_processed(&query(450, 550, 50, 0, 10))
        .unwrap();
    assert_eq!(middle.values[2][0].value, Some(Value::Float(45.0)));
    assert_eq!(middle.values[2][1].value, Some(Value::Float(50.0)));
}

#[test]
fn backwards_reads_come_newest_first_and_an_unknown_series_has_no_data() {
    let (_dir, mut store) = fresh_store();
    let rows: Vec<Sample> = (0..100)
        .map(|t| sample("dev", "level", Value::Float(t as f64), t * 10))
        .collect();
    store.append(&rows).unwrap();
    let backwards = store
        .history_processed(&query(1_000, 0, 250, 0, 10))
        .unwrap();
    let stamps: Vec<i64> = backwards.values[0].iter().map(|v| v.time.0).collect();
    assert_eq!(stamps, [1_000, 750, 500, 250]);
    // (750, 1000] holds 760..=990: 24 rows.
    assert_eq!(backwards.values[0][0].value, Some(Value::Int(24)));
    assert_eq!(
        backwards.values[0][3].value,
        Some(Value::Int(25)),
        "(0, 250]"
    );

    let mut unknown = query(0, 1_000, 100, 0, 10);
    unknown.metric = "never".into();
    let page = store.history_processed(&unknown).unwrap();
    assert!(page
        .values
        .iter()
        .flatten()
        .all(|v| v.quality == ResultQuality::BadNoData && v.value.is_none()));
    let mut empty = query(0, 1_000, 100, 0, 0);
    assert!(
        store.history_processed(&empty).is_err(),
        "no intervals asked"
    );
    empty.max_intervals = 1;
    empty.aggregates.clear();
    assert!(
        store.history_processed(&empty).is_err(),
        "no aggregate asked"
    );
}
