//! How the supervisor starts a child and talks to it without knowing its type.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef, SpawnErr};

use crate::tree::messages::{Common, ConfigUpdate, Peers};
use crate::tree::supervisor::SupervisorMsg;

/// What a child gets when it is (re)started: its supervisor and the live configuration
/// (the newest one, so a child restarted after a reload sees the reloaded values).
#[derive(Clone)]
pub struct ChildContext {
    pub supervisor: ActorRef<SupervisorMsg>,
    pub config: ConfigUpdate,
    /// The siblings running when this child starts (later changes arrive as
    /// `Common::PeersChanged`).
    pub peers: crate::tree::messages::Peers,
}

/// A start failure that retrying cannot cure while the process runs (another process holds a
/// resource that must be this process's alone). A child's `pre_start` returns it to make the
/// supervisor stop the tree with that reason instead of retrying forever.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unrecoverable(pub String);

/// Why a child did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// Retried with backoff (port in use, a damaged file, a lock held by this process).
    Retry(String),
    /// Stops the tree (see [`Unrecoverable`]).
    Unrecoverable(String),
}

impl From<String> for StartFailure {
    fn from(message: String) -> Self {
        Self::Retry(message)
    }
}

pub type StartFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ActorCell, StartFailure>> + Send + 'a>>;

/// Work a child leaves to finish once it has stopped (see [`with_after_stop`]).
pub type AfterStopFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A child of the supervisor: a name, a way to start it linked, and a way to send it the
/// messages every child understands.
pub trait ChildSpec: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn start(&self, ctx: ChildContext) -> StartFuture<'_>;
    fn send_common(&self, cell: &ActorCell, message: Common) -> Result<(), String>;

    /// When the tree stops: work to finish, within the time given, after this child has
    /// stopped and before the children started before it stop (`peers`: those still running).
    fn after_stop(&self, _within: Duration, _peers: &Peers) -> Option<AfterStopFuture> {
        None
    }

    /// When the tree stops: whether this child handles the messages already in its mailbox
    /// before it stops (see [`draining_at_stop`]) instead of stopping after the one it is
    /// handling.
    fn drains_at_stop(&self) -> bool {
        false
    }
}

/// `spec` with `hook` run after it stops when the tree stops, before the children started
/// before it stop: the poller's buffered samples go to storage while storage still runs.
pub fn with_after_stop<H>(spec: Arc<dyn ChildSpec>, hook: H) -> Arc<dyn ChildSpec>
where
    H: Fn(Duration, &Peers) -> AfterStopFuture + Send + Sync + 'static,
{
    Arc::new(AtStop {
        spec,
        drains: false,
        hook: Some(Box::new(hook)),
    })
}

/// `spec` handling what waits in its mailbox when the tree stops, within its share of the
/// shutdown budget, before it stops: storage stores the appends sent before the stop (a plain
/// stop is handled before queued messages, which would be dropped unanswered). Sends to it
/// fail from the stop on, its own timers included (`ActorStatus::Draining` while it drains);
/// actors it spawned are killed when it stops, without their `post_stop`.
pub fn draining_at_stop(spec: Arc<dyn ChildSpec>) -> Arc<dyn ChildSpec> {
    Arc::new(AtStop {
        spec,
        drains: true,
        hook: None,
    })
}

type AfterStopHook = dyn Fn(Duration, &Peers) -> AfterStopFuture + Send + Sync;

/// `spec` with what it does when the tree stops added to: a drain of its mailbox, work after
/// its stop (else what `spec` itself does).
struct AtStop {
    spec: Arc<dyn ChildSpec>,
    drains: bool,
    hook: Option<Box<AfterStopHook>>,
}

impl ChildSpec for AtStop {
    fn name(&self) -> &str {
        self.spec.name()
    }

    fn start(&self, ctx: ChildContext) -> StartFuture<'_> {
        self.spec.start(ctx)
    }

    fn send_common(&self, cell: &ActorCell, message: Common) -> Result<(), String> {
        self.spec.send_common(cell, message)
    }

    fn after_stop(&self, within: Duration, peers: &Peers) -> Option<AfterStopFuture> {
        match &self.hook {
            Some(hook) => Some(hook(within, peers)),
            None => self.spec.after_stop(within, peers),
        }
    }

    fn drains_at_stop(&self) -> bool {
        self.drains || self.spec.drains_at_stop()
    }
}

/// A [`ChildSpec`] for any actor whose messages include [`Common`].
pub struct ActorChild<A, F> {
    name: String,
    make: F,
    _actor: PhantomData<fn() -> A>,
}

/// A child named `name`, built by `make` from the start context at every (re)start.
pub fn actor_child<A, F>(name: impl Into<String>, make: F) -> Arc<dyn ChildSpec>
where
    A: Actor,
    A::Msg: From<Common>,
    F: Fn(&ChildContext) -> (A, A::Arguments) + Send + Sync + 'static,
{
    Arc::new(ActorChild {
        name: name.into(),
        make,
        _actor: PhantomData,
    })
}

impl<A, F> ChildSpec for ActorChild<A, F>
where
    A: Actor,
    A::Msg: From<Common>,
    F: Fn(&ChildContext) -> (A, A::Arguments) + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&self, ctx: ChildContext) -> StartFuture<'_> {
        let (actor, args) = (self.make)(&ctx);
        Box::pin(async move {
            // Unnamed: ractor names are process-global, and a restarted child must never
            // collide with the registration of the instance it replaces.
            match A::spawn_linked(None, actor, args, ctx.supervisor.get_cell()).await {
                Ok((actor_ref, _join)) => Ok(actor_ref.get_cell()),
                Err(SpawnErr::StartupFailed(err)) if err.is::<Unrecoverable>() => {
                    Err(StartFailure::Unrecoverable(err.to_string()))
                }
                Err(SpawnErr::StartupFailed(err)) => Err(StartFailure::Retry(err.to_string())),
                Err(other) => Err(StartFailure::Retry(other.to_string())),
            }
        })
    }

    fn send_common(&self, cell: &ActorCell, message: Common) -> Result<(), String> {
        cell.send_message::<A::Msg>(A::Msg::from(message))
            .map_err(|e| e.to_string())
    }
}
