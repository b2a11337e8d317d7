//! The poller actor: everything that comes from ChirpStack.
//!
//! Raw values arrive on per-device event streams (see `streams`); a periodic cycle (the
//! library's `opcgw::chirpstack::poll`) covers what streams cannot. Results go out as a
//! [`Feed`] — samples, upstream status, device health, command updates — to the storage,
//! OPC UA and web actors. This actor only wires: timers, messages, the stream pool.

pub mod dispatch;
pub mod forward;
pub mod output;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use opcgw::chirpstack::client::{ChirpstackClient, ClientSettings, UpstreamError};
use opcgw::chirpstack::events::DeviceEvent;
use opcgw::chirpstack::mapping::Rejection;
use opcgw::chirpstack::poll::{run_cycle, CycleOutcome, CycleReport, PollCycle, SystemClock};
use opcgw::chirpstack::upstream::{Transition, UpstreamState, UpstreamTracker};
use opcgw::commands::CommandUpdate;
use opcgw::config::AppConfig;
use opcgw::metrics::{metrics, Metrics, UPSTREAM_STATES};
use opcgw::model::{Sample, SampleOrigin, Timestamp};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use self::dispatch::CommandDispatch;
use self::output::PollerOutput;
use self::streams::StreamPool;
use crate::tree::duty::DutyBase;
use crate::tree::messages::{ConfigUpdate, Feed, Peers, PollerMsg};
use crate::tree::task::OwnedTask;

pub const ROLE: &str = "poller";

pub struct PollerActor;

pub struct PollerArgs {
    pub config: ConfigUpdate,
    pub output: Box<dyn PollerOutput>,
    /// The siblings running when the poller starts (storage and OPC UA start before it): what
    /// the first streams and the first cycle deliver reaches them before the supervisor's
    /// first `PeersChanged` does.
    pub peers: Peers,
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

/// The periodic cycle: its memory, the run in progress and the timer that starts the next.
struct CycleTimer {
    memory: PollCycle,
    api: Arc<ChirpstackClient>,
    running: Option<OwnedTask>,
    /// Bumped on each re-arm: a tick of an older generation is stale and ignored.
    tick_generation: u64,
}

pub struct PollerState {
    base: DutyBase,
    myself: ActorRef<PollerMsg>,
    output: Box<dyn PollerOutput>,
    cycle: CycleTimer,
    streams: StreamPool,
    upstream: UpstreamTracker,
    commands: CommandDispatch,
    counters: PollerCounters,
    /// Permits of events handled while storage was behind: kept, they hold the streams back
    /// (see `streams::MAX_EVENTS_IN_FLIGHT`) until storage catches up.
    held: Vec<tokio::sync::OwnedSemaphorePermit>,
    held_since: Option<std::time::Instant>,
    /// A `ReleaseCheck` is on its way (one at a time).
    release_pending: bool,
}

/// How often held streams check whether storage caught up.
const RELEASE_CHECK: Duration = Duration::from_millis(100);

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
        let client = ChirpstackClient::new(ClientSettings::from_config(cs))?;
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
            cycle: CycleTimer {
                memory: PollCycle::new(&config),
                api: Arc::new(client.clone()),
                running: None,
                tick_generation: 0,
            },
            streams,
            upstream,
            commands: CommandDispatch::new(client),
            counters: PollerCounters::default(),
            held: Vec::new(),
            held_since: None,
            release_pending: false,
        };
        state.base.peers = args.peers;
        state.output.peers_changed(&state.base.peers);
        state.sync_streams(&config);
        info!(
            event = "poller_started",
            server = cs.server_address.as_str(),
            devices = state.cycle.memory.device_count(),
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
                if let crate::tree::messages::Common::ConfigChanged(update) = &common {
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
                in_flight,
            } => {
                state.device_event(&dev_eui, event, received);
                if let Some(permit) = in_flight {
                    state.hold_if_backlogged(permit);
                }
            }
            PollerMsg::ReleaseCheck => {
                state.release_pending = false;
                state.release_check();
            }
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
                if let Some(update) = state.commands.book.accept(request, Timestamp::now()) {
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
                    .book
                    .resume(request, queue_item_id, transmitted, sent_at);
            }
            PollerMsg::CommandEnqueued { id, result } => {
                state.commands.reap();
                if let Some(update) = state.commands.book.enqueued(id, result, Timestamp::now()) {
                    state.emit_command(update);
                }
            }
            PollerMsg::Counters(reply) => {
                let _ = reply.send(state.counters());
            }
            PollerMsg::Upstream(reply) => {
                let _ = reply.send(state.upstream.status(
                    state.streams.open_count(),
                    state.streams.wanted_count(),
                    state.streams.polled_only_count(),
                ));
            }
        }
        Ok(())
    }
}

