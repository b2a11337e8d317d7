//! Calendar buckets of ChirpStack's metric aggregations (UTC): where a bucket starts and where
//! the next one does. The poller uses them to ask for the bucket of a device's last uplink;
//! the simulator to fold samples the way ChirpStack does.

use chirpstack_api::common::Aggregation;

use crate::model::Timestamp;

const MINUTE_US: i64 = 60_000_000;
const HOUR_US: i64 = 60 * MINUTE_US;
const DAY_US: i64 = 24 * HOUR_US;

/// Where the bucket of `aggregation` that contains `ts` starts.
pub fn bucket_start(aggregation: Aggregation, ts: Timestamp) -> Timestamp {
    let us = ts.as_micros();
    Timestamp::from_micros(match aggregation {
        // Saturating: request times reach the limits of i64 microseconds.
        Aggregation::Minute => us.saturating_sub(us.rem_euclid(MINUTE_US)),
        Aggregation::Hour => us.saturating_sub(us.rem_euclid(HOUR_US)),
        Aggregation::Day => us.saturating_sub(us.rem_euclid(DAY_US)),
        Aggregation::Month => {
            let (year, month, _) = civil_from_days(us.div_euclid(DAY_US));
            days_from_civil(year, month, 1).saturating_mul(DAY_US)
        }
    })
}

/// Where the bucket after the one starting at `start` starts.
pub fn next_bucket(aggregation: Aggregation, start: Timestamp) -> Timestamp {
    let us = start.as_micros();
    Timestamp::from_micros(match aggregation {
        Aggregation::Minute => us.saturating_add(MINUTE_US),
        Aggregation::Hour => us.saturating_add(HOUR_US),
        Aggregation::Day => us.saturating_add(DAY_US),
        Aggregation::Month => {
            let (year, month, _) = civil_from_days(us.div_euclid(DAY_US));
            let (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            days_from_civil(year, month, 1).saturating_mul(DAY_US)
        }
    })
}

/// The bucket `[start, end)` of `aggregation` that contains `time`.
pub fn bucket_of(aggregation: Aggregation, time: Timestamp) -> (Timestamp, Timestamp) {
    let start = bucket_start(aggregation, time);
    (start, next_bucket(aggregation, start))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of day `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn buckets_start_on_calendar_boundaries() {
        let t = ts("2024-02-29T13:47:12.5Z");
        assert_eq!(
            bucket_start(Aggregation::Minute, t),
            ts("2024-02-29T13:47:00Z")
        );
        assert_eq!(
            bucket_start(Aggregation::Hour, t),
            ts("2024-02-29T13:00:00Z")
        );
        assert_eq!(
            bucket_start(Aggregation::Day, t),
            ts("2024-02-29T00:00:00Z")
        );
        assert_eq!(
            bucket_start(Aggregation::Month, t),
            ts("2024-02-01T00:00:00Z")
        );
        assert_eq!(
            next_bucket(Aggregation::Month, ts("2024-12-01T00:00:00Z")),
            ts("2025-01-01T00:00:00Z")
        );
        assert_eq!(
            next_bucket(Aggregation::Month, ts("2024-02-01T00:00:00Z")),
            ts("2024-03-01T00:00:00Z")
        );
        for days in [-800_000, -1, 0, 59, 19_782, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
