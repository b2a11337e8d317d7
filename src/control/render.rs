//! Human output of `opcgw ctl`: a result rendered as aligned `key: value` lines and tables.
//!
//! The renderer reads the result as JSON rather than as the daemon's types, so a field the
//! daemon adds later still shows (as an extra column, after the known ones, in name order) and
//! an older `ctl` never fails on a newer daemon. Output is deterministic for a given result:
//! known columns in a fixed order per command, the rest sorted. Strings from the daemon (device
//! names, error details) have control characters escaped so they cannot drive the terminal.

use serde_json::{Map, Value};

use super::protocol::Request;
use crate::model::Timestamp;
use crate::security::sanitize_for_log;

/// Widest table cell; longer values end in `…` (use `--json` for the whole value).
const MAX_CELL_CHARS: usize = 60;
/// Widest value of a `key: value` line (messages, summaries).
const MAX_VALUE_CHARS: usize = 200;
/// Between two table columns.
const COLUMN_GAP: &str = "  ";

/// Integer fields holding a [`Timestamp`] (microseconds since the epoch), shown as RFC 3339.
const TIME_KEYS: &[&str] = &[
    "time",
    "source_time",
    "received_time",
    "created",
    "updated",
    "last_seen",
    "started",
    "started_at",
    "since",
    "until",
    "last_poll",
];

/// Byte arrays shown as hex rather than as lists of numbers.
const BYTES_KEYS: &[&str] = &["payload"];

/// How one command's result is laid out.
struct Layout {
    /// Preferred order of columns and keys; others follow in name order.
    order: &'static [&'static str],
    /// What an empty list says.
    empty: &'static str,
}

fn layout(request: &Request) -> Layout {
    match request {
        Request::Status => Layout {
            order: &[
                "version",
                "uptime_seconds",
                "tree",
                "upstream",
                "storage",
                "config_generation",
                "role",
                "name",
                "state",
                "restarts",
                "start_failures",
                "up_for_ms",
                "next_retry_in_ms",
                "summary",
                "last_error",
            ],
            empty: "(none)",
        },
        Request::Reload => Layout {
            order: &["applied", "generation", "changed", "restart_required"],
            empty: "(none)",
        },
        Request::Discover => Layout {
            order: &[
                "outcome",
                "listed",
                "gone",
                "added_devices",
                "removed_devices",
                "skipped_measurements",
                "generation",
                "duration_ms",
                "error",
            ],
            empty: "(none)",
        },
        Request::Devices => Layout {
            order: &[
                "device_id",
                "device_name",
                "name",
                "application",
                "origin",
                "quality",
                "last_value",
                "last_seen",
                "metrics",
                "commands",
            ],
            empty: "no devices",
        },
        Request::Read { .. } => Layout {
            order: &[
                "device_id",
                "metric",
                "value",
                "unit",
                "quality",
                "source_time",
                "received_time",
                "origin",
            ],
            empty: "no values",
        },
        Request::History {
            aggregate: Some(_), ..
        } => Layout {
            order: &["time", "value", "quality", "origin", "partial"],
            empty: "no intervals in this range",
        },
        Request::History { .. } => Layout {
            order: &["time", "value", "origin"],
            empty: "no values in this range",
        },
        Request::CommandSend { .. } | Request::CommandList { .. } => Layout {
            order: &[
                "id",
                "device_id",
                "command_name",
                "state",
                "created",
                "updated",
                "transmitted",
                "queue_item_id",
                "detail",
            ],
            empty: "no commands",
        },
        Request::LogLevel { .. } => Layout {
            order: &["filter", "previous"],
            empty: "(none)",
        },
    }
}

