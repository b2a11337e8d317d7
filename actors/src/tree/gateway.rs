//! The gateway's actor tree: the children in start order, and a handle to drive it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opcgw::config::{AppConfig, EnvSnapshot};
use ractor::{Actor, ActorRef};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::cli::logging::LogControl;
use crate::duties::reload::{ReloadActor, ReloadArgs};
use crate::duties::{control, metrics, opcua, poller, reload, storage, web};
use crate::tree::backoff::SupervisorPolicy;
use crate::tree::child::{actor_child, draining_at_stop, with_after_stop, ChildSpec};
use crate::tree::messages::{
    ConfigUpdate, DiscoverOutcome, DiscoverTrigger, ReloadMsg, ReloadOutcome, ReloadTrigger,
    CALL_TIMEOUT,
};
use crate::tree::supervisor::{
    FaultPlan, Supervisor, SupervisorArgs, SupervisorMsg, TreeExit, TreeStatus,
};

/// Everything the tree needs besides the configuration.
#[derive(Clone, Default)]
pub struct TreeOptions {
    pub config_path: PathBuf,
    pub env: EnvSnapshot,
    pub log: Option<LogControl>,
    pub faults: Vec<FaultPlan>,
    /// An OPC UA listener bound by the caller (tests), served instead of binding
    /// `opcua.host_port`; it stays bound across restarts of the OPC UA actor.
    pub opcua_listener: Option<Arc<std::net::TcpListener>>,
    /// How console edits replace the config file (`None`: atomically, `write_atomic`); tests
    /// substitute a writer that fails on demand.
    pub config_writer: Option<opcgw::config::edit::ConfigWriter>,
    /// The hash of the file bytes the starting configuration was loaded from, when the caller
    /// loaded it from `config_path` (saves the reload actor parsing the file again at start).
    pub config_hash: Option<opcgw::config::edit::ContentHash>,
    /// The configuration the file gives (set by [`Tree::start`]: the live one is it with the
    /// devices discovered before merged in).
    pub initial_file: Option<Arc<AppConfig>>,
}

/// The seven duty actors, in start order: storage first (everyone writes to or reads from it),
/// reload last (it may only broadcast to a complete tree).
pub fn gateway_children(options: &TreeOptions) -> Vec<Arc<dyn ChildSpec>> {
    let reload_options = options.clone();
    let control_log = options.log.clone();
    let opcua_listener = options.opcua_listener.clone();
    // Sessions and the rest of the console's memory outlive restarts of the web actor.
    let web_process = Arc::new(web::WebProcess::new());
    // What the poller hands to storage outlives its restarts, and is written before storage
    // stops when the tree stops.
    let forwarder = Arc::new(poller::forward::StorageForwarder::new());
    let draining = forwarder.clone();
    vec![
        // Appends sent before the stop (the poller's last ones, the forwarder's drain) are
        // stored, not dropped unanswered in the mailbox.
        draining_at_stop(actor_child(storage::ROLE, |ctx| {
            let args = storage::StorageArgs {
                config: ctx.config.clone(),
                reads: ctx.peers.reads().clone(),
            };
            (storage::StorageActor, args)
        })),
        actor_child(opcua::ROLE, move |ctx| {
            let args = opcua::OpcUaArgs {
                config: ctx.config.clone(),
                supervisor: ctx.supervisor.clone(),
                peers: ctx.peers.clone(),
                listener: opcua_listener.clone(),
            };
            (opcua::OpcUaActor, args)
        }),
        with_after_stop(
            actor_child(poller::ROLE, move |ctx| {
                let args = poller::PollerArgs {
                    config: ctx.config.clone(),
                    output: Box::new(poller::output::PeerOutput::through(forwarder.clone())),
                    peers: ctx.peers.clone(),
                };
                (poller::PollerActor, args)
            }),
            move |within, peers| {
                // Where storage is now: the forwarder learns it from a running poller, which
                // may not have heard of the latest storage instance.
                draining.set_storage(peers.storage().map(|peer| peer.actor().clone()));
                let forwarder = draining.clone();
                Box::pin(async move {
                    forwarder.drain_at_stop(within).await;
                })
            },
        ),
        actor_child(web::ROLE, move |ctx| {
            let args = web::WebArgs {
                config: ctx.config.clone(),
                supervisor: ctx.supervisor.clone(),
                peers: ctx.peers.clone(),
                process: web_process.clone(),
            };
            (web::WebActor, args)
        }),
        actor_child(metrics::ROLE, |ctx| {
            let args = metrics::MetricsArgs {
                config: ctx.config.clone(),
                supervisor: ctx.supervisor.clone(),
            };
            (metrics::MetricsActor, args)
        }),
        actor_child(control::ROLE, move |ctx| {
            let args = control::ControlArgs {
                config: ctx.config.clone(),
                supervisor: ctx.supervisor.clone(),
                log: control_log.clone(),
            };
            (control::ControlActor, args)
        }),
        actor_child(reload::ROLE, move |ctx| {
            let args = ReloadArgs {
                config_path: reload_options.config_path.clone(),
                env: reload_options.env.clone(),
                log: reload_options.log.clone(),
                supervisor: ctx.supervisor.clone(),
                config: ctx.config.clone(),
                write: reload_options
                    .config_writer
                    .unwrap_or(opcgw::config::edit::write_atomic),
                initial_hash: reload_options.config_hash,
                initial_file: reload_options.initial_file.clone(),
            };
            (ReloadActor, args)
        }),
    ]
}

