//! The root supervisor: starts children in order, restarts them one-for-one with exponential
//! backoff, escalates when a child restarts too often, and stops them in reverse order.
//!
//! ractor provides linking and supervision events but no restart policy (its default
//! `handle_supervisor_evt` stops the parent), so the policy lives here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opcgw::security::sanitize_for_log;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
// tokio's clock, not std's: restart delays and healthy runs follow a paused test clock.
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::tree::backoff::{RestartWindow, SupervisorPolicy};
use crate::tree::child::{ChildContext, ChildSpec, StartFailure};
use crate::tree::messages::{Common, ConfigUpdate, Peers};

/// What work left after a child's stop is not given of the time it may take: it ends, and
/// reports how, before it would be cut off.
const AFTER_STOP_MARGIN: Duration = Duration::from_millis(50);

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
    /// [`Unrecoverable`](crate::tree::child::Unrecoverable)); `error` says why.
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
    /// Told when every child has had its first start attempt (or the tree stopped first).
    pub started: Option<oneshot::Sender<()>>,
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
    /// A start attempt ended (it runs in its own task, so the supervisor keeps answering
    /// while a child starts); ignored, and a started instance stopped, if `generation` is stale.
    StartDone {
        index: usize,
        generation: u64,
        result: Result<ActorCell, StartFailure>,
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
    /// The start attempt in flight; yields the started instance, if any.
    pending_start: Option<JoinHandle<Option<ActorCell>>>,
}