/// Renders `result` (the `result` of a successful response to `request`) for a terminal. The
/// text ends with a newline.
pub fn render(request: &Request, result: &Value) -> String {
    let layout = layout(request);
    let mut out = match result {
        Value::Array(items) => render_list(items, &layout),
        Value::Object(fields) => render_object(fields, &layout),
        Value::Null => "ok".to_string(),
        scalar => cell("", scalar, MAX_VALUE_CHARS),
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// An object: its plain fields as aligned `key: value` lines (nested objects as dotted keys,
/// `upstream.state`), then each list of objects, at any depth, as a table under its dotted name.
/// A lone list (`{"devices":[…]}`) is shown as a bare table.
fn render_object(fields: &Map<String, Value>, layout: &Layout) -> String {
    let mut pairs = Vec::new();
    let mut lists = Vec::new();
    collect(None, fields, layout, &mut pairs, &mut lists);
    if let ([], [(_, items)]) = (pairs.as_slice(), lists.as_slice()) {
        return render_list(items, layout);
    }
    let mut out = key_values(&pairs);
    for (name, items) in lists {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{}:\n", sanitize_for_log(&name, MAX_CELL_CHARS)));
        out.push_str(&render_list(items, layout));
    }
    if out.is_empty() {
        out.push_str("ok");
    }
    out
}

/// Walks `fields`, sorting leaves into `pairs` and lists of objects into `lists`, both named
/// by their dotted path. Value-shaped objects (`{"type":"Float","value":1.5}`) are leaves.
fn collect<'a>(
    prefix: Option<&str>,
    fields: &'a Map<String, Value>,
    layout: &Layout,
    pairs: &mut Vec<(String, String)>,
    lists: &mut Vec<(String, &'a [Value])>,
) {
    for key in ordered_keys(fields.keys(), layout.order) {
        let Some(value) = fields.get(key) else {
            continue;
        };
        let path = match prefix {
            Some(prefix) => format!("{prefix}.{key}"),
            None => key.clone(),
        };
        match value {
            Value::Array(items) if is_table(items) => lists.push((path, items)),
            Value::Object(inner) if !is_typed_value(inner) => {
                collect(Some(&path), inner, layout, pairs, lists)
            }
            _ => pairs.push((path, cell(key, value, MAX_VALUE_CHARS))),
        }
    }
}

fn key_values(pairs: &[(String, String)]) -> String {
    let keys: Vec<String> = pairs
        .iter()
        .map(|(k, _)| sanitize_for_log(k, MAX_CELL_CHARS))
        .collect();
    let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, (_, value)) in keys.iter().zip(pairs) {
        let label = format!("{key}:");
        out.push_str(format!("{label:<width$} {value}").trim_end());
        out.push('\n');
    }
    out
}

/// A list of objects as a table; a list of scalars one per line.
fn render_list(items: &[Value], layout: &Layout) -> String {
    if items.is_empty() {
        return format!("{}\n", layout.empty);
    }
    if !is_table(items) {
        return items
            .iter()
            .map(|item| cell("", item, MAX_VALUE_CHARS) + "\n")
            .collect();
    }
    let rows: Vec<&Map<String, Value>> = items.iter().filter_map(Value::as_object).collect();
    let mut all_keys: Vec<&String> = rows.iter().flat_map(|row| row.keys()).collect();
    all_keys.sort();
    all_keys.dedup();
    let columns = ordered_keys(all_keys.into_iter(), layout.order);

    let header: Vec<String> = columns
        .iter()
        .map(|c| sanitize_for_log(&c.to_uppercase(), MAX_CELL_CHARS))
        .collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| match row.get(*c) {
                    Some(value) => cell(c, value, MAX_CELL_CHARS),
                    None => "-".to_string(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&body)
                .map(|line| line[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&body) {
        let mut text = String::new();
        for (i, (value, width)) in line.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str(COLUMN_GAP);
            }
            text.push_str(&format!("{value:<width$}"));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// Preferred keys first (those present), then the rest in name order.
fn ordered_keys<'a>(keys: impl Iterator<Item = &'a String>, order: &[&str]) -> Vec<&'a String> {
    let mut keys: Vec<&String> = keys.collect();
    keys.sort_by_key(|k| {
        (
            order
                .iter()
                .position(|o| *o == k.as_str())
                .unwrap_or(usize::MAX),
            k.to_string(),
        )
    });
    keys
}

/// A list shown as a table: non-empty and made of objects only (an empty list is shown as
/// its "no …" line, in a table's place).
fn is_table(items: &[Value]) -> bool {
    items.is_empty() || items.iter().all(Value::is_object)
}

/// A `model::Value` as serde writes it: `{"type":"Float","value":1.5}`.
fn is_typed_value(fields: &Map<String, Value>) -> bool {
    fields.len() == 2 && fields.contains_key("type") && fields.contains_key("value")
}

/// One value as text, at most `max` characters.
fn cell(key: &str, value: &Value, max: usize) -> String {
    let text = match value {
        Value::Null => "-".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if TIME_KEYS.contains(&key) => match n.as_i64() {
            Some(micros) => Timestamp::from_micros(micros).to_rfc3339(),
            None => n.to_string(),
        },
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Object(fields) if is_typed_value(fields) => match fields.get("value") {
            Some(inner) => return cell(key, inner, max),
            None => "-".to_string(),
        },
        Value::Array(items) if BYTES_KEYS.contains(&key) => match as_bytes(items) {
            Some(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            None => Value::Array(items.clone()).to_string(),
        },
        Value::Array(items) if items.iter().all(is_scalar) => items
            .iter()
            .map(|item| cell(key, item, max))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    sanitize_for_log(&text, max)
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn as_bytes(items: &[Value]) -> Option<Vec<u8>> {
    items
        .iter()
        .map(|item| item.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect()
}
