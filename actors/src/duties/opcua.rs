//! The OPC UA actor: runs the async-opcua server (`opcgw::opcua::server`), pushes the values
//! the poller feeds it into the address space, re-evaluates their quality every second so
//! staleness reaches subscribers without new data, applies topology reloads live and keeps the
//! `Gateway` folder current.
//!
//! It owns no data: after a restart it refills its values from storage's latest snapshot, so
//! clients that reconnect see current values at once.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use opcgw::backoff::Backoff;
use opcgw::chirpstack::upstream::UpstreamStatus;
use opcgw::commands::NewCommand;
use opcgw::metrics::metrics;
use opcgw::model::{Sample, Timestamp};
use opcgw::opcua::nodes::{
    command_status_text, gateway_vars, ua_time, BackendError, BoxFuture, GatewayBackend,
};
use opcgw::opcua::server::{self as ua_server, RunningServer};
use opcgw::opcua::values::LiveValues;
use opcgw::storage::{
    CommandFilter, CommandRecord, HistoryPage, HistoryQuery, ProcessedPage, ProcessedQuery,
    StorageErrorKind, MAX_COMMAND_PAGE,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};
use ua::types::Variant;

use crate::tree::duty::DutyBase;
use crate::tree::messages::{Common, ConfigUpdate, Feed, OpcUaMsg, Peers, StorageFailure};
use crate::tree::storage_client::StorageClient;
use crate::tree::supervisor::SupervisorMsg;

pub const ROLE: &str = "opcua";

/// How often quality is re-evaluated and the `Gateway` folder refreshed.
pub const TICK: Duration = Duration::from_secs(1);
/// How often the session-count gauge is logged.
pub const SESSION_GAUGE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a start waits for storage's latest values.
const SEED_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries of the background seed: 250 ms doubling to 4 s.
const SEED_RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(4));
/// `Gateway/Health` is refreshed every this many ticks.
const HEALTH_EVERY_TICKS: u64 = 5;

pub struct OpcUaArgs {
    pub config: ConfigUpdate,
    pub supervisor: ActorRef<SupervisorMsg>,
    /// Siblings running at start: storage, to refill values before serving.
    pub peers: Peers,
    /// Serve on (a duplicate of) this listener instead of binding the configured address.
    pub listener: Option<Arc<std::net::TcpListener>>,
}

pub struct OpcUaActor;

pub struct OpcUaState {
    base: DutyBase,
    supervisor: ActorRef<SupervisorMsg>,
    server: RunningServer,
    live: LiveValues,
    storage: Arc<RwLock<StorageClient>>,
    seeded: bool,
    ticker: Option<tokio::task::JoinHandle<()>>,
    last_gauge: Instant,
    samples_in: u64,
    ticks: u64,
    published_counts: Option<opcgw::opcua::values::QualityCounts>,
    last_sessions: u32,
}

/// The storage actor as the OPC UA server's backend (re-pointed when storage restarts).
struct StorageBackend {
    client: Arc<RwLock<StorageClient>>,
}

impl StorageBackend {
    fn client(&self) -> StorageClient {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn backend_error(failure: StorageFailure) -> BackendError {
    match failure {
        StorageFailure::Unavailable(why) => BackendError::Unavailable(why),
        StorageFailure::Store {
            kind: StorageErrorKind::UnknownSeries,
            ..
        } => BackendError::UnknownSeries,
        StorageFailure::Store {
            kind: StorageErrorKind::InvalidQuery,
            message,
        } => BackendError::Rejected(message),
        StorageFailure::Store {
            kind: StorageErrorKind::CommandQueueFull,
            message,
        } => BackendError::CommandQueueFull(message),
        StorageFailure::Store { message, .. } => BackendError::Unavailable(message),
    }
}

impl GatewayBackend for StorageBackend {
    fn history(&self, query: HistoryQuery) -> BoxFuture<'_, Result<HistoryPage, BackendError>> {
        let client = self.client();
        Box::pin(async move { client.history(query).await.map_err(backend_error) })
    }

    fn processed(
        &self,
        query: ProcessedQuery,
    ) -> BoxFuture<'_, Result<ProcessedPage, BackendError>> {
        let client = self.client();
        Box::pin(async move { client.processed(query).await.map_err(backend_error) })
    }

    fn enqueue_command(
        &self,
        command: NewCommand,
    ) -> BoxFuture<'_, Result<CommandRecord, BackendError>> {
        let client = self.client();
        Box::pin(async move { client.enqueue_command(command).await.map_err(backend_error) })
    }
}

impl OpcUaState {
    fn publish_counts(&mut self) {
        let counts = self.live.counts();
        if self.published_counts == Some(counts) {
            return;
        }
        self.published_counts = Some(counts);
        let values = &metrics().values;
        for (quality, n) in [
            ("good", counts.good),
            ("uncertain", counts.uncertain),
            ("bad", counts.bad),
            ("waiting", counts.waiting),
        ] {
            values
                .get_or_create(&[("quality", quality)])
                .set(i64::from(n));
        }
        self.server.nodes.set_gateway_values(vec![
            (gateway_vars::GOOD, Variant::UInt32(counts.good)),
            (gateway_vars::UNCERTAIN, Variant::UInt32(counts.uncertain)),
            (gateway_vars::BAD, Variant::UInt32(counts.bad)),
            (gateway_vars::WAITING, Variant::UInt32(counts.waiting)),
        ]);
    }

