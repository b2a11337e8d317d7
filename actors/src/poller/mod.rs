//! The poller actor: everything that comes from ChirpStack.
//!
//! Raw values arrive on per-device event streams (see `streams`); a periodic cycle (see
//! `cycle`) covers what streams cannot. Results go out as a [`Feed`] — samples, upstream
//! status, device health, command updates — to the storage, OPC UA and web actors.

pub mod cycle;
pub mod forward;
pub mod output;
pub mod streams;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chirpstack_api::common::Aggregation;
use opcgw::chirpstack::client::{ChirpstackClient, ClientSettings, UpstreamError};
use opcgw::chirpstack::commands::CommandBook;
use opcgw::chirpstack::events::DeviceEvent;
use opcgw::chirpstack::mapping::{DeviceMapping, Rejection};
use opcgw::chirpstack::series::SeriesTracker;
use opcgw::chirpstack::upstream::{Transition, UpstreamState, UpstreamTracker};
use opcgw::commands::CommandUpdate;
use opcgw::config::{AppConfig, MetricType};
use opcgw::model::{Sample, Timestamp};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use self::cycle::{run_cycle, CycleInput, CycleReport, FallbackTarget};
use self::output::PollerOutput;
use self::streams::StreamPool;
use crate::duty::DutyBase;
use crate::messages::{ConfigUpdate, Feed, PollerMsg};
use crate::task::OwnedTask;

pub const ROLE: &str = "poller";

/// Link quality (RSSI, SNR) is read on the first and then every this many poll cycles: it
/// costs one call per device and changes slowly.
const LINK_QUALITY_EVERY_CYCLES: u64 = 6;

pub struct PollerActor;

pub struct PollerArgs {
    pub config: ConfigUpdate,
    pub output: Box<dyn PollerOutput>,
}

/// Counters for status pages and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct PollerCounters {
    pub samples: u64,
    pub aggregate_samples: u64,
    pub rejected_values: u64,
    pub rejected_events: u64,
    pub cycles: u64,
    pub last_cycle_ms: u64,
    /// Samples waiting for storage (it is down or slow).
    pub storage_buffered: u64,
    pub storage_written: u64,
    /// Samples dropped because storage stayed away longer than the buffer lasts.
    pub storage_dropped: u64,
}

pub struct PollerState {
    base: DutyBase,
    myself: ActorRef<PollerMsg>,
    output: Box<dyn PollerOutput>,
    client: ChirpstackClient,
    streams: StreamPool,
    mappings: HashMap<String, DeviceMapping>,
    series: SeriesTracker,
    upstream: UpstreamTracker,
    commands: CommandBook,
    aggregation: Aggregation,
    /// The running cycle, if any.
    cycle: Option<OwnedTask>,
    tick_generation: u64,
    applications_verified: bool,
    /// Per device, the `last_seen` whose `GetMetrics` bucket was read.
    metrics_fetched_for: HashMap<String, Timestamp>,
    counters: PollerCounters,
    /// Dispatches in flight.
    enqueues: Vec<OwnedTask>,
}

