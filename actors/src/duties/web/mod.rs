//! The Web actor: serves the operator console (`opcgw::web`) on `[web].bind_address:port` and
//! feeds its live stream.
//!
//! The library knows no actors; this actor gives it a backend over typed messages
//! ([`backend`]), turns the poller's feed and its own one-second clock into live events
//! ([`live`]), owns the listener and the accept loop, and stops them when it stops (a taken
//! port fails the start, which the supervisor retries with backoff). What must outlive a
//! restart of this actor — sessions, the audit ring, the login throttle, idempotency keys, the
//! ingest counter — lives in [`WebProcess`], which the tree creates once: a crash here signs
//! nobody out.

mod backend;
mod live;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use opcgw::commands::CommandUpdate;
use opcgw::config::AppConfig;
use opcgw::model::Timestamp;
use opcgw::security::CertificateDesk;
use opcgw::storage::CommandFilter;
use opcgw::web::assets::Assets;
use opcgw::web::server::{self, ServeLimits};
use opcgw::web::views::{CommandView, ConfigEvent, LiveEvent, LiveFrame};
use opcgw::web::{WebShared, WebState as RouterState};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use crate::tree::duty::DutyBase;
use crate::tree::gateway::TreeHandle;
use crate::tree::messages::{Common, ConfigUpdate, Feed, Peers, WebMsg};
use crate::tree::storage_client::StorageClient;
use crate::tree::supervisor::SupervisorMsg;
use crate::tree::task::OwnedTask;
use backend::{GatewayBackend, GatewayView, SharedView};
use live::{upstream_change, HealthWatch, IngestMeter, LiveMetrics};

pub const ROLE: &str = "web";

/// How often quality is re-evaluated (and the actors' health every [`HEALTH_EVERY_TICKS`]).
const TICK: Duration = Duration::from_secs(1);
const HEALTH_EVERY_TICKS: u64 = 2;
/// How often expired sessions are removed (and `web_session_expired` logged).
const SESSION_SWEEP: Duration = Duration::from_secs(60);
/// Live events a slow client may fall behind before it gets `lagged` (and refetches).
const LIVE_BUFFER: usize = 4096;
/// Command updates waiting to be looked up in storage before new ones are dropped.
const COMMAND_BACKLOG: usize = 1024;
/// Longest wait, when this actor stops, for the accept loop to let go of the port. Event
/// streams end on the shutdown token at once; other answers are short.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// How long a start waits for storage's latest values.
const SEED_TIMEOUT: Duration = Duration::from_secs(2);

/// What outlives restarts of the web actor (created once per tree).
pub struct WebProcess {
    pub started_at: Timestamp,
    shared: OnceLock<WebShared>,
    pub ingest: IngestMeter,
    /// Client-certificate actions take turns across restarts of this actor too.
    pub certificates: CertificateDesk,
}

impl WebProcess {
    pub fn new() -> Self {
        Self {
            started_at: Timestamp::now(),
            shared: OnceLock::new(),
            ingest: IngestMeter::default(),
            certificates: CertificateDesk::default(),
        }
    }

    /// Sessions and the rest, created on first use (with the session lifetimes of that
    /// configuration: they are restart-required knobs).
    fn shared(&self, config: &AppConfig) -> WebShared {
        self.shared.get_or_init(|| WebShared::new(config)).clone()
    }
}

impl Default for WebProcess {
    fn default() -> Self {
        Self::new()
    }
}

pub struct WebArgs {
    pub config: ConfigUpdate,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub peers: Peers,
    pub process: Arc<WebProcess>,
}

pub struct WebActor;

/// The listener's accept loop, stopped by cancelling (or dropping) its token.
struct RunningServer {
    address: SocketAddr,
    shutdown: CancellationToken,
    /// Cancels the token if the actor's state is dropped without `post_stop` (a panic).
    _cancel_on_drop: DropGuard,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

pub struct WebState {
    base: DutyBase,
    process: Arc<WebProcess>,
    view: SharedView,
    /// The generation of `view.config`, for answers that wait until an edit shows here.
    generation: watch::Sender<u64>,
    events: broadcast::Sender<LiveFrame>,
    live: LiveMetrics,
    health: HealthWatch,
    commands: Option<mpsc::Sender<Arc<CommandUpdate>>>,
    server: Option<RunningServer>,
    seeded: bool,
    _tasks: Vec<OwnedTask>,
}

impl WebState {
    fn publish(&self, events: Vec<LiveEvent>) {
        for event in events {
            // No receiver (no page open) is not an error.
            let _ = self.events.send(LiveFrame::from(event));
        }
    }