pub struct SupervisorState {
    children: Vec<ChildSlot>,
    policy: SupervisorPolicy,
    config: ConfigUpdate,
    exit: watch::Sender<Option<TreeExit>>,
    faults: Vec<FaultPlan>,
    /// Where this tree's storage actor publishes its open database for reads.
    reads: opcgw::storage::ReadSlot,
    stopping: bool,
    /// The next child of the first start sequence (children start one after the other, in
    /// order); `None` once every child has had its first attempt.
    first_start_next: Option<usize>,
    started: Option<oneshot::Sender<()>>,
    /// Exits of instances whose start the supervisor has not heard of yet: a supervision event
    /// may overtake the start task's `StartDone`. Kept only while a start is in flight.
    early_exits: HashMap<ActorId, String>,
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
        let restarts = &opcgw::metrics::metrics().actor_restarts;
        let children = args
            .children
            .into_iter()
            .map(|spec| ChildSlot {
                spec: {
                    // Each actor's restart counter exists from the start, at 0.
                    drop(restarts.get_or_create(&[("actor", spec.name().to_string())]));
                    spec
                },
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
                pending_start: None,
            })
            .collect();
        let mut state = SupervisorState {
            children,
            policy: args.policy,
            config: args.config,
            exit: args.exit,
            faults: args.faults,
            reads: opcgw::storage::ReadSlot::new(),
            stopping: false,
            first_start_next: Some(0),
            started: args.started,
            early_exits: HashMap::new(),
        };
        // Start order matters (storage before its clients): each child's first start begins
        // when the previous one's ended; a child that cannot start is retried in the
        // background and does not hold back its siblings.
        state.continue_first_start(&myself);
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
                    state.start_child(&myself, index);
                }
            }
            SupervisorMsg::StartDone {
                index,
                generation,
                result,
            } => {
                state.start_done(&myself, index, generation, result).await;
                state.continue_first_start(&myself);
                if !state
                    .children
                    .iter()
                    .any(|c| c.state == ChildState::Starting)
                {
                    state.early_exits.clear();
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
    /// Starts the children of the first start sequence, in order, each once the previous
    /// one's first attempt has ended; tells `started` when the sequence is over.
    fn continue_first_start(&mut self, myself: &ActorRef<SupervisorMsg>) {
        while let Some(index) = self.first_start_next {
            if index > 0 && self.children[index - 1].pending_start.is_some() {
                return; // the previous child is still starting
            }
            // An unrecoverable start failure stops the tree: start nothing after it.
            if self.stopping || index >= self.children.len() {
                self.first_start_next = None;
                if let Some(started) = self.started.take() {
                    let _ = started.send(());
                }
                return;
            }
            self.first_start_next = Some(index + 1);
            self.start_child(myself, index);
        }
    }

    /// Begins a start attempt in its own task; its end arrives as `StartDone`.
    fn start_child(&mut self, myself: &ActorRef<SupervisorMsg>, index: usize) {
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
        let generation = slot.generation;
        let spec = slot.spec.clone();
        let supervisor = myself.clone();
        slot.pending_start = Some(tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, spec.start(ctx)).await {
                Ok(result) => result,
                Err(_) => Err(StartFailure::Retry(format!(
                    "did not start within {} ms",
                    timeout.as_millis()
                ))),
            };
            let cell = result.as_ref().ok().cloned();
            let done = SupervisorMsg::StartDone {
                index,
                generation,
                result,
            };
            if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::StartDone {
                result: Ok(orphan),
                ..
            })) = supervisor.cast(done)
            {
                // The supervisor stopped meanwhile: no child outlives it.
                orphan.stop(Some("supervisor stopped".into()));
            }
            cell
        }));
    }

    /// Takes the end of a start attempt: the child runs, waits for a retry, or stops the tree.
    async fn start_done(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        index: usize,
        generation: u64,
        result: Result<ActorCell, StartFailure>,
    ) {
        let current = self.children.get(index).map(|c| (c.generation, c.state));
        if self.stopping || current != Some((generation, ChildState::Starting)) {
            if let Ok(orphan) = result {
                orphan.stop(Some("superseded".into()));
            }
            return;
        }
        let slot = &mut self.children[index];
        slot.pending_start = None;
        let name = slot.spec.name().to_string();
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
                let id = cell.get_id();
                self.schedule_faults(&name, index, cell);
                self.publish_peers();
                if let Some(error) = self.early_exits.remove(&id) {
                    self.child_exited(myself, id, error).await;
                }
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
        let delay = backoff.random_delay(slot.attempt);
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
            // An instance already replaced, not ours, or one whose `StartDone` is still on its
            // way (kept for it).
            if self
                .children
                .iter()
                .any(|c| c.state == ChildState::Starting)
            {
                self.early_exits.insert(id, error);
            }
            return;
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
        opcgw::metrics::metrics()
            .actor_restarts
            .get_or_create(&[("actor", name.clone())])
            .inc();
        if slot
            .started_at
            .is_some_and(|t| now.duration_since(t) >= policy.reset_after)
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
        Peers::from_running(
            self.children
                .iter()
                .filter(|c| c.state == ChildState::Running)
                .filter_map(|c| Some((c.spec.name(), c.cell.clone()?))),
            &self.reads,
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

    /// Stops every running child, last started first, each followed by the work it leaves for
    /// after its stop (the poller's: its buffered samples to storage), within the shutdown
    /// budget: each child gets an equal share of what is left of it. A child that drains at
    /// stop (storage) first handles what waits in its mailbox.
    async fn stop_all(&mut self, reason: &str) {
        if self.stopping
            && self
                .children
                .iter()
                .all(|c| c.cell.is_none() && c.pending_start.is_none())
        {
            return;
        }
        self.stopping = true;
        let deadline = Instant::now() + self.policy.shutdown_timeout;
        let count = self.children.len();
        for (done, index) in (0..count).rev().enumerate() {
            let share = SupervisorPolicy::stop_share(
                deadline.saturating_duration_since(Instant::now()),
                count - done,
            );
            let share_ends = Instant::now() + share;
            let slot = &mut self.children[index];
            slot.state = ChildState::Stopped;
            slot.next_retry = None;
            // A start in flight: let it end (bounded), so the instance it starts is stopped
            // here rather than left running.
            let starting = match slot.pending_start.take() {
                Some(task) => tokio::time::timeout(share, task)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten(),
                None => None,
            };
            let spec = slot.spec.clone();
            let name = spec.name();
            if let Some(cell) = slot.cell.take().or(starting) {
                let timeout = share_ends.saturating_duration_since(Instant::now());
                info!(event = "actor_stopping", actor = name);
                let stopped = if spec.drains_at_stop() {
                    cell.drain_and_wait(Some(timeout)).await.is_ok()
                } else {
                    cell.stop_and_wait(Some(reason.to_string()), Some(timeout))
                        .await
                        .is_ok()
                };
                if !stopped {
                    warn!(
                        event = "actor_stop_timeout",
                        actor = name,
                        timeout_ms = timeout.as_millis() as u64
                    );
                    let _ = cell.kill_and_wait(Some(share)).await;
                }
                info!(event = "actor_stopped", actor = name);
            }
            // Whether or not an instance was running: what it left (a buffer outlives it),
            // with the siblings still running, those that were restarting included. The work
            // is given a little less than what is left of the share, so that it ends (and says
            // how it ended) before it is cut off.
            self.settle_starts_before(index, share_ends).await;
            let within = share_ends.saturating_duration_since(Instant::now());
            if let Some(work) = spec.after_stop(
                within.saturating_sub(AFTER_STOP_MARGIN),
                &self.running_peers(),
            ) {
                if tokio::time::timeout(within, work).await.is_err() {
                    warn!(
                        event = "actor_stop_timeout",
                        actor = name,
                        timeout_ms = within.as_millis() as u64,
                        "the work left after its stop did not end in time"
                    );
                }
            }
        }
    }

    /// Lets the starts in flight of the children before `index` end (until `until` at most),
    /// so that they count as running: the work a child leaves after its stop (the poller's
    /// buffer, for storage) then finds a sibling that was restarting when the stop came, and
    /// the sibling's own turn stops the instance it started.
    async fn settle_starts_before(&mut self, index: usize, until: Instant) {
        for slot in &mut self.children[..index] {
            let Some(task) = slot.pending_start.as_mut() else {
                continue;
            };
            let left = until.saturating_duration_since(Instant::now());
            let Ok(started) = tokio::time::timeout(left, task).await else {
                return; // out of time: the work runs with the siblings there are
            };
            slot.pending_start = None;
            if let Ok(Some(cell)) = started {
                slot.cell = Some(cell);
                slot.state = ChildState::Running;
            }
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
