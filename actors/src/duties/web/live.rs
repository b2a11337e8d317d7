//! What the console's live stream says: the poller's feed and the gateway's own clock turned
//! into `LiveEvent`s (values, status-only quality changes, upstream state, actor health), and
//! the ingest rate the dashboard shows.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opcgw::chirpstack::upstream::{UpstreamState as LinkState, UpstreamStatus};
use opcgw::config::AppConfig;
use opcgw::model::{Sample, Timestamp};
use opcgw::naming::split_metric_node_id;
use opcgw::opcua::values::{LiveUpdate, LiveValues};
use opcgw::web::views::{
    ActorState, ActorView, HealthEvent, IngestView, LiveEvent, QualityCounts, QualityEvent,
    UpstreamEvent, UpstreamState, UpstreamView, ValueEvent,
};

use crate::tree::supervisor::{ChildState, ChildStatus, TreeStatus};

/// The live value and quality of every configured metric, and which device and metric each
/// variable is (the staleness rule is the OPC UA server's: both surfaces agree on quality).
pub struct LiveMetrics {
    /// Keyed by metric NodeId; the device id and metric name are read back from the key
    /// (`naming::split_metric_node_id`) instead of a second map holding both.
    values: LiveValues,
}

impl LiveMetrics {
    pub fn new(config: &AppConfig, now: Timestamp) -> Self {
        Self {
            values: LiveValues::from_config(config, now),
        }
    }

    pub fn reconfigure(&mut self, config: &AppConfig, now: Timestamp) {
        self.values.reconfigure(config, now);
    }

    /// New samples: a `value` event for each metric whose value changes (older samples only go
    /// to history, unknown metrics are ignored).
    pub fn apply(&mut self, samples: &[Sample], now: Timestamp) -> Vec<LiveEvent> {
        let updates = self.values.apply(samples, now);
        updates.iter().filter_map(|u| self.value_event(u)).collect()
    }

    /// Values seeded from storage after a start: no events (nothing changed for a client).
    pub fn seed(&mut self, samples: &[Sample], now: Timestamp) {
        self.values.apply(samples, now);
    }

    /// Quality re-evaluated at `now`: a `quality` event for each metric that aged into
    /// another quality.
    pub fn reevaluate(&mut self, now: Timestamp) -> Vec<LiveEvent> {
        self.values
            .reevaluate(now)
            .iter()
            .filter_map(|u| {
                let (device_id, metric) = split_metric_node_id(&u.node)?;
                Some(LiveEvent::Quality(QualityEvent {
                    device_id: device_id.to_owned(),
                    metric: metric.to_owned(),
                    quality: u.quality.into(),
                }))
            })
            .collect()
    }

    pub fn counts(&self) -> QualityCounts {
        let c = self.values.counts();
        QualityCounts {
            good: c.good.into(),
            uncertain: c.uncertain.into(),
            bad: c.bad.into(),
            waiting: c.waiting.into(),
        }
    }

    fn value_event(&self, update: &LiveUpdate) -> Option<LiveEvent> {
        let (device_id, metric) = split_metric_node_id(&update.node)?;
        let value = update.value.clone()?;
        Some(LiveEvent::Value(ValueEvent {
            device_id: device_id.to_owned(),
            metric: metric.to_owned(),
            value,
            timestamp: update.source_time.into(),
            received: update.server_time.into(),
            quality: update.quality.into(),
        }))
    }
}

/// The upstream as the console shows it. An API token ChirpStack rejects is `down`: nothing
/// arrives until an operator fixes it.
pub fn upstream_view(status: Option<&UpstreamStatus>) -> UpstreamView {
    let Some(status) = status else {
        return UpstreamView {
            state: UpstreamState::Starting,
            reason: Some("the ChirpStack poller is not running".into()),
            last_poll: None,
        };
    };
    let (state, reason) = match status.state {
        LinkState::Starting => (UpstreamState::Starting, status.last_error.clone()),
        LinkState::Connected => (UpstreamState::Connected, None),
        LinkState::Degraded => (UpstreamState::Degraded, status.last_error.clone()),
        LinkState::Down => (UpstreamState::Down, status.last_error.clone()),
        LinkState::Unauthenticated => (
            UpstreamState::Down,
            Some(match &status.last_error {
                Some(error) => format!("ChirpStack rejects the API token: {error}"),
                None => "ChirpStack rejects the API token".into(),
            }),
        ),
    };
    UpstreamView {
        state,
        reason,
        last_poll: status.last_poll.map(Into::into),
    }
}

