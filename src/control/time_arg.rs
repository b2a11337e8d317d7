//! Time arguments of `history`: an absolute RFC 3339 time, or a relative one ("15m", "2h",
//! "7d" before now) because that is what an operator types at a terminal.

use super::protocol::ErrorBody;
use crate::model::Timestamp;
use crate::security::sanitize_for_log;

/// The furthest back a relative time may reach (a century): far beyond any retention, and it
/// keeps the arithmetic far from overflowing.
pub const MAX_RELATIVE_SECONDS: u64 = 100 * 366 * 86_400;

/// Digits a relative amount may have; more cannot be within [`MAX_RELATIVE_SECONDS`] anyway.
const MAX_AMOUNT_DIGITS: usize = 12;

/// How much of a bad argument an error message quotes.
const MAX_QUOTED_CHARS: usize = 64;

const MICROS_PER_SECOND: i64 = 1_000_000;

/// Parses `text` as RFC 3339 (`2024-05-01T12:00:00Z`, any offset), `now`, or `<n><unit>` with
/// unit `s`, `m` (minutes), `h` or `d`, meaning that long before `now`.
pub fn parse_time_arg(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(seconds) = relative_seconds(text)? {
        // Bounded above, so the product fits an i64 with room to spare.
        let micros = i64::try_from(seconds)
            .ok()
            .and_then(|s| s.checked_mul(MICROS_PER_SECOND))
            .ok_or_else(|| out_of_range(text))?;
        return now
            .as_micros()
            .checked_sub(micros)
            .map(Timestamp::from_micros)
            .ok_or_else(|| out_of_range(text));
    }
    Timestamp::parse_rfc3339(text).ok_or_else(|| {
        format!(
            "`{}` is neither an RFC 3339 time (2024-05-01T12:00:00Z) nor a relative one \
             (15m, 2h, 7d)",
            sanitize_for_log(text, MAX_QUOTED_CHARS)
        )
    })
}

/// Parses a processing interval: `0` (one interval over the whole window) or `<n><unit>`
/// with unit `s`, `m`, `h` or `d`; microseconds.
pub fn parse_interval_arg(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(0);
    }
    match relative_seconds(text)? {
        Some(seconds) => Ok(i64::try_from(seconds).unwrap_or(i64::MAX) * MICROS_PER_SECOND),
        None => Err(format!(
            "`{}` is not an interval (0, 30s, 15m, 1h, 1d)",
            sanitize_for_log(text, MAX_QUOTED_CHARS)
        )),
    }
}

/// The seconds of a relative time, `None` when `text` does not have that shape (it may still
/// be RFC 3339), an error when it does but is too far back.
fn relative_seconds(text: &str) -> Result<Option<u64>, String> {
    let Some(unit) = text.chars().last() else {
        return Ok(None);
    };
    let unit_seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Ok(None),
    };
    let amount = &text[..text.len() - unit.len_utf8()];
    if amount.is_empty() || !amount.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    if amount.len() > MAX_AMOUNT_DIGITS {
        return Err(out_of_range(text));
    }
    amount
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_seconds))
        .filter(|&seconds| seconds <= MAX_RELATIVE_SECONDS)
        .map(Some)
        .ok_or_else(|| out_of_range(text))
}

fn out_of_range(text: &str) -> String {
    format!(
        "`{}` reaches further back than {} days",
        sanitize_for_log(text, MAX_QUOTED_CHARS),
        MAX_RELATIVE_SECONDS / 86_400
    )
}

/// The window `[since, until)` of a `history` request, `until` defaulting to `now`. Errors are
/// `bad_request` bodies naming the field, ready for the response.
pub fn history_window(
    since: &str,
    until: Option<&str>,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), ErrorBody> {
    let start = parse_time_arg(since, now)
        .map_err(|message| ErrorBody::bad_request(format!("field `since`: {message}")))?;
    let end = match until {
        Some(until) => parse_time_arg(until, now)
            .map_err(|message| ErrorBody::bad_request(format!("field `until`: {message}")))?,
        None => now,
    };
    if start >= end {
        return Err(ErrorBody::bad_request(format!(
            "`since` ({start}) must be before `until` ({end})"
        )));
    }
    Ok((start, end))
}