    fn update_view(&self, change: impl FnOnce(&mut GatewayView)) {
        change(&mut self.view.write().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Actor for WebActor {
    type Msg = WebMsg;
    type State = WebState;
    type Arguments = WebArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WebMsg>,
        args: WebArgs,
    ) -> Result<WebState, ActorProcessingErr> {
        let config = args.config.config.clone();
        let now = Timestamp::now();
        let (events, _) = broadcast::channel(LIVE_BUFFER);
        let view: SharedView = Arc::new(RwLock::new(GatewayView {
            config: config.clone(),
            generation: args.config.generation,
            peers: args.peers.clone(),
            upstream: None,
            quality: Default::default(),
        }));
        let (generation, _) = watch::channel(args.config.generation);
        let mut base = DutyBase::new(ROLE, args.config);
        base.peers = args.peers.clone();
        let mut state = WebState {
            base,
            process: args.process.clone(),
            view,
            generation,
            events,
            live: LiveMetrics::new(&config, now),
            health: HealthWatch::default(),
            commands: None,
            server: None,
            seeded: false,
            _tasks: Vec::new(),
        };
        if !config.web.enabled {
            info!(
                event = "web_console_disabled",
                "the web console is off ([web].enabled = false); nothing listens on a web port"
            );
            return Ok(state);
        }

        let shared = args.process.shared(&config);
        let assets = Assets::from_config(config.web.static_dir.as_deref()).map_err(|e| {
            format!(
                "cannot read the console's files from [web].static_dir: {e} (fix or remove the setting)"
            )
        })?;
        let listener =
            tokio::net::TcpListener::bind((config.web.bind_address.as_str(), config.web.port))
                .await
                .map_err(|e| {
                    format!(
                        "cannot listen on {}:{} for the web console: {e} (is another process using the port? retrying with backoff)",
                        config.web.bind_address, config.web.port
                    )
                })?;
        let address = listener.local_addr()?;

        // Values known before the first uplink, so quality ages correctly from the start.
        let storage = StorageClient::from_peers(&args.peers);
        if let Ok(Ok(samples)) = tokio::time::timeout(SEED_TIMEOUT, storage.latest(None)).await {
            state.live.seed(&samples, Timestamp::now());
            state.seeded = true;
        }
        let quality = state.live.counts();
        state.update_view(|v| v.quality = quality);

        let tree = TreeHandle {
            supervisor: args.supervisor,
        };
        let backend = Arc::new(GatewayBackend {
            view: state.view.clone(),
            generation: state.generation.subscribe(),
            tree: tree.clone(),
            events: state.events.clone(),
            process: args.process.clone(),
        });
        let shutdown = CancellationToken::new();
        let router = opcgw::web::router(RouterState::new(
            &config,
            backend,
            shared.clone(),
            assets,
            shutdown.clone(),
        ));
        let limits = ServeLimits::from_config(&config.web);
        let task = tokio::spawn(server::serve(listener, router, limits, shutdown.clone()));
        info!(
            event = "web_server_started",
            address = %address,
            url = %format!("http://{address}/"),
            "web console listening"
        );
        state.server = Some(RunningServer {
            address,
            _cancel_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            task: Some(task),
        });

        let (commands, updates) = mpsc::channel(COMMAND_BACKLOG);
        state.commands = Some(commands);
        state._tasks = vec![
            OwnedTask::spawn(tick(myself.clone(), tree)),
            OwnedTask::spawn(sweep_sessions(shared)),
            OwnedTask::spawn(command_events(
                updates,
                state.view.clone(),
                state.events.clone(),
            )),
        ];
        if !state.seeded {
            seed_from_storage(&myself, &args.peers);
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WebMsg>,
        state: &mut WebState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(server) = &mut state.server {
            server.shutdown.cancel();
            if let Some(task) = server.task.take() {
                if tokio::time::timeout(STOP_WAIT, task).await.is_err() {
                    debug!(
                        event = "web_server_stop_pending",
                        "open web answers still finishing; they end within the grace period"
                    );
                }
            }
            info!(event = "web_server_stopped", address = %server.address);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WebMsg>,
        message: WebMsg,
        state: &mut WebState,
    ) -> Result<(), ActorProcessingErr> {
        if state.server.is_none() {
            // Disabled: status and configuration only; the feed is dropped.
            if let WebMsg::Common(common) = message {
                state.base.handle_common(common, |_| {
                    "disabled ([web].enabled = false): nothing listens on a web port".into()
                })?;
            }
            return Ok(());
        }
        match message {
            WebMsg::Common(common) => {
                let peers_changed = matches!(common, Common::PeersChanged(_));
                let before = state.base.config.config.clone();
                let summary = match &state.server {
                    Some(server) => format!(
                        "serving http://{}/ ({} live clients)",
                        server.address,
                        state.events.receiver_count()
                    ),
                    None => "disabled".into(),
                };
                state.base.handle_common(common, |_| summary)?;
                let after = state.base.config.clone();
                if !Arc::ptr_eq(&before, &after.config) {
                    state.live.reconfigure(&after.config, Timestamp::now());
                }
                let peers = state.base.peers.clone();
                let quality = state.live.counts();
                state.update_view(|v| {
                    v.config = after.config.clone();
                    v.generation = after.generation;
                    v.peers = peers;
                    v.quality = quality;
                });
                // An edit, SIGHUP or `ctl reload` made a new generation live: open pages
                // refetch what they show.
                let changed = state.generation.send_if_modified(|g| {
                    let changed = *g != after.generation;
                    *g = after.generation;
                    changed
                });
                if changed {
                    state.publish(vec![LiveEvent::Config(ConfigEvent {
                        generation: after.generation,
                    })]);
                }
                if peers_changed && !state.seeded {
                    seed_from_storage(&myself, &state.base.peers);
                }
            }
            WebMsg::Feed(feed) => match feed {
                Feed::Samples(samples) => {
                    state
                        .process
                        .ingest
                        .record(samples.len() as u64, Instant::now());
                    let events = state.live.apply(&samples, Timestamp::now());
                    state.publish(events);
                    let quality = state.live.counts();
                    state.update_view(|v| v.quality = quality);
                }
                Feed::Upstream(status) => {
                    let last = state
                        .view
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .upstream
                        .clone();
                    if let Some(event) = upstream_change(last.as_deref(), &status) {
                        state.publish(vec![event]);
                    }
                    state.update_view(|v| v.upstream = Some(status));
                }
                Feed::DeviceHealth(_) => {}
                Feed::Command(update) => {
                    if let Some(commands) = &state.commands {
                        if commands.try_send(update).is_err() {
                            warn!(
                                event = "web_command_event_dropped",
                                "too many command updates waiting; open pages miss one (they refetch on reconnect)"
                            );
                        }
                    }
                }
            },
            WebMsg::Tick => {
                let events = state.live.reevaluate(Timestamp::now());
                state.publish(events);
                let quality = state.live.counts();
                state.update_view(|v| v.quality = quality);
            }
            WebMsg::Seed(samples) => {
                state.seeded = true;
                state.live.seed(&samples, Timestamp::now());
                let quality = state.live.counts();
                state.update_view(|v| v.quality = quality);
            }
            WebMsg::Tree(tree) => {
                let events = state.health.changes(&tree);
                state.publish(events);
            }
        }
        Ok(())
    }
}

/// The actor's clock: `Tick` every second, the tree's health every other second.
async fn tick(myself: ActorRef<WebMsg>, tree: TreeHandle) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        interval.tick().await;
        if myself.cast(WebMsg::Tick).is_err() {
            return;
        }
        ticks += 1;
        if ticks % HEALTH_EVERY_TICKS == 1 {
            if let Some(status) = tree.status().await {
                if myself.cast(WebMsg::Tree(status)).is_err() {
                    return;
                }
            }
        }
    }
}

async fn sweep_sessions(shared: WebShared) {
    let mut interval = tokio::time::interval(SESSION_SWEEP);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let removed = shared.sessions.sweep();
        if removed > 0 {
            debug!(event = "web_sessions_swept", removed);
        }
    }
}

/// Turns the poller's command updates into `command` events, in order: the update carries the
/// new state, storage the rest of the command (who asked, when).
async fn command_events(
    mut updates: mpsc::Receiver<Arc<CommandUpdate>>,
    view: SharedView,
    events: broadcast::Sender<LiveFrame>,
) {
    while let Some(update) = updates.recv().await {
        let peers = view.read().unwrap_or_else(|e| e.into_inner()).peers.clone();
        let filter = CommandFilter {
            device_id: Some(update.device_id.clone()),
            states: None,
            limit: opcgw::storage::MAX_COMMAND_PAGE,
        };
        let record = match StorageClient::from_peers(&peers).commands(filter).await {
            Ok(records) => records.into_iter().find(|r| r.id == update.id),
            Err(error) => {
                debug!(event = "web_command_event_lookup_failed", id = update.id, error = %error);
                None
            }
        };
        let Some(record) = record else {
            continue;
        };
        let mut command = CommandView::from(&record);
        if record.updated <= update.at {
            command.state = update.state;
            command.detail = update.detail.clone();
            command.updated = update.at.into();
        }
        let _ = events.send(LiveEvent::Command(command).into());
    }
}

/// Asks storage for the latest value of every metric (in the background) and feeds it back as
/// `Seed` (storage may still be starting: a few tries, then live samples fill the values).
fn seed_from_storage(myself: &ActorRef<WebMsg>, peers: &Peers) {
    let client = StorageClient::from_peers(peers);
    let myself = myself.clone();
    tokio::spawn(async move {
        for attempt in 0..10u32 {
            match client.latest(None).await {
                Ok(latest) => {
                    let _ = myself.cast(WebMsg::Seed(latest));
                    return;
                }
                Err(error) => {
                    debug!(event = "web_seed_retry", attempt, error = %error);
                    tokio::time::sleep(Duration::from_millis(250) * (attempt + 1)).await;
                }
            }
        }
    });
}
