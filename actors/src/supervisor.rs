//! The root supervisor: starts children in order, restarts them one-for-one with exponential
//! backoff, escalates when a child restarts too often, and stops them in reverse order.
//!
//! ractor provides linking and supervision events but no restart policy (its default
//! `handle_supervisor_evt` stops the parent), so the policy lives here.

use std::sync::Arc;
use std::time::Duration;

use opcgw::security::sanitize_for_log;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde::Serialize;
use tokio::sync::watch;
// tokio's clock, not std's: restart delays and healthy runs follow a paused test clock.
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::backoff::{RestartWindow, SupervisorPolicy};
use crate::child::{ChildContext, ChildSpec, StartFailure};
use crate::messages::{Common, ConfigUpdate, Peers};

/// Longest error text kept per child (it reaches status pages and logs).
const MAX_ERROR_CHARS: usize = 300;

/// How the tree ended, for the process exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeExit {
    /// Stopped on request (SIGTERM, SIGINT).
    Clean,
    /// A child restarted more often than the intensity policy allows.
    IntensityExceeded { child: String, restarts: usize },
    /// A child could not start for a reason retrying cannot cure (see
    /// [`Unrecoverable`](crate::child::Unrecoverable)); `error` says why.
    StartUnrecoverable { child: String, error: String },
}

/// A planned panic for crash-isolation tests (debug builds): `child` panics `after` each start.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub child: String,
    pub after: Duration,
}

pub struct SupervisorArgs {
    /// In start order.
    pub children: Vec<Arc<dyn ChildSpec>>,
    pub policy: SupervisorPolicy,
    pub config: ConfigUpdate,
    pub exit: watch::Sender<Option<TreeExit>>,
    pub faults: Vec<FaultPlan>,
}

