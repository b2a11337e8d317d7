//! The engine against OPC 10000-13 Annex A: the example historians' raw data (Good, Bad and
//! Uncertain points, gaps, data starting late and ending early) and the expected results of
//! the Annex's tables for StartTime 12:00:00, EndTime 12:01:40 (the CSV Annex A of v1.05.07
//! refers to). The Annex's 12:00:00 "first archive entry" row is a Bad_NoData placeholder, not
//! a point, and is left out, as the Annex's own results do.
//!
//! Notation: `value quality,bits` with G Good, U Uncertain_DataSubNormal, Unc a raw Uncertain,
//! Bad; C Calculated, I Interpolated (no letter: Raw), MV MultipleValues, P Partial; floats to
//! three decimals; `BadNoData` alone for an interval without data. Results whose timestamp is
//! not the interval's start (Start, End, *ActualTime) are prefixed with `mm:ss`.

use super::engine::aggregate_points;
use super::*;
use crate::model::{Timestamp, Value};

const NOON: i64 = 1_700_000_000_000_000;

fn t(seconds: i64) -> Timestamp {
    Timestamp(NOON + seconds * 1_000_000)
}

fn p(seconds: i64, value: Option<f64>, quality: RawQuality) -> RawPoint {
    RawPoint {
        time: t(seconds),
        value: value.map(Value::Float),
        quality,
    }
}

use RawQuality::{Bad, Good, Uncertain};

/// Historian 1: data every 10 s from 12:00:10, a Bad value at 12:00:40, an Uncertain one at
/// 12:01:10.
fn historian1() -> Vec<RawPoint> {
    let mut points: Vec<RawPoint> = (1..=9)
        .map(|k| p(k * 10, Some(k as f64 * 10.0), Good))
        .collect();
    points[3].quality = Bad;
    points[6].quality = Uncertain;
    points
}

/// Historians 2 and 3 (the same data): irregular, from 12:00:02, a Bad point without a value
/// at 12:00:42, an Uncertain one at 12:01:17.
fn historian2() -> Vec<RawPoint> {
    vec![
        p(2, Some(10.0), Good),
        p(25, Some(20.0), Good),
        p(28, Some(25.0), Good),
        p(39, Some(30.0), Good),
        p(42, None, Bad),
        p(48, Some(40.0), Good),
        p(52, Some(50.0), Good),
        p(72, Some(60.0), Good),
        p(77, Some(70.0), Uncertain),
        p(83, Some(70.0), Good),
        p(86, Some(80.0), Good),
        p(90, Some(90.0), Good),
    ]
}

/// Historian 5: Historian 2's times with values that repeat.
fn historian5() -> Vec<RawPoint> {
    let values = [
        10.0, 20.0, 10.0, 30.0, 0.0, 30.0, 50.0, 30.0, 70.0, 70.0, 80.0, 70.0,
    ];
    historian2()
        .into_iter()
        .zip(values)
        .map(|(mut point, value)| {
            if point.value.is_some() {
                point.value = Some(Value::Float(value));
            }
            point
        })
        .collect()
}

struct Historian {
    points: Vec<RawPoint>,
    config: AggregateConfig,
    interpolation: Interpolation,
}

fn h1() -> Historian {
    Historian {
        points: historian1(),
        config: AggregateConfig {
            treat_uncertain_as_bad: false,
            percent_data_bad: 100,
            percent_data_good: 100,
            use_sloped_extrapolation: false,
        },
        interpolation: Interpolation::Sloped,
    }
}

fn h2() -> Historian {
    Historian {
        points: historian2(),
        config: AggregateConfig {
            treat_uncertain_as_bad: true,
            percent_data_bad: 100,
            percent_data_good: 100,
            use_sloped_extrapolation: true,
        },
        interpolation: Interpolation::Sloped,
    }
}

fn h3() -> Historian {
    Historian {
        points: historian2(),
        config: AggregateConfig {
            treat_uncertain_as_bad: true,
            percent_data_bad: 50,
            percent_data_good: 50,
            use_sloped_extrapolation: false,
        },
        interpolation: Interpolation::Stepped,
    }
}

fn h5() -> Historian {
    Historian {
        points: historian5(),
        config: AggregateConfig {
            treat_uncertain_as_bad: false,
            ..h1().config
        },
        interpolation: Interpolation::Sloped,
    }
}