impl Actor for PollerActor {
    type Msg = PollerMsg;
    type State = PollerState;
    type Arguments = PollerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PollerMsg>,
        args: PollerArgs,
    ) -> Result<PollerState, ActorProcessingErr> {
        let config = args.config.config.clone();
        let cs = &config.chirpstack;
        let client = ChirpstackClient::new(ClientSettings {
            server_address: cs.server_address.clone(),
            api_token: cs.api_token.clone(),
            request_timeout: Duration::from_secs(cs.request_timeout_seconds),
            connect_timeout: Duration::from_secs(cs.request_timeout_seconds.min(10)),
        })?;
        let streams = StreamPool::new(
            client.clone(),
            cs.streams_per_connection as usize,
            cs.max_stream_connections as usize,
        );
        let upstream =
            UpstreamTracker::new(cs.retry, Duration::from_secs(cs.delay), Timestamp::now());
        let mut state = PollerState {
            base: DutyBase::new(ROLE, args.config),
            myself: myself.clone(),
            output: args.output,
            client,
            streams,
            mappings: HashMap::new(),
            series: SeriesTracker::default(),
            upstream,
            commands: CommandBook::default(),
            aggregation: Aggregation::Minute,
            cycle: None,
            tick_generation: 0,
            applications_verified: false,
            metrics_fetched_for: HashMap::new(),
            counters: PollerCounters::default(),
            enqueues: Vec::new(),
        };
        state.apply_topology(&config);
        info!(
            event = "poller_started",
            server = cs.server_address.as_str(),
            devices = state.mappings.len(),
            event_stream = cs.event_stream
        );
        let _ = myself.cast(PollerMsg::PollTick { generation: 0 });
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<PollerMsg>,
        message: PollerMsg,
        state: &mut PollerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PollerMsg::Common(common) => {
                if let crate::messages::Common::ConfigChanged(update) = &common {
                    state.apply_config(update.config.clone());
                }
                let summary = state.summary();
                state.base.handle_common(common, |_| summary)?;
                state.output.peers_changed(&state.base.peers);
            }
            PollerMsg::PollTick { generation } => state.start_cycle(generation),
            PollerMsg::CycleDone(report) => state.cycle_done(*report),
            PollerMsg::DeviceEvent {
                dev_eui,
                event,
                received,
            } => state.device_event(&dev_eui, event, received),
            PollerMsg::BadEvent { dev_eui, error } => {
                state.counters.rejected_events += 1;
                warn!(
                    event = "device_event_rejected",
                    device = dev_eui.as_str(),
                    error = error.to_string().as_str()
                );
            }
            PollerMsg::StreamState {
                dev_eui,
                open,
                error,
            } => state.stream_state(&dev_eui, open, error),
            PollerMsg::Dispatch(request) => {
                if let Some(update) = state.commands.accept(request, Timestamp::now()) {
                    state.emit_command(update);
                }
                state.dispatch_due();
            }
            PollerMsg::Resume {
                request,
                queue_item_id,
                transmitted,
                sent_at,
            } => {
                state
                    .commands
                    .resume(request, queue_item_id, transmitted, sent_at);
            }
            PollerMsg::CommandEnqueued { id, result } => {
                state.enqueues.retain(|t| !t.is_finished());
                if let Some(update) = state.commands.enqueued(id, result, Timestamp::now()) {
                    state.emit_command(update);
                }
            }
            PollerMsg::Counters(reply) => {
                let (buffered, written, dropped) = state.output.storage_stats();
                let counters = PollerCounters {
                    storage_buffered: buffered,
                    storage_written: written,
                    storage_dropped: dropped,
                    ..state.counters
                };
                let _ = reply.send(counters);
            }
            PollerMsg::Upstream(reply) => {
                let _ = reply.send(
                    state
                        .upstream
                        .status(state.streams.open_count(), state.streams.wanted_count()),
                );
            }
        }
        Ok(())
    }
}

impl PollerState {
    fn config(&self) -> Arc<AppConfig> {
        self.base.config.config.clone()
    }

    /// Rebuilds the per-device mappings and the wanted streams from the topology.
    fn apply_topology(&mut self, config: &AppConfig) {
        self.mappings = config
            .devices()
            .map(|(_, d)| (d.device_id.clone(), DeviceMapping::from_config(d)))
            .collect();
        let mappings = &self.mappings;
        self.series.retain_devices(|d| mappings.contains_key(d));
        let mut wanted: Vec<String> = if config.chirpstack.event_stream {
            self.mappings.keys().cloned().collect()
        } else {
            Vec::new()
        };
        wanted.sort();
        self.streams.sync(&wanted, &self.myself);
    }

    fn apply_config(&mut self, config: Arc<AppConfig>) {
        let old = self.config();
        if old.applications != config.applications {
            self.apply_topology(&config);
            self.applications_verified = false;
            info!(
                event = "poller_topology_applied",
                devices = self.mappings.len(),
                streams = self.streams.wanted_count()
            );
        }
        self.upstream.retry = config.chirpstack.retry;
        self.upstream.delay = Duration::from_secs(config.chirpstack.delay);
        if old.chirpstack.polling_frequency != config.chirpstack.polling_frequency {
            // Re-arm the timer with the new period.
            self.schedule_next(Duration::from_secs(config.chirpstack.polling_frequency));
        }
    }