pub enum SupervisorMsg {
    Status(RpcReplyPort<TreeStatus>),
    /// Stop every child in reverse start order, then the supervisor.
    Shutdown(RpcReplyPort<()>),
    /// The current instance of a child, if it is running.
    Lookup(String, RpcReplyPort<Option<ActorCell>>),
    /// A validated configuration to hand to every child (and to children started later).
    Broadcast(ConfigUpdate),
    /// A backoff delay ended: start the child again (ignored if `generation` is stale).
    RetryStart {
        index: usize,
        generation: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Starting,
    Running,
    /// Waiting for its next start attempt.
    Backoff,
    Stopped,
}

/// One child's health, as reported to status pages.
#[derive(Debug, Clone, Serialize)]
pub struct ChildStatus {
    pub name: String,
    pub state: ChildState,
    /// Restarts after the child failed while running.
    pub restarts: u32,
    /// Start attempts that failed (port taken, database locked...).
    pub start_failures: u32,
    pub last_error: Option<String>,
    pub next_retry_in_ms: Option<u64>,
    pub up_for_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TreeStatus {
    pub children: Vec<ChildStatus>,
    pub config_generation: u64,
}

impl TreeStatus {
    pub fn child(&self, name: &str) -> Option<&ChildStatus> {
        self.children.iter().find(|c| c.name == name)
    }
}

struct ChildSlot {
    spec: Arc<dyn ChildSpec>,
    cell: Option<ActorCell>,
    state: ChildState,
    restarts: u32,
    start_failures: u32,
    last_error: Option<String>,
    started_at: Option<Instant>,
    next_retry: Option<Instant>,
    /// Consecutive failures since the child last ran healthy; the backoff exponent.
    attempt: u32,
    /// Bumped on every start attempt, so a stale retry timer does nothing.
    generation: u64,
    window: RestartWindow,
}

pub struct SupervisorState {
    children: Vec<ChildSlot>,
    policy: SupervisorPolicy,
    config: ConfigUpdate,
    exit: watch::Sender<Option<TreeExit>>,
    faults: Vec<FaultPlan>,
    stopping: bool,
}

pub struct Supervisor;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let children = args
            .children
            .into_iter()
            .map(|spec| ChildSlot {
                spec,
                cell: None,
                state: ChildState::Starting,
                restarts: 0,
                start_failures: 0,
                last_error: None,
                started_at: None,
                next_retry: None,
                attempt: 0,
                generation: 0,
                window: RestartWindow::default(),
            })
            .collect();
        let mut state = SupervisorState {
            children,
            policy: args.policy,
            config: args.config,
            exit: args.exit,
            faults: args.faults,
            stopping: false,
        };
        // Start order matters (storage before its clients); a child that cannot start is
        // retried in the background and does not hold back its siblings.
        for index in 0..state.children.len() {
            // An unrecoverable start failure stops the tree: start nothing after it.
            if state.stopping {
                break;
            }
            state.start_child(&myself, index).await;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            SupervisorMsg::Shutdown(reply) => {
                state.stop_all("shutdown").await;
                let _ = state.exit.send(Some(TreeExit::Clean));
                let _ = reply.send(());
                myself.stop(Some("shutdown".into()));
            }
            SupervisorMsg::Lookup(name, reply) => {
                let cell = state
                    .children
                    .iter()
                    .find(|c| c.spec.name() == name && c.state == ChildState::Running)
                    .and_then(|c| c.cell.clone());
                let _ = reply.send(cell);
            }
            SupervisorMsg::Broadcast(update) => {
                state.config = update.clone();
                for child in state
                    .children
                    .iter()
                    .filter(|c| c.state == ChildState::Running)
                {
                    if let Some(cell) = &child.cell {
                        if let Err(err) = child
                            .spec
                            .send_common(cell, Common::ConfigChanged(update.clone()))
                        {
                            warn!(
                                event = "config_broadcast_failed",
                                actor = child.spec.name(),
                                error = err.as_str()
                            );
                        }
                    }
                }
            }
            SupervisorMsg::RetryStart { index, generation } => {
                let current = state.children.get(index).map(|c| (c.generation, c.state));
                if !state.stopping && current == Some((generation, ChildState::Backoff)) {
                    state.start_child(&myself, index).await;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (id, error) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell.get_id(), format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell.get_id(),
                format!(
                    "stopped unexpectedly: {}",
                    reason.unwrap_or_else(|| "no reason given".into())
                ),
            ),
            _ => return Ok(()),
        };
        state.child_exited(&myself, id, error).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Whatever stopped the supervisor, no child outlives it.
        state.stop_all("supervisor stopped").await;
        info!(event = "supervisor_stopped");
        Ok(())
    }
}

impl SupervisorState {
    async fn start_child(&mut self, myself: &ActorRef<SupervisorMsg>, index: usize) {
        let ctx = ChildContext {
            supervisor: myself.clone(),
            config: self.config.clone(),
            peers: self.running_peers(),
        };
        let timeout = self.policy.start_timeout;
        let slot = &mut self.children[index];
        slot.generation += 1;
        slot.state = ChildState::Starting;
        slot.next_retry = None;
        let name = slot.spec.name().to_string();
        let result = match tokio::time::timeout(timeout, slot.spec.start(ctx)).await {
            Ok(result) => result,
            Err(_) => Err(StartFailure::Retry(format!(
                "did not start within {} ms",
                timeout.as_millis()
            ))),
        };
        match result {
            Ok(cell) => {
                info!(
                    event = "actor_started",
                    actor = name.as_str(),
                    restarts = slot.restarts,
                    start_failures = slot.start_failures
                );
                slot.cell = Some(cell.clone());
                slot.state = ChildState::Running;
                slot.started_at = Some(Instant::now());
                self.schedule_faults(&name, index, cell);
                self.publish_peers();
            }
            Err(StartFailure::Unrecoverable(err)) => {
                let err = sanitize_for_log(&err, MAX_ERROR_CHARS);
                slot.start_failures += 1;
                slot.last_error = Some(err.clone());
                slot.state = ChildState::Stopped;
                slot.cell = None;
                error!(
                    event = "actor_start_unrecoverable",
                    actor = name.as_str(),
                    error = err.as_str(),
                    "stopping the gateway: retrying cannot help; the process exits non-zero"
                );
                self.stop_all("a child cannot start").await;
                let _ = self.exit.send(Some(TreeExit::StartUnrecoverable {
                    child: name,
                    error: err,
                }));
                myself.stop(Some("a child cannot start".into()));
            }
            Err(StartFailure::Retry(err)) => {
                let err = sanitize_for_log(&err, MAX_ERROR_CHARS);
                slot.start_failures += 1;
                let delay = self.schedule_retry(myself, index);
                let slot = &mut self.children[index];
                warn!(
                    event = "actor_start_failed",
                    actor = name.as_str(),
                    error = err.as_str(),
                    attempt = slot.start_failures,
                    retry_in_ms = delay.as_millis() as u64
                );
                slot.last_error = Some(err);
            }
        }
    }

    /// Puts the child in backoff and arms the timer of its next start; returns the delay.
    fn schedule_retry(&mut self, myself: &ActorRef<SupervisorMsg>, index: usize) -> Duration {
        let backoff = self.policy.backoff;
        let slot = &mut self.children[index];
        let delay = backoff.delay(slot.attempt, rand::random::<f64>());
        slot.attempt = slot.attempt.saturating_add(1);
        slot.state = ChildState::Backoff;
        slot.cell = None;
        slot.started_at = None;
        slot.next_retry = Some(Instant::now() + delay);
        let generation = slot.generation;
        myself.send_after(delay, move || SupervisorMsg::RetryStart {
            index,
            generation,
        });
        delay
    }