/// An `upstream` event when the state or its reason changed since `last`.
pub fn upstream_change(last: Option<&UpstreamStatus>, now: &UpstreamStatus) -> Option<LiveEvent> {
    let before = last.map(|l| upstream_view(Some(l)));
    let after = upstream_view(Some(now));
    let changed = before
        .as_ref()
        .is_none_or(|b| b.state != after.state || b.reason != after.reason);
    changed.then_some(LiveEvent::Upstream(UpstreamEvent {
        state: after.state,
        reason: after.reason,
    }))
}

pub fn actor_state(state: ChildState) -> ActorState {
    match state {
        ChildState::Starting => ActorState::Starting,
        ChildState::Running => ActorState::Running,
        ChildState::Backoff => ActorState::Backoff,
        ChildState::Stopped => ActorState::Stopped,
    }
}

pub fn actor_view(child: &ChildStatus, now: Timestamp) -> ActorView {
    ActorView {
        role: child.name.clone(),
        state: actor_state(child.state),
        restarts: child.restarts,
        last_error: child.last_error.clone(),
        next_retry: child
            .next_retry_in_ms
            .map(|ms| now.saturating_add(Duration::from_millis(ms)).into()),
    }
}

/// Remembers each actor's state and restarts; says which changed.
#[derive(Debug, Default)]
pub struct HealthWatch {
    last: HashMap<String, (ChildState, u32)>,
}

impl HealthWatch {
    /// `health` events for the actors whose state or restart count changed since the last
    /// call (none on the first: a client reads the current health from `/api/status`).
    pub fn changes(&mut self, tree: &TreeStatus) -> Vec<LiveEvent> {
        let first = self.last.is_empty();
        let mut events = Vec::new();
        for child in &tree.children {
            let now = (child.state, child.restarts);
            let before = self.last.insert(child.name.clone(), now);
            if !first && before != Some(now) {
                events.push(LiveEvent::Health(HealthEvent {
                    role: child.name.clone(),
                    state: actor_state(child.state),
                    restarts: child.restarts,
                }));
            }
        }
        events
    }
}

/// Samples per second over the last [`IngestMeter::WINDOW`], and the total since the process
/// started (it outlives restarts of the web actor).
#[derive(Debug)]
pub struct IngestMeter {
    created: Instant,
    inner: Mutex<IngestInner>,
}

#[derive(Debug, Default)]
struct IngestInner {
    total: u64,
    recent: VecDeque<(Instant, u64)>,
}

impl Default for IngestMeter {
    fn default() -> Self {
        Self {
            created: Instant::now(),
            inner: Mutex::default(),
        }
    }
}

impl IngestMeter {
    pub const WINDOW: Duration = Duration::from_secs(10);

    pub fn record(&self, samples: u64, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.total += samples;
        inner.recent.push_back((now, samples));
        Self::prune(&mut inner, now);
    }