    fn summary(&self) -> String {
        let c = &self.counters;
        let (buffered, _, dropped) = self.output.storage_stats();
        format!(
            "upstream {}; {}/{} event streams open on {} connections; {} cycles (last {} ms); {} samples ({} aggregated), {} rejected values, {} rejected events; {} commands in progress; {buffered} samples waiting for storage, {dropped} dropped",
            self.upstream.state().as_str(),
            self.streams.open_count(),
            self.streams.wanted_count(),
            self.streams.connection_count(),
            c.cycles,
            c.last_cycle_ms,
            c.samples,
            c.aggregate_samples,
            c.rejected_values,
            c.rejected_events,
            self.commands.in_progress()
        )
    }

    fn send(&mut self, feed: Feed) {
        self.output.send(&self.base.peers, feed);
    }

    fn emit_samples(&mut self, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        self.counters.samples += samples.len() as u64;
        if tracing::enabled!(tracing::Level::DEBUG) {
            let values: Vec<String> = samples
                .iter()
                .take(8)
                .map(|s| format!("{}={}", s.metric, s.value))
                .collect();
            debug!(
                event = "samples_received",
                device = samples[0].device_id.as_str(),
                count = samples.len(),
                source_time = %samples[0].source_time,
                values = opcgw::security::sanitize_for_log(&values.join(" "), 200).as_str()
            );
        }
        self.send(Feed::Samples(samples.into()));
    }

    fn emit_command(&mut self, update: CommandUpdate) {
        info!(
            event = "command_state_changed",
            command_id = update.id,
            device = update.device_id.as_str(),
            state = update.state.as_str(),
            transmitted = update.transmitted,
            detail = update.detail.as_deref().unwrap_or("")
        );
        self.send(Feed::Command(Arc::new(update)));
    }

    fn reject(&mut self, rejections: Vec<Rejection>) {
        for r in rejections {
            self.counters.rejected_values += 1;
            warn!(
                event = "metric_value_rejected",
                device = r.device_id.as_str(),
                metric = r.metric.as_str(),
                reason = r.reason.as_str(),
                value = r.preview.as_str()
            );
        }
    }

    fn schedule_next(&mut self, after: Duration) {
        self.tick_generation += 1;
        let generation = self.tick_generation;
        self.myself
            .send_after(after, move || PollerMsg::PollTick { generation });
    }

    fn start_cycle(&mut self, generation: u64) {
        if generation != self.tick_generation
            || self.cycle.as_ref().is_some_and(|c| !c.is_finished())
        {
            return;
        }
        let config = self.config();
        let fallback = self.fallback_targets(&config);
        let timeout = Duration::from_secs(config.chirpstack.command_timeout_seconds);
        let input = CycleInput {
            client: self.client.clone(),
            tenant_id: config.chirpstack.tenant_id.clone(),
            application_ids: config
                .applications
                .iter()
                .map(|a| a.application_id.clone())
                .collect(),
            verify_applications: !self.applications_verified,
            page_size: config.chirpstack.list_page_size,
            concurrency: config.chirpstack.poll_concurrency as usize,
            fallback,
            aggregation: self.aggregation,
            queues_to_check: self.commands.overdue_devices(Timestamp::now(), timeout),
            link_quality_of: if self.counters.cycles % LINK_QUALITY_EVERY_CYCLES == 0 {
                self.mappings.keys().cloned().collect()
            } else {
                Vec::new()
            },
        };
        let poller = self.myself.clone();
        self.cycle = Some(OwnedTask::spawn(async move {
            let report = run_cycle(input).await;
            let _ = poller.cast(PollerMsg::CycleDone(Box::new(report)));
        }));
    }