impl PollerState {
    fn config(&self) -> Arc<AppConfig> {
        self.base.config.config.clone()
    }

    fn counters(&self) -> PollerCounters {
        let (buffered, written, dropped) = self.output.storage_stats();
        PollerCounters {
            cycles: self.cycle.memory.cycles(),
            last_cycle_ms: self.cycle.memory.last_cycle().as_millis() as u64,
            storage_buffered: buffered,
            storage_written: written,
            storage_dropped: dropped,
            ..self.counters
        }
    }

    /// Opens a stream for every configured device (when streams are on) and closes the rest.
    fn sync_streams(&mut self, config: &AppConfig) {
        let wanted = if config.chirpstack.event_stream {
            self.cycle.memory.devices()
        } else {
            Vec::new()
        };
        self.streams.sync(&wanted, &self.myself);
    }

    fn apply_config(&mut self, config: Arc<AppConfig>) {
        let old = self.config();
        if old.applications != config.applications {
            self.cycle.memory.set_topology(&config);
            self.sync_streams(&config);
            info!(
                event = "poller_topology_applied",
                devices = self.cycle.memory.device_count(),
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
        let c = self.counters();
        format!(
            "upstream {}; {}/{} event streams open on {} connections; {} cycles (last {} ms); {} samples ({} aggregated), {} rejected values, {} rejected events; {} commands in progress; {} samples waiting for storage, {} dropped",
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
            self.commands.book.in_progress(),
            c.storage_buffered,
            c.storage_dropped
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
        let streamed = samples
            .iter()
            .filter(|s| s.origin != SampleOrigin::Aggregate)
            .count() as u64;
        let received = &metrics().samples_received;
        received
            .get_or_create(&[("source", "stream")])
            .inc_by(streamed);
        received
            .get_or_create(&[("source", "get_metrics")])
            .inc_by(samples.len() as u64 - streamed);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let values: Vec<String> = samples
                .iter()
                .take(8)
                .map(|s| format!("{}={}", s.metric, s.value))
                .collect();
            debug!(
                event = "samples_received",
                device = &*samples[0].device_id,
                count = samples.len(),
                source_time = %samples[0].source_time,
                values = opcgw::security::sanitize_for_log(&values.join(" "), 200).as_str()
            );
        }
        self.send(Feed::Samples(samples.into()));
    }

    fn emit_command(&mut self, update: CommandUpdate) {
        metrics()
            .commands
            .get_or_create(&[("state", update.state.as_str())])
            .inc();
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

    /// Logs refused values; `source` is `stream` or `get_metrics`.
    fn reject(&mut self, rejections: Vec<Rejection>, source: &'static str) {
        metrics()
            .samples_rejected
            .get_or_create(&[("source", source)])
            .inc_by(rejections.len() as u64);
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
        self.cycle.tick_generation += 1;
        let generation = self.cycle.tick_generation;
        self.myself
            .send_after(after, move || PollerMsg::PollTick { generation });
    }

    fn start_cycle(&mut self, generation: u64) {
        if generation != self.cycle.tick_generation
            || self
                .cycle
                .running
                .as_ref()
                .is_some_and(|c| !c.is_finished())
        {
            return;
        }
        let config = self.config();
        let timeout = Duration::from_secs(config.chirpstack.command_timeout_seconds);
        let overdue = self
            .commands
            .book
            .overdue_devices(Timestamp::now(), timeout);
        let input = self
            .cycle
            .memory
            .plan(&config, self.upstream.state(), overdue);
        let (api, poller) = (self.cycle.api.clone(), self.myself.clone());
        self.cycle.running = Some(OwnedTask::spawn(async move {
            let report = run_cycle(api, input, &SystemClock).await;
            let _ = poller.cast(PollerMsg::CycleDone(Box::new(report)));
        }));
    }

    fn cycle_done(&mut self, report: CycleReport) {
        self.cycle.running = None;
        let config = self.config();
        let (now, calls) = (report.finished, report.calls);
        let transition = self.upstream_after(&report);
        let outcome = self.cycle.memory.absorb(report, &config);
        if let Some(transition) = transition {
            self.on_transition(transition);
        }
        if let Some(outcome) = outcome {
            self.publish(outcome, now, &config);
        }
        let status = self.upstream.status(
            self.streams.open_count(),
            self.streams.wanted_count(),
            self.streams.polled_only_count(),
        );
        self.export_link(calls);
        self.send(Feed::Upstream(Arc::new(status)));
        debug!(
            event = "poll_cycle_completed",
            duration_ms = self.cycle.memory.last_cycle().as_millis() as u64,
            calls,
            state = self.upstream.state().as_str()
        );
        let wait = self
            .upstream
            .next_poll_in(Duration::from_secs(config.chirpstack.polling_frequency));
        self.schedule_next(wait);
    }

    /// The link's gauges and the cycle's figures, for `/metrics`.
    fn export_link(&self, calls: u32) {
        let m = metrics();
        m.poll_cycle_seconds
            .observe(self.cycle.memory.last_cycle().as_secs_f64());
        m.chirpstack_calls.inc_by(u64::from(calls));
        Metrics::set_one_of(
            &m.upstream_state,
            "state",
            UPSTREAM_STATES,
            self.upstream.state().as_str(),
        );
        self.export_streams();
    }

    fn export_streams(&self) {
        let streams = &metrics().event_streams;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        streams
            .get_or_create(&[("status", "wanted")])
            .set(count(self.streams.wanted_count()));
        streams
            .get_or_create(&[("status", "open")])
            .set(count(self.streams.open_count()));
        streams
            .get_or_create(&[("status", "failing")])
            .set(count(self.streams.failing_count()));
        streams
            .get_or_create(&[("status", "polled_only")])
            .set(count(self.streams.polled_only_count()));
    }

    /// The upstream tracker's verdict on a cycle (failing streams make a success partial).
    fn upstream_after(&mut self, report: &CycleReport) -> Option<Transition> {
        let now = report.finished;
        if let Some(error) = &report.failure {
            return self.upstream.poll_failed(error, now);
        }
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

    /// Sends what a successful cycle found, and moves the commands along.
    fn publish(&mut self, outcome: CycleOutcome, now: Timestamp, config: &AppConfig) {
        if let Some(aggregation) = outcome.aggregation_changed {
            info!(event = "metrics_aggregation_fallback", aggregation = ?aggregation, "the server refuses MINUTE aggregation; using HOUR");
        }
        for id in &outcome.unknown_applications {
            warn!(
                event = "application_not_found",
                application_id = id.as_str(),
                "configured application is not in the ChirpStack tenant"
            );
        }
        for device in &outcome.unlisted_devices {
            debug!(event = "device_not_listed", device = device.as_str());
        }
        if !outcome.health.is_empty() {
            self.send(Feed::DeviceHealth(outcome.health.into()));
        }
        self.counters.aggregate_samples += outcome.samples.len() as u64;
        self.emit_samples(outcome.samples);
        self.reject(outcome.rejections, "get_metrics");
        let timeout = Duration::from_secs(config.chirpstack.command_timeout_seconds);
        for (device, queue) in &outcome.queues {
            for update in self
                .commands
                .book
                .expire_overdue(device, queue, now, timeout)
            {
                self.emit_command(update);
            }
        }
        self.commands.book.retry_transient();
        self.dispatch_due();
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

    /// Keeps an event's permit while storage is behind (the streams stop once all are held),
    /// else lets it and any held ones go.
    fn hold_if_backlogged(&mut self, permit: tokio::sync::OwnedSemaphorePermit) {
        if !self.output.storage_backlogged() {
            drop(permit);
            self.release_check();
            return;
        }
        if self.held.is_empty() {
            let (buffered, _, _) = self.output.storage_stats();
            warn!(
                event = "event_streams_held",
                buffered,
                "storage is behind: the event streams wait (ChirpStack keeps their events) \
                 until it catches up"
            );
            self.held_since = Some(std::time::Instant::now());
            self.schedule_release_check();
        }
        self.held.push(permit);
    }

    fn schedule_release_check(&mut self) {
        if !self.release_pending {
            self.release_pending = true;
            self.myself
                .send_after(RELEASE_CHECK, || PollerMsg::ReleaseCheck);
        }
    }

    /// Lets the held streams go once storage caught up; else looks again soon.
    fn release_check(&mut self) {
        if self.held.is_empty() {
            return;
        }
        if self.output.storage_backlogged() {
            self.schedule_release_check();
            return;
        }
        let held_ms = self
            .held_since
            .take()
            .map_or(0, |since| since.elapsed().as_millis() as u64);
        info!(
            event = "event_streams_released",
            events = self.held.len(),
            held_ms
        );
        self.held.clear();
    }

    fn device_event(&mut self, dev_eui: &str, event: DeviceEvent, received: Timestamp) {
        match &event {
            DeviceEvent::Uplink(uplink) => {
                let Some(object) = &uplink.object else {
                    if self.cycle.memory.knows(dev_eui) {
                        debug!(event = "uplink_without_object", device = dev_eui);
                    }
                    return;
                };
                if let Some((samples, rejections)) =
                    self.cycle
                        .memory
                        .uplink(dev_eui, object, uplink.time, received)
                {
                    self.emit_samples(samples);
                    self.reject(rejections, "stream");
                }
            }
            DeviceEvent::Ack { .. } | DeviceEvent::TxAck { .. } | DeviceEvent::Log { .. } => {
                if let Some(update) = self.commands.book.on_event(&event) {
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
        self.export_streams();
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
        self.commands
            .dispatch_due(self.upstream.state(), &self.myself);
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