    /// Sessions, subscriptions and monitored items, for `/metrics`.
    fn export_sessions(&self, sessions: u32) {
        let m = metrics();
        let (subscriptions, items) = self.server.subscription_counts();
        m.opcua_sessions.set(i64::from(sessions));
        m.opcua_subscriptions
            .set(i64::try_from(subscriptions).unwrap_or(i64::MAX));
        m.opcua_monitored_items
            .set(i64::try_from(items).unwrap_or(i64::MAX));
    }

    fn publish_upstream(&self, status: &UpstreamStatus) {
        let last_poll = status
            .last_poll
            .map_or(Variant::Empty, |t| Variant::DateTime(Box::new(ua_time(t))));
        self.server.nodes.set_gateway_values(vec![
            (gateway_vars::LAST_POLL, last_poll),
            (
                gateway_vars::UPSTREAM_STATE,
                Variant::from(format!("{:?}", status.state).to_lowercase()),
            ),
            (
                gateway_vars::UPSTREAM_ERROR,
                Variant::from(status.last_error.clone().unwrap_or_default()),
            ),
        ]);
    }

    fn apply_samples(&mut self, samples: &[Sample]) {
        let updates = self.live.apply(samples, Timestamp::now());
        self.server.nodes.publish(&updates);
    }
}

impl Actor for OpcUaActor {
    type Msg = OpcUaMsg;
    type State = OpcUaState;
    type Arguments = OpcUaArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: OpcUaArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let config = args.config.config.clone();
        let client = StorageClient::from_peers(&args.peers);
        // Serve current values from the first session on: refill from storage before
        // listening (after a restart of this actor storage is running; at process start it
        // is too, as it starts first).
        let mut live = LiveValues::from_config(&config, Timestamp::now());
        let mut seeded = false;
        match tokio::time::timeout(SEED_TIMEOUT, client.latest(None)).await {
            Ok(Ok(samples)) => {
                debug!(event = "opcua_values_seeded", values = samples.len());
                live.apply(&samples, Timestamp::now());
                seeded = true;
            }
            Ok(Err(e)) => debug!(event = "opcua_seed_retry", error = %e),
            Err(_) => debug!(
                event = "opcua_seed_retry",
                error = "storage did not answer in time"
            ),
        }
        let storage = Arc::new(RwLock::new(client));
        let backend = Arc::new(StorageBackend {
            client: storage.clone(),
        });
        let listener = args
            .listener
            .as_deref()
            .map(|l| l.try_clone())
            .transpose()?;
        let server = ua_server::start_on(&config, backend, listener).await?;
        server.nodes.publish(&live.snapshot());
        let client = storage.read().unwrap_or_else(|e| e.into_inner()).clone();
        seed_command_status(&server, &client).await;
        let ticker = {
            let myself = myself.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(TICK);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    if myself.cast(OpcUaMsg::Tick).is_err() {
                        break;
                    }
                }
            })
        };
        let mut state = OpcUaState {
            base: DutyBase::new(ROLE, args.config),
            supervisor: args.supervisor,
            server,
            live,
            storage,
            seeded,
            ticker: Some(ticker),
            last_gauge: Instant::now(),
            samples_in: 0,
            ticks: 0,
            published_counts: None,
            last_sessions: 0,
        };
        state.publish_counts();
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        state.server.handle().cancel();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            OpcUaMsg::Common(common) => {
                let before = state.base.config.config.clone();
                let peers_changed = matches!(common, Common::PeersChanged(_));
                let summary = format!(
                    "serving opc.tcp://{} ({} metric values, {} samples received)",
                    state.server.local_addr,
                    state.live.len(),
                    state.samples_in
                );
                state.base.handle_common(common, |_| summary)?;
                if peers_changed {
                    *state.storage.write().unwrap_or_else(|e| e.into_inner()) =
                        StorageClient::from_peers(&state.base.peers);
                    if !state.seeded {
                        seed_from_storage(&myself, state);
                    }
                    // An actor started, stopped or restarted: `Gateway/Health` says so now,
                    // not at the next periodic refresh.
                    refresh_health(&myself, state);
                }
                let after = state.base.config.config.clone();
                if !Arc::ptr_eq(&before, &after) {
                    state
                        .server
                        .nodes
                        .set_history_page(after.opcua.max_history_data_results_per_node as usize);
                    state.live.reconfigure(&after, Timestamp::now());
                    let changes = state.server.nodes.apply_topology(&after);
                    if !changes.is_empty() {
                        info!(
                            event = "opcua_address_space_changed",
                            added = changes.add.len(),
                            removed = changes.remove.len(),
                            updated = changes.update.len(),
                            "address space follows the reloaded configuration"
                        );
                        // A metric whose type changed dropped its value: republish (unchanged
                        // values notify no one).
                        state.server.nodes.publish(&state.live.snapshot());
                    }
                    state.publish_counts();
                }
            }
            OpcUaMsg::Feed(feed) => match feed {
                Feed::Samples(samples) => {
                    state.samples_in += samples.len() as u64;
                    state.apply_samples(&samples);
                }
                Feed::Upstream(status) => state.publish_upstream(&status),
                Feed::DeviceHealth(_) => {}
                Feed::Command(update) => {
                    state.server.nodes.set_command_status(
                        &update.device_id,
                        &update.command_name,
                        &command_status_text(
                            update.id,
                            update.state.as_str(),
                            update.detail.as_deref(),
                        ),
                    );
                }
            },
            OpcUaMsg::Seed(samples) => {
                state.seeded = true;
                debug!(event = "opcua_values_seeded", values = samples.len());
                state.apply_samples(&samples);
                state.publish_counts();
            }
            OpcUaMsg::Tick => {
                let updates = state.live.reevaluate(Timestamp::now());
                state.server.nodes.publish(&updates);
                state.publish_counts();
                state.ticks += 1;
                if state.ticks % HEALTH_EVERY_TICKS == 1 {
                    refresh_health(&myself, state);
                }
                let sessions = state.server.session_count();
                state.export_sessions(sessions);
                if sessions != state.last_sessions
                    || state.last_gauge.elapsed() >= SESSION_GAUGE_INTERVAL
                {
                    state.last_gauge = Instant::now();
                    state.last_sessions = sessions;
                    log_session_gauge(state, sessions);
                }
            }
            OpcUaMsg::Health(health) => state.server.nodes.set_health(&health),
            OpcUaMsg::Sessions(reply) => {
                let _ = reply.send(state.server.session_count());
            }
        }
        Ok(())
    }
}