    /// Metrics to take from `GetMetrics`: those uplinks never delivered, or all of them right
    /// after an outage (to reconcile the gap; newer raw values still win).
    fn fallback_targets(&self, config: &AppConfig) -> Vec<FallbackTarget> {
        let reconcile = matches!(
            self.upstream.state(),
            UpstreamState::Down | UpstreamState::Starting
        ) && self.counters.cycles > 0;
        let mut targets: Vec<FallbackTarget> = self
            .mappings
            .values()
            .filter_map(|mapping| {
                let metrics: Vec<_> = mapping
                    .metrics
                    .iter()
                    .filter(|m| m.metric_type != MetricType::String)
                    .filter(|m| {
                        reconcile
                            || !config.chirpstack.event_stream
                            || !self
                                .series
                                .seen_in_uplink(&mapping.device_id, &m.metric_name)
                    })
                    .cloned()
                    .collect();
                (!metrics.is_empty()).then(|| FallbackTarget {
                    device_id: mapping.device_id.clone(),
                    metrics,
                    // Reconciling reads every bucket again; otherwise only what is new.
                    fetched_for: if reconcile {
                        None
                    } else {
                        self.metrics_fetched_for.get(&mapping.device_id).copied()
                    },
                })
            })
            .collect();
        targets.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        targets
    }

    fn cycle_done(&mut self, report: CycleReport) {
        self.cycle = None;
        self.counters.cycles += 1;
        self.counters.last_cycle_ms = report.duration.as_millis() as u64;
        let config = self.config();
        let now = report.finished;
        let transition = match &report.failure {
            Some(error) => self.upstream.poll_failed(error, now),
            None => {
                let mut problems = report.partial_errors.clone();
                if self.streams.failing_count() > 0 {
                    problems.push(format!(
                        "{} event streams failing",
                        self.streams.failing_count()
                    ));
                }
                let partial = (!problems.is_empty()).then(|| summarise(&problems));
                self.upstream.poll_succeeded(partial, now)
            }
        };
        if let Some(transition) = transition {
            self.on_transition(transition);
        }
        if report.failure.is_none() {
            if report.aggregation != self.aggregation {
                info!(event = "metrics_aggregation_fallback", aggregation = ?report.aggregation, "the server refuses MINUTE aggregation; using HOUR");
                self.aggregation = report.aggregation;
            }
            if !self.applications_verified {
                self.applications_verified = true;
                for id in &report.unknown_applications {
                    warn!(
                        event = "application_not_found",
                        application_id = id.as_str(),
                        "configured application is not in the ChirpStack tenant"
                    );
                }
            }
            for device in config.devices().map(|(_, d)| &d.device_id) {
                if !report.devices.iter().any(|d| &d.dev_eui == device) {
                    debug!(event = "device_not_listed", device = device.as_str());
                }
            }
            let health: Vec<_> = report
                .devices
                .iter()
                .filter(|d| self.mappings.contains_key(&d.dev_eui))
                .cloned()
                .collect();
            if !health.is_empty() {
                self.send(Feed::DeviceHealth(health.into()));
            }
            self.metrics_fetched_for.extend(report.fetched);
            let admitted = self.series.admit_aggregates(report.aggregates);
            self.counters.aggregate_samples += admitted.len() as u64;
            self.emit_samples(admitted);
            self.reject(report.rejections);
            let timeout = Duration::from_secs(config.chirpstack.command_timeout_seconds);
            for (device, queue) in &report.queues {
                for update in self.commands.expire_overdue(device, queue, now, timeout) {
                    self.emit_command(update);
                }
            }
            self.commands.retry_transient();
            self.dispatch_due();
        }
        let status = self
            .upstream
            .status(self.streams.open_count(), self.streams.wanted_count());
        self.send(Feed::Upstream(Arc::new(status)));
        debug!(
            event = "poll_cycle_completed",
            duration_ms = self.counters.last_cycle_ms,
            calls = report.calls,
            state = self.upstream.state().as_str()
        );
        let wait = self
            .upstream
            .next_poll_in(Duration::from_secs(config.chirpstack.polling_frequency));
        self.schedule_next(wait);
    }