    async fn child_exited(&mut self, myself: &ActorRef<SupervisorMsg>, id: ActorId, error: String) {
        let Some(index) = self
            .children
            .iter()
            .position(|c| c.cell.as_ref().map(ActorCell::get_id) == Some(id))
        else {
            return; // an instance already replaced, or not ours
        };
        if self.stopping {
            self.children[index].state = ChildState::Stopped;
            return;
        }
        let now = Instant::now();
        let policy = self.policy;
        let slot = &mut self.children[index];
        let name = slot.spec.name().to_string();
        let error = sanitize_for_log(&error, MAX_ERROR_CHARS);
        warn!(
            event = "actor_failed",
            actor = name.as_str(),
            error = error.as_str()
        );
        slot.last_error = Some(error);
        slot.restarts += 1;
        if slot
            .started_at
            .is_some_and(|t| now.duration_since(t) >= policy.backoff.reset_after)
        {
            slot.attempt = 0;
        }
        if slot.window.record(now.into_std(), &policy.intensity) {
            let restarts = slot.window.len();
            error!(
                event = "restart_intensity_exceeded",
                actor = name.as_str(),
                restarts,
                window_seconds = policy.intensity.window.as_secs(),
                "stopping the gateway: the process exits non-zero so its service manager can restart it"
            );
            slot.cell = None;
            slot.state = ChildState::Stopped;
            self.stop_all("restart intensity exceeded").await;
            let _ = self.exit.send(Some(TreeExit::IntensityExceeded {
                child: name,
                restarts,
            }));
            myself.stop(Some("restart intensity exceeded".into()));
            return;
        }
        let delay = self.schedule_retry(myself, index);
        self.publish_peers();
        let slot = &self.children[index];
        info!(
            event = "actor_restart_scheduled",
            actor = name.as_str(),
            restarts = slot.restarts,
            delay_ms = delay.as_millis() as u64
        );
    }

    /// Tells every running child where its running siblings are.
    fn running_peers(&self) -> Peers {
        Peers::new(
            self.children
                .iter()
                .filter(|c| c.state == ChildState::Running)
                .filter_map(|c| Some((c.spec.name().to_string(), c.cell.clone()?)))
                .collect(),
        )
    }

    fn publish_peers(&self) {
        let peers = self.running_peers();
        let running = self
            .children
            .iter()
            .filter(|c| c.state == ChildState::Running);
        for child in running {
            if let Some(cell) = &child.cell {
                let _ = child
                    .spec
                    .send_common(cell, Common::PeersChanged(peers.clone()));
            }
        }
    }

    /// Stops every running child, last started first.
    async fn stop_all(&mut self, reason: &str) {
        if self.stopping && self.children.iter().all(|c| c.cell.is_none()) {
            return;
        }
        self.stopping = true;
        let timeout = self.policy.stop_timeout;
        for slot in self.children.iter_mut().rev() {
            slot.state = ChildState::Stopped;
            slot.next_retry = None;
            let Some(cell) = slot.cell.take() else {
                continue;
            };
            let name = slot.spec.name();
            info!(event = "actor_stopping", actor = name);
            if cell
                .stop_and_wait(Some(reason.to_string()), Some(timeout))
                .await
                .is_err()
            {
                warn!(
                    event = "actor_stop_timeout",
                    actor = name,
                    timeout_ms = timeout.as_millis() as u64
                );
                let _ = cell.kill_and_wait(Some(timeout)).await;
            }
            info!(event = "actor_stopped", actor = name);
        }
    }

    fn status(&self) -> TreeStatus {
        let now = Instant::now();
        TreeStatus {
            children: self
                .children
                .iter()
                .map(|c| ChildStatus {
                    name: c.spec.name().to_string(),
                    state: c.state,
                    restarts: c.restarts,
                    start_failures: c.start_failures,
                    last_error: c.last_error.clone(),
                    next_retry_in_ms: c
                        .next_retry
                        .map(|t| t.saturating_duration_since(now).as_millis() as u64),
                    up_for_ms: c
                        .started_at
                        .map(|t| now.duration_since(t).as_millis() as u64),
                })
                .collect(),
            config_generation: self.config.generation,
        }
    }

    #[cfg(debug_assertions)]
    fn schedule_faults(&self, name: &str, index: usize, cell: ActorCell) {
        for fault in self.faults.iter().filter(|f| f.child == name) {
            let spec = self.children[index].spec.clone();
            let cell = cell.clone();
            let after = fault.after;
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = spec.send_common(&cell, Common::InjectPanic("fault injection".into()));
            });
        }
    }

    #[cfg(not(debug_assertions))]
    fn schedule_faults(&self, _name: &str, _index: usize, _cell: ActorCell) {
        let _ = &self.faults;
    }
}