/// The session-count gauge: logged when the count changes and at least every
/// [`SESSION_GAUGE_INTERVAL`]. Each session refused at the limit is logged as it happens
/// (`opcua_session_count_at_limit`, with its source: `opcgw::opcua::auth`).
fn log_session_gauge(state: &OpcUaState, current: u32) {
    let limit = state.base.config.config.opcua.max_connections;
    info!(
        event = "opcua_session_count",
        current, limit, "OPC UA sessions"
    );
}

/// Shows each command's last known state in its `Status` variable (newest record per command).
async fn seed_command_status(server: &RunningServer, client: &StorageClient) {
    let filter = CommandFilter {
        device_id: None,
        states: None,
        limit: MAX_COMMAND_PAGE,
    };
    let Ok(Ok(records)) = tokio::time::timeout(SEED_TIMEOUT, client.commands(filter)).await else {
        debug!(event = "opcua_command_status_unavailable");
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for record in records {
        if !server
            .nodes
            .has_command(&record.downlink.device_id, &record.downlink.command_name)
        {
            continue;
        }
        if seen.insert((
            record.downlink.device_id.clone(),
            record.downlink.command_name.clone(),
        )) {
            server.nodes.set_command_status(
                &record.downlink.device_id,
                &record.downlink.command_name,
                &command_status_text(record.id, record.state.as_str(), record.detail.as_deref()),
            );
        }
    }
}

/// Asks storage for the latest value of every metric (in the background) and feeds it back as
/// `Seed`.
fn seed_from_storage(myself: &ActorRef<OpcUaMsg>, state: &OpcUaState) {
    let client = state
        .storage
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let myself = myself.clone();
    tokio::spawn(async move {
        // Storage may itself be starting: a few tries, then live samples fill the values.
        for attempt in 0..10u32 {
            match client.latest(None).await {
                Ok(latest) => {
                    let _ = myself.cast(OpcUaMsg::Seed(latest));
                    return;
                }
                Err(e) => {
                    debug!(event = "opcua_seed_retry", attempt, error = %e);
                    tokio::time::sleep(SEED_RETRY.nominal_delay(attempt)).await;
                }
            }
        }
        warn!(
            event = "opcua_seed_failed",
            "could not read the latest values from storage; values fill as devices report"
        );
    });
}

/// Asks the supervisor for every child's health (in the background) for `Gateway/Health`.
fn refresh_health(myself: &ActorRef<OpcUaMsg>, state: &OpcUaState) {
    let supervisor = state.supervisor.clone();
    let myself = myself.clone();
    tokio::spawn(async move {
        let Some(status) = crate::tree::gateway::TreeHandle { supervisor }
            .status()
            .await
        else {
            return;
        };
        let health = status
            .children
            .iter()
            .map(|child| {
                let mut text = format!("{:?}", child.state).to_lowercase();
                if child.restarts > 0 {
                    text.push_str(&format!(" ({} restarts)", child.restarts));
                }
                if let Some(error) = &child.last_error {
                    text.push_str(&format!("; last error: {error}"));
                }
                (child.name.clone(), text)
            })
            .collect();
        let _ = myself.cast(OpcUaMsg::Health(health));
    });
}
