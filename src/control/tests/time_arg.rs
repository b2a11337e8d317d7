use std::time::Duration;

use crate::control::{history_window, parse_time_arg, ErrorCode, MAX_RELATIVE_SECONDS};
use crate::model::Timestamp;

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").unwrap()
}

fn ago(seconds: u64) -> Timestamp {
    now().saturating_sub(Duration::from_secs(seconds))
}

#[test]
fn relative_times_count_back_from_now() {
    assert_eq!(parse_time_arg("30s", now()), Ok(ago(30)));
    assert_eq!(parse_time_arg("15m", now()), Ok(ago(15 * 60)));
    assert_eq!(parse_time_arg("2h", now()), Ok(ago(2 * 3600)));
    assert_eq!(parse_time_arg(" 7d ", now()), Ok(ago(7 * 86_400)));
    assert_eq!(parse_time_arg("0m", now()), Ok(now()));
    assert_eq!(parse_time_arg("now", now()), Ok(now()));
    assert_eq!(parse_time_arg("NOW", now()), Ok(now()));
}

#[test]
fn absolute_times_are_rfc3339_with_any_offset() {
    assert_eq!(
        parse_time_arg("2024-05-01T14:00:00+02:00", now()),
        Ok(now())
    );
    assert_eq!(
        parse_time_arg("2024-04-30T12:00:00.5Z", now()),
        Ok(ago(86_400).saturating_add(Duration::from_millis(500)))
    );
    // A bare date is its midnight, UTC.
    assert_eq!(parse_time_arg("2024-05-01", now()), Ok(ago(12 * 3600)));
}

#[test]
fn malformed_times_are_refused_with_the_accepted_forms() {
    for text in [
        "",
        "15",
        "h",
        "1.5h",
        "-5m",
        "+5m",
        "15 m",
        "5w",
        "yesterday",
        "2024-13-01",
        "１h",
    ] {
        let err = parse_time_arg(text, now()).unwrap_err();
        assert!(
            err.contains("RFC 3339") && err.contains("15m"),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn relative_times_are_bounded_and_never_overflow() {
    let max_days = MAX_RELATIVE_SECONDS / 86_400;
    assert_eq!(
        parse_time_arg(&format!("{max_days}d"), now()),
        Ok(ago(MAX_RELATIVE_SECONDS))
    );
    for text in [
        format!("{}d", max_days + 1),
        "99999999999d".into(),
        "999999999999999999999999s".into(),
        format!("{}s", u64::MAX),
    ] {
        let err = parse_time_arg(&text, now()).unwrap_err();
        assert!(err.contains("further back"), "{text}: {err}");
    }
    // Near the start of representable time the subtraction itself is checked.
    let dawn = Timestamp::from_micros(i64::MIN + 10);
    assert!(parse_time_arg("1s", dawn).is_err());
}

#[test]
fn a_history_window_defaults_to_now_and_must_not_be_empty() {
    assert_eq!(history_window("1h", None, now()), Ok((ago(3600), now())));
    assert_eq!(
        history_window("2h", Some("1h"), now()),
        Ok((ago(7200), ago(3600)))
    );
    let err = history_window("1h", Some("2h"), now()).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(err.message.contains("`since`") && err.message.contains("`until`"));
    let err = history_window("now", None, now()).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    let err = history_window("bogus", None, now()).unwrap_err();
    assert!(err.message.starts_with("field `since`"), "{}", err.message);
    let err = history_window("1h", Some("bogus"), now()).unwrap_err();
    assert!(err.message.starts_with("field `until`"), "{}", err.message);
}
