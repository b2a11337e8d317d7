//! The JSON shapes of docs/web.md (the API contract). The devices views, built from the
//! configuration, the latest samples and the staleness rule, are in [`devices`].

mod devices;

pub use devices::{ApplicationView, CommandSpecView, DeviceView, DevicesView, MetricView};

use serde::{Serialize, Serializer};

use crate::commands::CommandState;
use crate::model::{Quality, Sample, Timestamp, Value};
use crate::storage::CommandRecord;

/// A time as the API writes it: RFC 3339 in UTC with milliseconds ("2026-11-29T21:40:01.123Z").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WebTime(pub Timestamp);

impl WebTime {
    pub fn text(self) -> String {
        self.formatted().as_str().to_owned()
    }

    /// The text in a stack buffer, digits written by hand (`write!` with padding costs more than
    /// everything else here): `/api/devices` writes two times per metric, 20,000 for a fleet of
    /// 1,000 devices x 10 metrics, without allocating.
    fn formatted(self) -> TimeText {
        let millis = self.0.as_micros().div_euclid(1000);
        let seconds = millis.div_euclid(1000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let of_day = seconds.rem_euclid(86_400);
        let mut text = TimeText {
            bytes: [0; 32],
            len: 0,
        };
        if (0..=9999).contains(&year) {
            text.digits(year as u64, 4);
        } else {
            // Outside what RFC 3339 can say; written as `write!` would, for completeness.
            use std::fmt::Write as _;
            let _ = write!(text, "{year:04}");
        }
        text.push(b'-');
        text.digits(u64::from(month), 2);
        text.push(b'-');
        text.digits(u64::from(day), 2);
        text.push(b'T');
        text.digits((of_day / 3600) as u64, 2);
        text.push(b':');
        text.digits((of_day / 60 % 60) as u64, 2);
        text.push(b':');
        text.digits((of_day % 60) as u64, 2);
        text.push(b'.');
        text.digits(millis.rem_euclid(1000) as u64, 3);
        text.push(b'Z');
        text
    }
}

/// A formatted time on the stack (an RFC 3339 time with milliseconds is 24 bytes; the buffer
/// also holds the six-digit signed years a `Timestamp` can reach).
struct TimeText {
    bytes: [u8; 32],
    len: usize,
}

impl TimeText {
    fn as_str(&self) -> &str {
        // Only ASCII digits, signs and separators are ever written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// `value` in exactly `width` decimal digits (the caller keeps it in range).
    fn digits(&mut self, mut value: u64, width: usize) {
        let end = self.len + width;
        let Some(slots) = self.bytes.get_mut(self.len..end) else {
            return;
        };
        for slot in slots.iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len = end;
    }
}

impl std::fmt::Write for TimeText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl From<Timestamp> for WebTime {
    fn from(t: Timestamp) -> Self {
        Self(t)
    }
}

impl Serialize for WebTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.formatted().as_str())
    }
}

/// A value as plain JSON: a number, a boolean or a string (a non-finite float is `null`).
pub fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Float(v) => {
            serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Int(v) => (*v).into(),
        Value::Bool(v) => (*v).into(),
        Value::String(v) => v.clone().into(),
    }
}

/// A value as [`value_json`] writes it, without building the JSON value first.
fn serialize_value<S: Serializer>(value: &Value, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Value::Float(v) if v.is_finite() => s.serialize_f64(*v),
        Value::Float(_) => s.serialize_none(),
        Value::Int(v) => s.serialize_i64(*v),
        Value::Bool(v) => s.serialize_bool(*v),
        Value::String(v) => s.serialize_str(v),
    }
}

/// A value that may not have arrived yet (`null`).
fn serialize_optional_value<S: Serializer>(
    value: &Option<&Value>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serialize_value(value, s),
        None => s.serialize_none(),
    }
}

/// The quality of a value (or of a device: see [`device_quality`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityView {
    // Declared from best to worst: `max` is the worst.
    Good,
    Waiting,
    Uncertain,
    Bad,
}

/// A device's quality: the worst of the metrics that have reported, so one metric a device
/// sends rarely (a battery level once a day) does not paint a reporting device "waiting";
/// `waiting` only while no metric has reported at all.
pub fn device_quality(metrics: impl IntoIterator<Item = QualityView>) -> QualityView {
    let mut any = false;
    let worst = metrics
        .into_iter()
        .inspect(|_| any = true)
        .filter(|q| *q != QualityView::Waiting)
        .max();
    match worst {
        Some(quality) => quality,
        None if any => QualityView::Waiting,
        None => QualityView::Good,
    }
}

