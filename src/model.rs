//! The data model shared by every part of the gateway: values, samples, quality.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One shared copy of each metric name: a fleet's devices repeat the same few names, and at
/// 10,000 devices x 11 metrics a copy of each name per metric cost ~20 MB.
#[derive(Debug, Default)]
pub struct Names(HashSet<Arc<str>>);

impl Names {
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return Arc::clone(known);
        }
        let name: Arc<str> = name.into();
        self.0.insert(Arc::clone(&name));
        name
    }
}

/// Where `name` is in `entries` sorted by name (`Err`: where it would go): the per-device
/// tables keyed by a shared metric name (the poller's series times, the live values).
pub fn find_by_name<V>(entries: &[(Arc<str>, V)], name: &str) -> Result<usize, usize> {
    entries.binary_search_by(|(entry, _)| (**entry).cmp(name))
}

/// Microseconds since the Unix epoch (UTC). Microseconds are what storage keeps and what an
/// OPC UA DateTime (100 ns ticks) represents exactly.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(d.as_micros().min(i64::MAX as u128) as i64),
            Err(e) => Self(-(e.duration().as_micros().min(i64::MAX as u128) as i64)),
        }
    }

    pub fn from_prost(ts: &prost_types::Timestamp) -> Option<Self> {
        if !(0..1_000_000_000).contains(&ts.nanos) {
            return None;
        }
        ts.seconds
            .checked_mul(1_000_000)?
            .checked_add(i64::from(ts.nanos) / 1_000)
            .map(Self)
    }

    pub fn to_prost(self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: self.0.div_euclid(1_000_000),
            nanos: (self.0.rem_euclid(1_000_000) * 1_000) as i32,
        }
    }

    /// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.123Z`, any offset).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        if text.len() > 64 {
            return None;
        }
        text.parse::<prost_types::Timestamp>()
            .ok()
            .and_then(|ts| Self::from_prost(&ts))
    }

    pub fn to_rfc3339(self) -> String {
        self.to_prost().to_string()
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(d.as_micros().min(i64::MAX as u128) as i64),
        )
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(d.as_micros().min(i64::MAX as u128) as i64),
        )
    }

    /// How long ago this was, seen from `now` (zero for timestamps in the future).
    pub fn age_at(self, now: Timestamp) -> Duration {
        Duration::from_micros(now.0.saturating_sub(self.0).max(0) as u64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The OPC UA data type of a metric or command, and what a decoded value must convert to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MetricType {
    #[serde(alias = "float")]
    Float,
    #[serde(alias = "int")]
    Int,
    #[serde(alias = "bool")]
    Bool,
    #[serde(alias = "string")]
    String,
}

/// A metric value, typed by the configured `metric_type`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "value")]
pub enum Value {
    Float(f64),
    Int(i64),
    Bool(bool),
    String(String),
}

impl Value {
    pub fn metric_type(&self) -> MetricType {
        match self {
            Self::Float(_) => MetricType::Float,
            Self::Int(_) => MetricType::Int,
            Self::Bool(_) => MetricType::Bool,
            Self::String(_) => MetricType::String,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Float(v) => write!(f, "{v}"),
            Self::Int(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::String(v) => write!(f, "{v:?}"),
        }
    }
}

/// Where a sample came from. Raw uplink values always win over aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleOrigin {
    /// A decoded uplink, stamped with the uplink's time.
    Uplink,
    /// A `GetMetrics` bucket (an average or sum over the bucket), stamped with the bucket start.
    Aggregate,
}

/// One value of one metric of one device.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Shared with the mapping that made it (no allocation per sample).
    pub device_id: Arc<str>,
    /// The configured `metric_name` (the OPC UA browse name), not the ChirpStack field; shared.
    pub metric: Arc<str>,
    pub value: Value,
    /// When the device reported it (the uplink time), or the aggregate bucket start.
    pub source_time: Timestamp,
    /// When the gateway received it.
    pub received_time: Timestamp,
    pub origin: SampleOrigin,
}

/// OPC UA quality of a value, from its age (docs/opcua.md, "Values, quality and timestamps").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    /// Older than the stale threshold: the last usable value.
    Uncertain,
    /// Older than the bad threshold.
    Bad,
    /// Configured but never received.
    WaitingForInitialData,
}

/// The staleness rule of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StalenessRule {
    pub stale_after: Duration,
    pub bad_after: Duration,
}

impl StalenessRule {
    pub fn quality(&self, source_time: Option<Timestamp>, now: Timestamp) -> Quality {
        let Some(source_time) = source_time else {
            return Quality::WaitingForInitialData;
        };
        let age = source_time.age_at(now);
        if age > self.bad_after {
            Quality::Bad
        } else if age > self.stale_after {
            Quality::Uncertain
        } else {
            Quality::Good
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339_and_prost() {
        let ts = Timestamp::parse_rfc3339("2024-05-01T12:00:00.123456Z").unwrap();
        assert_eq!(ts.to_rfc3339(), "2024-05-01T12:00:00.123456Z");
        assert_eq!(Timestamp::from_prost(&ts.to_prost()), Some(ts));
        assert_eq!(
            Timestamp::parse_rfc3339("2024-05-01T14:00:00+02:00"),
            Timestamp::parse_rfc3339("2024-05-01T12:00:00Z")
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
        assert!(Timestamp::from_prost(&prost_types::Timestamp {
            seconds: 1,
            nanos: -5
        })
        .is_none());
        assert!(Timestamp::from_prost(&prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0
        })
        .is_none());
    }

    #[test]
    fn a_value_turns_uncertain_then_bad_with_age() {
        let rule = StalenessRule {
            stale_after: Duration::from_secs(60),
            bad_after: Duration::from_secs(600),
        };
        let now = Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(rule.quality(None, now), Quality::WaitingForInitialData);
        assert_eq!(
            rule.quality(Some(now.saturating_sub(Duration::from_secs(60))), now),
            Quality::Good
        );
        assert_eq!(
            rule.quality(Some(now.saturating_sub(Duration::from_secs(61))), now),
            Quality::Uncertain
        );
        assert_eq!(
            rule.quality(Some(now.saturating_sub(Duration::from_secs(601))), now),
            Quality::Bad
        );
        // A device clock ahead of ours is not "stale".
        assert_eq!(
            rule.quality(Some(now.saturating_add(Duration::from_secs(5))), now),
            Quality::Good
        );
    }
}