    fn on_transition(&mut self, transition: Transition) {
        let reason = opcgw::security::sanitize_for_log(&transition.reason, 300);
        match transition.to {
            UpstreamState::Unauthenticated => warn!(
                event = "chirpstack_auth_failed",
                from = transition.from.as_str(),
                reason = reason.as_str(),
                retry_in_s = self.upstream.next_poll_in(Duration::ZERO).as_secs()
            ),
            UpstreamState::Down | UpstreamState::Degraded => warn!(
                event = "upstream_state_changed",
                from = transition.from.as_str(),
                to = transition.to.as_str(),
                reason = reason.as_str()
            ),
            _ => info!(
                event = "upstream_state_changed",
                from = transition.from.as_str(),
                to = transition.to.as_str()
            ),
        }
        let allowed = transition.to.allows_streams();
        self.streams.set_open(allowed);
        if allowed && !transition.from.allows_streams() {
            self.streams.reconnect_now();
        }
    }

    fn device_event(&mut self, dev_eui: &str, event: DeviceEvent, received: Timestamp) {
        match &event {
            DeviceEvent::Uplink(uplink) => {
                let Some(mapping) = self.mappings.get(dev_eui) else {
                    return;
                };
                let Some(object) = &uplink.object else {
                    debug!(event = "uplink_without_object", device = dev_eui);
                    return;
                };
                let (samples, rejections) =
                    mapping.samples_from_object(object, uplink.time, received);
                self.series.record_raw(&samples);
                self.emit_samples(samples);
                self.reject(rejections);
            }
            DeviceEvent::Ack { .. } | DeviceEvent::TxAck { .. } | DeviceEvent::Log { .. } => {
                if let Some(update) = self.commands.on_event(&event) {
                    self.emit_command(update);
                }
            }
            DeviceEvent::Status {
                time,
                margin,
                battery_level,
                external_power_source,
            } => {
                let health = opcgw::chirpstack::client::DeviceSummary {
                    rssi: None,
                    snr: None,
                    dev_eui: dev_eui.to_string(),
                    name: String::new(),
                    last_seen: Some(*time),
                    margin: Some(*margin),
                    battery_level: *battery_level,
                    external_power_source: *external_power_source,
                };
                self.send(Feed::DeviceHealth(vec![health].into()));
            }
            DeviceEvent::Join { .. } | DeviceEvent::Other { .. } => {}
        }
    }

    fn stream_state(&mut self, dev_eui: &str, open: bool, error: Option<UpstreamError>) {
        self.streams.mark(dev_eui, open, error.is_some());
        match &error {
            Some(UpstreamError::Unauthenticated) => {
                if let Some(t) = self
                    .upstream
                    .poll_failed(&UpstreamError::Unauthenticated, Timestamp::now())
                {
                    self.on_transition(t);
                }
            }
            Some(UpstreamError::NotFound(_)) => warn!(
                event = "device_not_found",
                device = dev_eui,
                "ChirpStack does not know this device"
            ),
            Some(e) => debug!(
                event = "event_stream_closed",
                device = dev_eui,
                error = e.to_string().as_str()
            ),
            None => debug!(event = "event_stream_opened", device = dev_eui),
        }
    }

    fn dispatch_due(&mut self) {
        if !matches!(
            self.upstream.state(),
            UpstreamState::Connected | UpstreamState::Degraded | UpstreamState::Starting
        ) {
            return;
        }
        for request in self.commands.take_due() {
            let (client, poller) = (self.client.clone(), self.myself.clone());
            self.enqueues.push(OwnedTask::spawn(async move {
                let result = client
                    .enqueue(
                        &request.downlink.device_id,
                        request.downlink.f_port,
                        request.downlink.confirmed,
                        request.downlink.payload,
                    )
                    .await;
                let _ = poller.cast(PollerMsg::CommandEnqueued {
                    id: request.id,
                    result,
                });
            }));
        }
    }
}

fn summarise(problems: &[String]) -> String {
    let first = problems.first().map(String::as_str).unwrap_or_default();
    if problems.len() == 1 {
        first.to_string()
    } else {
        format!("{first} (and {} more)", problems.len() - 1)
    }
}