impl From<Quality> for QualityView {
    fn from(q: Quality) -> Self {
        match q {
            Quality::Good => Self::Good,
            Quality::Uncertain => Self::Uncertain,
            Quality::Bad => Self::Bad,
            Quality::WaitingForInitialData => Self::Waiting,
        }
    }
}

// ---------------------------------------------------------------- status

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Degraded,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorState {
    Starting,
    Running,
    Backoff,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamState {
    Starting,
    Connected,
    Degraded,
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActorView {
    pub role: String,
    pub state: ActorState,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub next_retry: Option<WebTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamView {
    pub state: UpstreamState,
    pub reason: Option<String>,
    pub last_poll: Option<WebTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PollView {
    pub cycles: u64,
    pub failed_cycles: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StreamsView {
    pub open: u64,
    pub failing: u64,
    /// Devices without a stream (the pool is full): polled through `GetMetrics` only.
    pub polled_only: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IngestView {
    pub samples_per_second: f64,
    pub samples_total: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QualityCounts {
    pub good: u64,
    pub uncertain: u64,
    pub bad: u64,
    pub waiting: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StorageView {
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OpcuaView {
    pub sessions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EditingView {
    pub enabled: bool,
    pub reason: Option<String>,
}

/// `GET /api/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusView {
    pub version: String,
    pub started_at: WebTime,
    pub uptime_seconds: u64,
    pub config_generation: u64,
    pub verdict: Verdict,
    pub actors: Vec<ActorView>,
    pub upstream: UpstreamView,
    pub poll: PollView,
    pub streams: StreamsView,
    pub ingest: IngestView,
    pub quality: QualityCounts,
    pub storage: StorageView,
    pub opcua: OpcuaView,
    pub editing: EditingView,
}

impl Verdict {
    /// The verdict at a glance: `down` when ChirpStack is unreachable or a duty is stopped,
    /// `degraded` when a duty is restarting or upstream is partly failing, `ok` otherwise.
    pub fn of(actors: &[ActorView], upstream: &UpstreamView) -> Self {
        let stopped = actors.iter().any(|a| a.state == ActorState::Stopped);
        if stopped || upstream.state == UpstreamState::Down {
            return Self::Down;
        }
        let unsettled = actors.iter().any(|a| a.state != ActorState::Running);
        if unsettled || upstream.state != UpstreamState::Connected {
            return Self::Degraded;
        }
        Self::Ok
    }
}

// ---------------------------------------------------------------- history

/// One stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPoint {
    pub time: Timestamp,
    pub value: Value,
}

/// The rows of one time bucket, summarised in storage.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketPoint {
    pub start: Timestamp,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub n: u64,
}

/// What the backend answers a history request with.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryPoints {
    Raw(Vec<RawPoint>),
    Buckets(Vec<BucketPoint>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PointView {
    Raw {
        t: WebTime,
        v: serde_json::Value,
    },
    Bucket {
        t: WebTime,
        min: f64,
        max: f64,
        avg: f64,
        n: u64,
    },
}

/// `GET /api/devices/{device_id}/metrics/{metric}/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryView {
    pub device_id: String,
    pub metric: String,
    pub from: WebTime,
    pub to: WebTime,
    pub downsampled: bool,
    pub points: Vec<PointView>,
}

impl HistoryView {
    pub fn new(
        device_id: String,
        metric: String,
        from: Timestamp,
        to: Timestamp,
        points: HistoryPoints,
    ) -> Self {
        let (downsampled, points) = match points {
            HistoryPoints::Raw(rows) => (
                false,
                rows.iter()
                    .map(|r| PointView::Raw {
                        t: r.time.into(),
                        v: value_json(&r.value),
                    })
                    .collect(),
            ),
            HistoryPoints::Buckets(buckets) => (
                true,
                buckets
                    .iter()
                    .map(|b| PointView::Bucket {
                        t: b.start.into(),
                        min: b.min,
                        max: b.max,
                        avg: b.avg,
                        n: b.n,
                    })
                    .collect(),
            ),
        };
        Self {
            device_id,
            metric,
            from: from.into(),
            to: to.into(),
            downsampled,
            points,
        }
    }
}

// ---------------------------------------------------------------- commands

/// A command as `GET /api/commands` and the `command` event show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandView {
    pub id: u64,
    pub device_id: String,
    pub command_name: String,
    pub state: CommandState,
    pub detail: Option<String>,
    pub requested_by: String,
    pub created: WebTime,
    pub updated: WebTime,
}

impl From<&CommandRecord> for CommandView {
    fn from(r: &CommandRecord) -> Self {
        Self {
            id: r.id,
            device_id: r.downlink.device_id.clone(),
            command_name: r.downlink.command_name.clone(),
            state: r.state,
            detail: r.detail.clone(),
            requested_by: r.requested_by.clone(),
            created: r.created.into(),
            updated: r.updated.into(),
        }
    }
}

// ---------------------------------------------------------------- live events

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueEvent {
    pub device_id: String,
    pub metric: String,
    #[serde(serialize_with = "serialize_value")]
    pub value: Value,
    pub timestamp: WebTime,
    pub received: WebTime,
    pub quality: QualityView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityEvent {
    pub device_id: String,
    pub metric: String,
    pub quality: QualityView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamEvent {
    pub state: UpstreamState,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthEvent {
    pub role: String,
    pub state: ActorState,
    pub restarts: u32,
}

/// One change pushed to `GET /api/events`.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    Value(ValueEvent),
    Quality(QualityEvent),
    Upstream(UpstreamEvent),
    Command(CommandView),
    Health(HealthEvent),
    /// A new configuration generation is live (an edit or a reload): pages refetch.
    Config(ConfigEvent),
}

/// `config` live event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigEvent {
    pub generation: u64,
}

impl LiveEvent {
    /// A new sample, with its quality at arrival.
    pub fn value_of(sample: &Sample, quality: Quality) -> Self {
        Self::Value(ValueEvent {
            device_id: sample.device_id.to_string(),
            metric: sample.metric.to_string(),
            value: sample.value.clone(),
            timestamp: sample.source_time.into(),
            received: sample.received_time.into(),
            quality: quality.into(),
        })
    }

    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Value(_) => "value",
            Self::Quality(_) => "quality",
            Self::Upstream(_) => "upstream",
            Self::Command(_) => "command",
            Self::Health(_) => "health",
            Self::Config(_) => "config",
        }
    }

    /// The SSE `data` line.
    pub fn data(&self) -> String {
        let json = match self {
            Self::Value(e) => serde_json::to_string(e),
            Self::Quality(e) => serde_json::to_string(e),
            Self::Upstream(e) => serde_json::to_string(e),
            Self::Command(e) => serde_json::to_string(e),
            Self::Health(e) => serde_json::to_string(e),
            Self::Config(e) => serde_json::to_string(e),
        };
        // These types hold only strings, numbers and finite-or-null floats: serialising them
        // cannot fail, and an empty object is still a valid line if it ever did.
        json.unwrap_or_else(|_| "{}".to_string())
    }
}

/// A live event encoded once as its SSE text (`event: <name>\ndata: <json>\n\n`), shared by
/// every open stream: with 50 pages open at 10,000 samples/s, encoding per stream was most of
/// the console's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFrame(std::sync::Arc<str>);

impl LiveFrame {
    /// `event: <name>\ndata: <data>\n\n`; `data` must be one line (compact JSON is).
    pub fn event(name: &str, data: &str) -> Self {
        Self(format!("event: {name}\ndata: {data}\n\n").into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<LiveEvent> for LiveFrame {
    fn from(event: LiveEvent) -> Self {
        Self::from(&event)
    }
}

impl From<&LiveEvent> for LiveFrame {
    fn from(event: &LiveEvent) -> Self {
        Self::event(event.name(), &event.data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct formatter writes what the RFC 3339 text of the model's timestamp says,
    /// truncated to milliseconds, across leap years, century rules and times before 1970.
    #[test]
    fn web_times_match_the_rfc3339_text_of_the_timestamp() {
        let reference = |t: Timestamp| {
            let millis = t.as_micros().div_euclid(1000);
            let whole = Timestamp::from_micros(millis.div_euclid(1000) * 1_000_000);
            let seconds = whole.to_rfc3339();
            let stem = seconds.strip_suffix('Z').unwrap_or(&seconds).to_string();
            format!("{stem}.{:03}Z", millis.rem_euclid(1000))
        };
        const DAY: i64 = 86_400_000_000;
        let mut times = vec![
            0,
            -1,
            1,
            999,
            1_000,
            -DAY,
            1_700_000_000_123_456,
            951_782_400_000_000,     // 2000-02-29
            951_868_800_000_000 - 1, // 2000-02-29T23:59:59.999999
            -2_203_891_200_000_000,  // 1900-03-01
            4_107_542_400_000_000,   // 2100-03-01
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            -62_135_596_800_000_000, // 0001-01-01
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let span = 253_402_300_799_999_999i128 + 62_135_596_800_000_000i128;
            times.push((x as i128 % span - 62_135_596_800_000_000i128) as i64);
        }
        for micros in times {
            let t = Timestamp::from_micros(micros);
            assert_eq!(WebTime(t).text(), reference(t), "{micros} µs");
        }
    }
}