/// `aggregate` of `historian` from 12:00:00 to 12:01:40 (or backwards) every `seconds`.
fn run(historian: &Historian, aggregate: Aggregate, seconds: i64, reverse: bool) -> Vec<String> {
    let (start, end) = if reverse {
        (t(100), t(0))
    } else {
        (t(0), t(100))
    };
    let plan = IntervalPlan {
        start,
        end,
        interval: seconds * 1_000_000,
    };
    let page = plan.page(0, 1000).expect("intervals");
    let mut points = historian.points.iter().cloned().map(Ok::<_, ()>);
    let mut out = aggregate_points(
        &page,
        &[aggregate],
        &historian.config,
        historian.interpolation,
        &mut points,
    )
    .expect("computed");
    out.remove(0)
        .iter()
        .map(|value| render(value, aggregate))
        .collect()
}

fn render(value: &AggregateValue, aggregate: Aggregate) -> String {
    if value.quality == ResultQuality::BadNoData {
        return "BadNoData".into();
    }
    let mut text = String::new();
    if matches!(
        aggregate,
        Aggregate::Start
            | Aggregate::End
            | Aggregate::MinimumActualTime
            | Aggregate::MaximumActualTime
    ) {
        let seconds = (value.time.as_micros() - NOON) / 1_000_000;
        text.push_str(&format!("{:02}:{:02} ", seconds / 60, seconds % 60));
    }
    match &value.value {
        Some(Value::Float(v)) => {
            let rounded = format!("{v:.3}");
            let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
            text.push_str(trimmed);
            text.push(' ');
        }
        Some(Value::Int(v)) => text.push_str(&format!("{v} ")),
        Some(other) => text.push_str(&format!("{other:?} ")),
        None => {}
    }
    let mut parts = vec![match value.quality {
        ResultQuality::Good => "G",
        ResultQuality::GoodNoData => "GoodNoData",
        ResultQuality::UncertainDataSubNormal => "U",
        ResultQuality::Uncertain => "Unc",
        ResultQuality::Bad => "Bad",
        ResultQuality::BadNoData => "BadNoData",
    }];
    match value.origin {
        Origin::Raw => {}
        Origin::Calculated => parts.push("C"),
        Origin::Interpolated => parts.push("I"),
    }
    if value.multi_value {
        parts.push("MV");
    }
    if value.partial {
        parts.push("P");
    }
    text.push_str(&parts.join(","));
    text
}