    fn prune(inner: &mut IngestInner, now: Instant) {
        while inner
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > Self::WINDOW)
        {
            inner.recent.pop_front();
        }
    }

    pub fn view(&self, now: Instant) -> IngestView {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Self::prune(&mut inner, now);
        let in_window: u64 = inner.recent.iter().map(|(_, n)| n).sum();
        // A younger process divides by its age, so the first seconds are not underestimated.
        let span = now
            .saturating_duration_since(self.created)
            .clamp(Duration::from_secs(1), Self::WINDOW);
        IngestView {
            samples_per_second: in_window as f64 / span.as_secs_f64(),
            samples_total: inner.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use opcgw::config::{ApplicationConfig, DeviceConfig, MetricConfig, MetricType};
    use opcgw::model::{SampleOrigin, Value};
    use opcgw::web::views::QualityView;

    use super::*;

    const S: i64 = 1_000_000;

    fn one_metric() -> AppConfig {
        let mut config = AppConfig {
            applications: vec![ApplicationConfig {
                application_name: "Farm".into(),
                application_id: "app-1".into(),
                discover: false,
                templates: Default::default(),
                devices: vec![DeviceConfig {
                    device_name: "Probe".into(),
                    device_id: "dev-1".into(),
                    stale_threshold_seconds: None,
                    metrics: vec![MetricConfig {
                        metric_name: "Moisture".into(),
                        chirpstack_metric_name: "moisture".into(),
                        metric_type: MetricType::Float,
                        metric_unit: None,
                    }],
                    commands: vec![],
                }],
            }],
            ..AppConfig::default()
        };
        config.opcua.stale_threshold_seconds = 60;
        config.opcua.bad_threshold_seconds = 600;
        config
    }

    fn sample(value: f64, at: i64) -> Sample {
        Sample {
            device_id: "dev-1".into(),
            metric: "Moisture".into(),
            value: Value::Float(value),
            source_time: Timestamp::from_micros(at * S),
            received_time: Timestamp::from_micros(at * S),
            origin: SampleOrigin::Uplink,
        }
    }

    #[test]
    fn new_values_and_aging_become_value_and_quality_events() {
        let config = one_metric();
        let mut live = LiveMetrics::new(&config, Timestamp::from_micros(0));
        let events = live.apply(&[sample(1.5, 100)], Timestamp::from_micros(100 * S));
        let [LiveEvent::Value(value)] = events.as_slice() else {
            panic!("one value event: {events:?}");
        };
        assert_eq!(
            (value.device_id.as_str(), value.metric.as_str()),
            ("dev-1", "Moisture")
        );
        assert_eq!(value.quality, QualityView::Good);
        // An older replay goes to history only.
        assert!(live
            .apply(&[sample(0.5, 90)], Timestamp::from_micros(101 * S))
            .is_empty());
        assert!(live.reevaluate(Timestamp::from_micros(150 * S)).is_empty());
        let aged = live.reevaluate(Timestamp::from_micros(161 * S));
        assert_eq!(
            aged,
            vec![LiveEvent::Quality(QualityEvent {
                device_id: "dev-1".into(),
                metric: "Moisture".into(),
                quality: QualityView::Uncertain
            })]
        );
        assert_eq!(live.counts().uncertain, 1);
        assert!(
            live.reevaluate(Timestamp::from_micros(162 * S)).is_empty(),
            "once per change"
        );
    }

    #[test]
    fn the_ingest_rate_counts_the_last_window_only() {
        let meter = IngestMeter::default();
        let start = meter.created;
        meter.record(50, start + Duration::from_secs(11));
        meter.record(30, start + Duration::from_secs(15));
        let view = meter.view(start + Duration::from_secs(20));
        assert_eq!(view.samples_total, 80);
        assert!((view.samples_per_second - 8.0).abs() < 1e-9, "{view:?}");
        let later = meter.view(start + Duration::from_secs(40));
        assert_eq!(later.samples_total, 80);
        assert_eq!(later.samples_per_second, 0.0);
    }

    #[test]
    fn health_changes_name_only_the_actors_that_changed() {
        let child = |name: &str, state, restarts| ChildStatus {
            name: name.into(),
            state,
            restarts,
            start_failures: 0,
            last_error: None,
            next_retry_in_ms: None,
            up_for_ms: None,
        };
        let tree = |children| TreeStatus {
            children,
            config_generation: 0,
        };
        let mut watch = HealthWatch::default();
        let first = tree(vec![
            child("storage", ChildState::Running, 0),
            child("poller", ChildState::Running, 0),
        ]);
        assert!(watch.changes(&first).is_empty());
        assert!(watch.changes(&first).is_empty());
        let events = watch.changes(&tree(vec![
            child("storage", ChildState::Running, 0),
            child("poller", ChildState::Backoff, 1),
        ]));
        assert_eq!(
            events,
            vec![LiveEvent::Health(HealthEvent {
                role: "poller".into(),
                state: ActorState::Backoff,
                restarts: 1
            })]
        );
    }
}
