//! The metrics actor: serves `opcgw::metrics::http` (`/metrics`, `/healthz`, `/readyz`) on
//! `[metrics].bind_address:port` when `[metrics].enabled`, on a listener of its own so that
//! scrapes and probes work whether or not the console is enabled. The probes ask the
//! supervisor: alive when it answers, ready when every actor runs. A taken port fails the start,
//! which the supervisor retries with backoff; the other actors are not affected.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opcgw::metrics::http::{router, Health};
use opcgw::web::server::{self, ServeLimits};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::info;

use crate::tree::duty::DutyBase;
use crate::tree::gateway::TreeHandle;
use crate::tree::messages::{ConfigUpdate, MetricsMsg};
use crate::tree::supervisor::{ChildState, SupervisorMsg};
use crate::tree::task::OwnedTask;

pub const ROLE: &str = "metrics";

/// Scrapers and probes are few: a handful of connections, headers within 5 s.
const LIMITS: ServeLimits = ServeLimits {
    max_connections: 16,
    header_read_timeout: Duration::from_secs(5),
    shutdown_grace: Duration::from_secs(1),
};

pub struct MetricsActor;

pub struct MetricsArgs {
    pub config: ConfigUpdate,
    pub supervisor: ActorRef<SupervisorMsg>,
}

pub struct MetricsState {
    base: DutyBase,
    serving: Option<String>,
    _server: Option<(OwnedTask, DropGuard)>,
}

/// The probes' answers, from the supervisor's view of the tree.
struct TreeHealth {
    tree: TreeHandle,
}

#[async_trait]
impl Health for TreeHealth {
    async fn alive(&self) -> Result<(), String> {
        self.tree
            .status()
            .await
            .map(|_| ())
            .ok_or_else(|| "the supervisor does not answer".to_string())
    }

    async fn ready(&self) -> Result<(), String> {
        let status = self
            .tree
            .status()
            .await
            .ok_or_else(|| "the supervisor does not answer".to_string())?;
        let waiting: Vec<String> = status
            .children
            .iter()
            .filter(|c| c.state != ChildState::Running)
            .map(|c| match &c.last_error {
                Some(error) => format!("{}: {:?} ({error})", c.name, c.state),
                None => format!("{}: {:?}", c.name, c.state),
            })
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!("not ready: {}", waiting.join("; ")))
        }
    }
}

impl Actor for MetricsActor {
    type Msg = MetricsMsg;
    type State = MetricsState;
    type Arguments = MetricsArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<MetricsMsg>,
        args: MetricsArgs,
    ) -> Result<MetricsState, ActorProcessingErr> {
        let config = args.config.config.clone();
        let mut state = MetricsState {
            base: DutyBase::new(ROLE, args.config),
            serving: None,
            _server: None,
        };
        if !config.metrics.enabled {
            info!(event = "metrics_disabled");
            return Ok(state);
        }
        let address = (config.metrics.bind_address.as_str(), config.metrics.port);
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            format!(
                "cannot listen for metrics on {}:{}: {e} (set [metrics].port to a free port, or [metrics].enabled = false)",
                config.metrics.bind_address, config.metrics.port
            )
        })?;
        let local = listener.local_addr()?;
        let health = Arc::new(TreeHealth {
            tree: TreeHandle {
                supervisor: args.supervisor,
            },
        });
        let shutdown = CancellationToken::new();
        let task = OwnedTask::spawn({
            let shutdown = shutdown.clone();
            async move {
                let _ = server::serve(listener, router(health), LIMITS, shutdown).await;
            }
        });
        info!(
            event = "metrics_listening",
            address = %local,
            "Prometheus metrics at http://{local}/metrics, probes at /healthz and /readyz"
        );
        state.serving = Some(local.to_string());
        state._server = Some((task, shutdown.drop_guard()));
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<MetricsMsg>,
        message: MetricsMsg,
        state: &mut MetricsState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MetricsMsg::Common(common) => {
                let summary = match &state.serving {
                    Some(address) => format!("serving http://{address}/metrics"),
                    None => "disabled ([metrics].enabled = false)".to_string(),
                };
                state.base.handle_common(common, |_| summary)?;
            }
        }
        Ok(())
    }
}