/// Why a reload request got no outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReloadUnavailable {
    #[error("the reload actor is not running")]
    NotRunning,
    #[error("the reload actor did not answer")]
    NoAnswer,
}

/// A running tree.
pub struct Tree {
    pub handle: TreeHandle,
    /// Completes when the supervisor has stopped.
    pub join: JoinHandle<()>,
    /// Set once the tree has ended, with how it ended.
    pub exit: watch::Receiver<Option<TreeExit>>,
}

/// A cheap, cloneable way to talk to a running tree.
#[derive(Clone)]
pub struct TreeHandle {
    pub supervisor: ActorRef<SupervisorMsg>,
}

impl Tree {
    /// Starts the gateway tree with `config`.
    /// Starts the gateway tree with `config` (the file's): the devices discovered before are
    /// served from the start.
    pub async fn start(config: Arc<AppConfig>, mut options: TreeOptions) -> Result<Self, String> {
        let policy = SupervisorPolicy::from_config(&config.supervisor);
        let live = reload::starting_config(&config);
        options.initial_file = Some(config);
        let children = gateway_children(&options);
        Self::start_with(
            children,
            policy,
            ConfigUpdate::initial(live),
            options.faults,
        )
        .await
    }

    /// Starts a tree of arbitrary children (tests use their own); returns once each child has
    /// had its first start attempt.
    pub async fn start_with(
        children: Vec<Arc<dyn ChildSpec>>,
        policy: SupervisorPolicy,
        config: ConfigUpdate,
        faults: Vec<FaultPlan>,
    ) -> Result<Self, String> {
        let (exit_tx, exit) = watch::channel(None);
        let (started_tx, started) = oneshot::channel();
        let args = SupervisorArgs {
            children,
            policy,
            config,
            exit: exit_tx,
            faults,
            started: Some(started_tx),
        };
        let (supervisor, join) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|e| e.to_string())?;
        // Returns once every child has had its first start attempt (as when starts blocked the
        // supervisor); an error only means the supervisor stopped first, which `exit` reports.
        let _ = started.await;
        Ok(Self {
            handle: TreeHandle { supervisor },
            join,
            exit,
        })
    }
}

impl TreeHandle {
    pub async fn status(&self) -> Option<TreeStatus> {
        self.supervisor
            .call(SupervisorMsg::Status, Some(CALL_TIMEOUT))
            .await
            .ok()?
            .success_or(())
            .ok()
    }

    /// Stops the tree in reverse start order; false if it did not finish within `timeout`.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        matches!(
            self.supervisor
                .call(SupervisorMsg::Shutdown, Some(timeout))
                .await,
            Ok(ractor::rpc::CallResult::Success(()))
        )
    }

    /// The running instance of the child `role`, if any.
    pub async fn lookup<M>(&self, role: &str) -> Option<ActorRef<M>> {
        let cell = self
            .supervisor
            .call(
                |reply| SupervisorMsg::Lookup(role.into(), reply),
                Some(CALL_TIMEOUT),
            )
            .await
            .ok()?
            .success_or(())
            .ok()??;
        Some(cell.into())
    }

    /// Asks the reload actor for a discovery and waits for its outcome (a large tenant
    /// through a slow link takes a while: up to 25 s, inside the control socket's 30 s).
    pub async fn discover(
        &self,
        trigger: DiscoverTrigger,
    ) -> Result<DiscoverOutcome, ReloadUnavailable> {
        self.ask_reload(
            |reply| ReloadMsg::Discover {
                trigger,
                reply: Some(reply),
            },
            CALL_TIMEOUT * 5,
        )
        .await
    }

    /// Asks the reload actor to reload and waits for the outcome.
    pub async fn reload(&self, trigger: ReloadTrigger) -> Result<ReloadOutcome, ReloadUnavailable> {
        // Loading and validating a large file takes a moment; allow more than a status call.
        self.ask_reload(
            |reply| ReloadMsg::Reload {
                trigger,
                reply: Some(reply),
            },
            CALL_TIMEOUT * 6,
        )
        .await
    }

    async fn ask_reload<T: Send + 'static>(
        &self,
        message: impl FnOnce(ractor::RpcReplyPort<T>) -> ReloadMsg,
        timeout: Duration,
    ) -> Result<T, ReloadUnavailable> {
        let reload: ActorRef<ReloadMsg> = self
            .lookup(reload::ROLE)
            .await
            .ok_or(ReloadUnavailable::NotRunning)?;
        reload
            .call(message, Some(timeout))
            .await
            .ok()
            .and_then(|r| r.success_or(()).ok())
            .ok_or(ReloadUnavailable::NoAnswer)
    }
}