fn rows(table: &str) -> Vec<String> {
    table
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn interpolative_slopes_or_steps_skips_bad_points_and_extrapolates_past_the_end() {
    // Annex A, Interpolative, ProcessingInterval 5 s.
    let expected_h1 = rows(
        "BadNoData\nBadNoData\n10 G\n15 G,I\n20 G\n25 G,I\n30 G\n35 U,I\n40 U,I\n45 U,I\n50 G\n\
         55 G,I\n60 G\n65 U,I\n70 Unc\n75 U,I\n80 G\n85 G,I\n90 G\n90 U,I",
    );
    assert_eq!(run(&h1(), Aggregate::Interpolative, 5, false), expected_h1);
    let expected_h2 = rows(
        "BadNoData\n11.304 G,I\n13.478 G,I\n15.652 G,I\n17.826 G,I\n20 G\n25.909 G,I\n\
         28.182 G,I\n31.111 U,I\n36.667 U,I\n45 G,I\n51.5 G,I\n54 G,I\n56.5 G,I\n59 G,I\n\
         62.727 U,I\n67.273 U,I\n76.667 G,I\n90 G\n102.5 U,I",
    );
    assert_eq!(run(&h2(), Aggregate::Interpolative, 5, false), expected_h2);
    // Historian 3 is stepped.
    let expected_h3 = rows(
        "BadNoData\n10 G,I\n10 G,I\n10 G,I\n10 G,I\n20 G\n25 G,I\n25 G,I\n30 G,I\n30 U,I\n\
         40 G,I\n50 G,I\n50 G,I\n50 G,I\n50 G,I\n60 G,I\n60 U,I\n70 G,I\n90 G\n90 U,I",
    );
    assert_eq!(run(&h3(), Aggregate::Interpolative, 5, false), expected_h3);
}

#[test]
fn average_takes_the_good_values_of_each_interval_and_never_is_partial() {
    let expected_h1 = rows(
        "BadNoData\nBadNoData\n10 G,C\nBadNoData\n20 G,C\nBadNoData\n30 G,C\nBadNoData\n\
         BadNoData\nBadNoData\n50 G,C\nBadNoData\n60 G,C\nBadNoData\nBadNoData\nBadNoData\n\
         80 G,C\nBadNoData\n90 G,C\nBadNoData",
    );
    assert_eq!(run(&h1(), Aggregate::Average, 5, false), expected_h1);
    let expected_h2 = rows(
        "10 G,C\nBadNoData\nBadNoData\nBadNoData\nBadNoData\n22.5 G,C\nBadNoData\n30 G,C\n\
         BadNoData\n40 G,C\n50 G,C\nBadNoData\nBadNoData\nBadNoData\n60 G,C\nBadNoData\n\
         70 G,C\n80 G,C\n90 G,C\nBadNoData",
    );
    assert_eq!(run(&h2(), Aggregate::Average, 5, false), expected_h2);
    assert_eq!(run(&h3(), Aggregate::Average, 5, false), expected_h2);
}

#[test]
fn time_average_weighs_a_sloped_line_over_the_covered_time() {
    let expected_h1 = rows(
        "BadNoData\nBadNoData\n12.5 G,C\n17.5 G,C\n22.5 G,C\n27.5 G,C\n32.5 U,C\n37.5 U,C\n\
         42.5 U,C\n47.5 U,C\n52.5 G,C\n57.5 G,C\n62.5 U,C\n67.5 U,C\n72.5 U,C\n77.5 U,C\n\
         82.5 G,C\n87.5 G,C\n90 U,C,P\nBadNoData",
    );
    assert_eq!(run(&h1(), Aggregate::TimeAverage, 5, false), expected_h1);
    let expected_h2 = rows(
        "10.652 U,C,P\n12.391 G,C\n14.565 G,C\n16.739 G,C\n18.913 G,C\n23.682 G,C\n27.045 G,C\n\
         29.384 U,C\n33.889 U,C\n40 U,C\n49.45 G,C\n52.75 G,C\n55.25 G,C\n57.75 G,C\n\
         60.618 U,C\n65 U,C\n70.515 U,C\n83.667 G,C\n96.25 U,C,P\nBadNoData",
    );
    assert_eq!(run(&h2(), Aggregate::TimeAverage, 5, false), expected_h2);
    // TimeAverage always slopes: Historian 3 differs only where it extrapolates (stepped).
    let mut expected_h3 = expected_h2.clone();
    expected_h3[18] = "90 U,C,P".into();
    assert_eq!(run(&h3(), Aggregate::TimeAverage, 5, false), expected_h3);
}

#[test]
fn total_is_the_area_under_the_time_average() {
    // Total = TimeAverage x the seconds the data covers (a full 5 s interval here).
    let averages = run(&h1(), Aggregate::TimeAverage, 5, false);
    let totals = run(&h1(), Aggregate::Total, 5, false);
    assert_eq!(totals[2], "62.5 G,C");
    assert_eq!(totals[6], "162.5 U,C");
    assert_eq!(totals[18], "450 U,C,P");
    for (average, total) in averages.iter().zip(&totals) {
        assert_eq!(average == "BadNoData", total == "BadNoData");
    }
    // Historian 2's first interval is covered from 12:00:02 only: 3 s of 10.652.
    assert_eq!(run(&h2(), Aggregate::Total, 5, false)[0], "31.957 U,C,P");
}

#[test]
fn minimum_and_maximum_flag_bad_neighbours_raw_starts_and_repeated_extremes() {
    let min_h1 = rows("10 G,C,P\n20 G,C\nBadNoData\n50 G,C\nBadNoData\n80 G,P\nBadNoData");
    assert_eq!(run(&h1(), Aggregate::Minimum, 16, false), min_h1);
    let min_h2 = rows("10 G,C,P\n20 G,C\n30 U,C\n40 G\n60 U,C\n70 G,C,P\nBadNoData");
    assert_eq!(run(&h2(), Aggregate::Minimum, 16, false), min_h2);
    assert_eq!(run(&h3(), Aggregate::Minimum, 16, false), min_h2);
    let min_h5 = rows("10 G,C,P\n10 G,C\n30 U,C\n30 G\n30 G,C\n70 G,C,MV,P\nBadNoData");
    assert_eq!(run(&h5(), Aggregate::Minimum, 16, false), min_h5);

    let max_h1 = rows("10 G,C,P\n30 G,C\nBadNoData\n60 G,C\nBadNoData\n90 G,C,P\nBadNoData");
    assert_eq!(run(&h1(), Aggregate::Maximum, 16, false), max_h1);
    let max_h2 = rows("10 G,C,P\n25 G,C\n30 U,C\n50 G,C\n60 U,C\n90 G,C,P\nBadNoData");
    assert_eq!(run(&h2(), Aggregate::Maximum, 16, false), max_h2);
    let max_h5 = rows("10 G,C,P\n20 G,C\n30 U,C\n50 G,C\n30 G,C\n80 G,C,P\nBadNoData");
    assert_eq!(run(&h5(), Aggregate::Maximum, 16, false), max_h5);
}

#[test]
fn actual_time_extremes_carry_the_time_of_the_oldest_extreme() {
    // Annex A.11.2 prints its Uncertain results without the Calculated bit; the aggregate's
    // table (§5.4.3.13: Calculated "if the Status was set to Uncertain_DataSubNormal") sets it.
    let max_h1 =
        rows("00:10 10 G,P\n00:30 30 G\nBadNoData\n01:00 60 G\nBadNoData\n01:30 90 G,P\nBadNoData");
    assert_eq!(run(&h1(), Aggregate::MaximumActualTime, 16, false), max_h1);
    let max_h2 = rows(
        "00:02 10 G,P\n00:28 25 G\n00:39 30 U,C\n00:52 50 G\n01:12 60 U,C\n01:30 90 G,P\n\
         BadNoData",
    );
    assert_eq!(run(&h2(), Aggregate::MaximumActualTime, 16, false), max_h2);
    let min_h5 = run(&h5(), Aggregate::MinimumActualTime, 16, false);
    assert_eq!(min_h5[1], "00:28 10 G");
    assert_eq!(min_h5[5], "01:23 70 G,MV,P", "the oldest of two minima");
}

#[test]
fn count_counts_good_values_and_its_status_follows_the_percentages() {
    let count_h1 = rows("1 G,C,P\n2 G,C\nBad,C\n2 G,C\n0 U,C\n2 G,C,P\nBadNoData");
    assert_eq!(run(&h1(), Aggregate::Count, 16, false), count_h1);
    let count_h2 = rows("1 G,C,P\n2 G,C\n1 U,C\n2 G,C\n1 U,C\n3 G,C,P\nBadNoData");
    assert_eq!(run(&h2(), Aggregate::Count, 16, false), count_h2);
    // 50 % Good is Good for Historian 3 (PercentDataGood 50).
    let count_h3 = rows("1 G,C,P\n2 G,C\n1 G,C\n2 G,C\n1 G,C\n3 G,C,P\nBadNoData");
    assert_eq!(run(&h3(), Aggregate::Count, 16, false), count_h3);
    assert_eq!(run(&h5(), Aggregate::Count, 16, false), count_h2);
}

#[test]
fn start_and_end_return_raw_points_with_their_own_status() {
    let start_h1 = rows(
        "00:10 10 G,P\n00:20 20 G\n00:40 Bad\n00:50 50 G\n01:10 70 Unc\n01:20 80 G,P\nBadNoData",
    );
    assert_eq!(run(&h1(), Aggregate::Start, 16, false), start_h1);
    let end_h2 = rows(
        "00:02 10 G,P\n00:28 25 G\n00:42 Bad\n00:52 50 G\n01:17 70 Unc\n01:30 90 G,P\nBadNoData",
    );
    assert_eq!(run(&h2(), Aggregate::End, 16, false), end_h2);
    let end_h5 = run(&h5(), Aggregate::End, 16, false);
    assert_eq!(end_h5[1], "00:28 10 G");
    assert_eq!(end_h5[5], "01:30 70 G,P");
}

#[test]
fn range_and_delta_use_the_good_values() {
    // Not in Annex A; from §5.4.3.14 and §5.4.3.27 by hand.
    let range_h1 = rows("0 G,C,P\n10 G,C\nBadNoData\n10 G,C\nBadNoData\n10 G,C,P\nBadNoData");
    assert_eq!(run(&h1(), Aggregate::Range, 16, false), range_h1);
    // [12:00:32, 12:00:48) of Historian 5: 30 then a Bad point, passed over -> U.
    // [12:01:04, 12:01:20): 30 then an Uncertain 70 (not Good), passed over -> U.
    let delta_h5 = rows("0 G,C,P\n-10 G,C\n0 U,C\n20 G,C\n0 U,C\n0 G,C,P\nBadNoData");
    assert_eq!(run(&h5(), Aggregate::Delta, 16, false), delta_h5);
}

#[test]
fn durations_split_each_interval_into_regions_of_the_quality_held() {
    // §5.4.3.31-33 literally: the first region holds the quality of the point at or before the
    // start (none: Bad), each point starts a region, Uncertain regions are neither.
    let good = rows("6000 G,C,P\n16000 G,C\n8000 G,C\n14000 G,C\n6000 G,C\n16000 G,C,P\nBadNoData");
    assert_eq!(run(&h1(), Aggregate::DurationGood, 16, false), good);
    let bad = rows("10000 G,C,P\n0 G,C\n8000 G,C\n2000 G,C\n0 G,C\n0 G,C,P\nBadNoData");
    assert_eq!(run(&h1(), Aggregate::DurationBad, 16, false), bad);
    let percent = rows("37.5 G,C,P\n100 G,C\n50 G,C\n87.5 G,C\n37.5 G,C\n100 G,C,P\nBadNoData");
    assert_eq!(run(&h1(), Aggregate::PercentGood, 16, false), percent);
    // Historian 2: 12:00:00-12:00:02 has no data (Bad), the Bad point holds 12:00:42-48.
    let good_h2 = run(&h2(), Aggregate::DurationGood, 16, false);
    assert_eq!(good_h2[0], "14000 G,C,P");
    assert_eq!(good_h2[2], "10000 G,C");
    assert_eq!(good_h2[4], "13000 G,C", "8 s and 5 s Good, 3 s Uncertain");
}

#[test]
fn backwards_intervals_run_from_the_start_and_come_newest_first() {
    let forward = run(&h1(), Aggregate::Average, 10, false);
    // 12:01:40 back to 12:00:00 every 10 s: (12:01:30, 12:01:40], (12:01:20, 12:01:30], ...
    // each includes its later bound, so each holds the point at its start.
    let backward = run(&h1(), Aggregate::Average, 10, true);
    assert_eq!(backward.len(), 10);
    assert_eq!(backward[0], "BadNoData", "nothing after 12:01:30");
    assert_eq!(backward[1], "90 G,C");
    assert_eq!(backward[9], "10 G,C");
    assert_eq!(
        forward[0], "BadNoData",
        "[12:00:00, 12:00:10) excludes 12:00:10"
    );
    assert_eq!(forward[1], "10 G,C");
    assert_eq!(forward[9], "90 G,C");
    let counts = run(&h1(), Aggregate::Count, 10, true);
    assert_eq!(
        counts[1], "1 G,C,P",
        "the newest point is in (12:01:20, 12:01:30]"
    );
}

#[test]
fn one_pass_answers_several_aggregates_and_a_series_without_points_has_no_data() {
    let historian = h2();
    let plan = IntervalPlan {
        start: t(0),
        end: t(100),
        interval: 0,
    };
    let page = plan.page(0, 10).unwrap();
    let wanted = [Aggregate::Minimum, Aggregate::Maximum, Aggregate::Count];
    let mut points = historian.points.iter().cloned().map(Ok::<_, ()>);
    let out = aggregate_points(
        &page,
        &wanted,
        &historian.config,
        historian.interpolation,
        &mut points,
    )
    .unwrap();
    let rendered: Vec<String> = out
        .iter()
        .zip(wanted)
        .map(|(values, a)| render(&values[0], a))
        .collect();
    assert_eq!(rendered, ["10 U,C,P", "90 U,C,P", "10 U,C,P"]);

    let mut none = std::iter::empty::<Result<RawPoint, ()>>();
    let out = aggregate_points(
        &page,
        &Aggregate::ALL,
        &historian.config,
        Interpolation::Sloped,
        &mut none,
    )
    .unwrap();
    for values in out {
        assert_eq!(values[0].quality, ResultQuality::BadNoData);
    }
}

#[test]
fn names_and_configuration_limits() {
    assert_eq!(
        Aggregate::from_name("time_average"),
        Some(Aggregate::TimeAverage)
    );
    assert_eq!(
        Aggregate::from_name("TimeAverage"),
        Some(Aggregate::TimeAverage)
    );
    assert_eq!(Aggregate::from_name("MAXIMUM"), Some(Aggregate::Maximum));
    assert_eq!(Aggregate::from_name("median"), None);
    for aggregate in Aggregate::ALL {
        assert_eq!(Aggregate::from_name(aggregate.name()), Some(aggregate));
    }
    assert!(AggregateConfig::default().is_valid());
    let invalid = AggregateConfig {
        percent_data_bad: 80,
        percent_data_good: 0,
        ..AggregateConfig::default()
    };
    assert!(!invalid.is_valid());
}
