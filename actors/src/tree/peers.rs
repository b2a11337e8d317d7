//! Where a child's running siblings are, typed: `peers.storage()` is an
//! `ActorRef<StorageMsg>`, so a role can no longer be paired with the wrong message type.
//! [`Peers::from_running`] is the one place that pairs a role with its message type.
//!
//! A cast to a peer that cannot be delivered (the peer stopped between the last
//! `PeersChanged` and the cast) is logged as `peer_cast_undelivered`, once per peer per
//! [`UNDELIVERED_WINDOW`] with the number of casts lost, instead of being dropped silently.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use opcgw::storage::ReadSlot;
use ractor::{ActorCell, ActorRef, Message};
use tracing::warn;

use crate::duties::{control, opcua, poller, reload, storage, web};
use crate::tree::messages::{ControlMsg, OpcUaMsg, PollerMsg, ReloadMsg, StorageMsg, WebMsg};

/// At most one `peer_cast_undelivered` line per peer per window.
pub const UNDELIVERED_WINDOW: Duration = Duration::from_secs(10);

/// A running sibling: its role and its typed address.
#[derive(Debug)]
pub struct Peer<M> {
    role: &'static str,
    actor: ActorRef<M>,
}

// Not derived: a derive would require `M: Clone`.
impl<M> Clone for Peer<M> {
    fn clone(&self) -> Self {
        Self {
            role: self.role,
            actor: self.actor.clone(),
        }
    }
}

impl<M: Message> Peer<M> {
    fn new(role: &'static str, cell: ActorCell) -> Self {
        Self {
            role,
            actor: cell.into(),
        }
    }

    pub fn role(&self) -> &'static str {
        self.role
    }

    /// The address, for calls (a call's failure reaches its caller, who says what it means).
    pub fn actor(&self) -> &ActorRef<M> {
        &self.actor
    }

    /// Sends `message`; false (and a rate-limited warning) when the peer has stopped.
    pub fn cast(&self, message: M) -> bool {
        match self.actor.cast(message) {
            Ok(()) => true,
            Err(_) => {
                undelivered_casts().note(self.role, Instant::now());
                false
            }
        }
    }
}

/// The running instances of the supervisor's children. Sent to every child whenever one
/// (re)starts or stops, so actors address each other without shared state — with one
/// exception, `reads`: the storage actor publishes its open database there so that queries
/// read history on their own task instead of waiting in its mailbox behind writes
/// (`opcgw::storage::Reader`).
#[derive(Debug, Clone, Default)]
pub struct Peers {
    reads: ReadSlot,
    storage: Option<Peer<StorageMsg>>,
    opcua: Option<Peer<OpcUaMsg>>,
    poller: Option<Peer<PollerMsg>>,
    web: Option<Peer<WebMsg>>,
    control: Option<Peer<ControlMsg>>,
    reload: Option<Peer<ReloadMsg>>,
}

impl Peers {
    /// The typed peers among the running children `(role, cell)`; roles that are not a
    /// gateway duty (test probes) are not peers.
    pub fn from_running<'a>(
        running: impl IntoIterator<Item = (&'a str, ActorCell)>,
        reads: &ReadSlot,
    ) -> Self {
        let mut peers = Self {
            reads: reads.clone(),
            ..Self::default()
        };
        for (role, cell) in running {
            match role {
                storage::ROLE => peers.storage = Some(Peer::new(storage::ROLE, cell)),
                opcua::ROLE => peers.opcua = Some(Peer::new(opcua::ROLE, cell)),
                poller::ROLE => peers.poller = Some(Peer::new(poller::ROLE, cell)),
                web::ROLE => peers.web = Some(Peer::new(web::ROLE, cell)),
                control::ROLE => peers.control = Some(Peer::new(control::ROLE, cell)),
                reload::ROLE => peers.reload = Some(Peer::new(reload::ROLE, cell)),
                _ => {}
            }
        }
        peers
    }

    /// Where the storage actor publishes its open database for reads (one per tree).
    pub fn reads(&self) -> &ReadSlot {
        &self.reads
    }

    pub fn storage(&self) -> Option<&Peer<StorageMsg>> {
        self.storage.as_ref()
    }

    pub fn opcua(&self) -> Option<&Peer<OpcUaMsg>> {
        self.opcua.as_ref()
    }

    pub fn poller(&self) -> Option<&Peer<PollerMsg>> {
        self.poller.as_ref()
    }

    pub fn web(&self) -> Option<&Peer<WebMsg>> {
        self.web.as_ref()
    }

    pub fn control(&self) -> Option<&Peer<ControlMsg>> {
        self.control.as_ref()
    }

    pub fn reload(&self) -> Option<&Peer<ReloadMsg>> {
        self.reload.as_ref()
    }
}

/// The process-wide count of undelivered casts (one window per peer role).
fn undelivered_casts() -> &'static UndeliveredCasts {
    static COUNTS: OnceLock<UndeliveredCasts> = OnceLock::new();
    COUNTS.get_or_init(|| UndeliveredCasts::new(UNDELIVERED_WINDOW))
}

/// Counts casts that could not be delivered, per peer, and decides which are logged: the
/// first of a window, carrying the count of those the previous window did not log.
#[derive(Debug)]
pub struct UndeliveredCasts {
    window: Duration,
    windows: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    /// Undelivered casts since the last logged one, not logged yet.
    unlogged: u64,
}

impl UndeliveredCasts {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            windows: Mutex::default(),
        }
    }

    /// Records an undelivered cast to `role` at `now`; logs it when it opens a window.
    /// Returns how many undelivered casts the line written now accounts for (None: counted,
    /// not logged).
    pub fn note(&self, role: &'static str, now: Instant) -> Option<u64> {
        let count = self.count(role, now)?;
        warn!(
            event = "peer_cast_undelivered",
            peer = role,
            count,
            window_seconds = self.window.as_secs(),
            "a message to the {role} actor was lost: it stopped before the message arrived (it is restarting, or the gateway is stopping)"
        );
        Some(count)
    }

    fn count(&self, role: &'static str, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get_mut(role) {
            Some(window) if now.saturating_duration_since(window.start) < self.window => {
                window.unlogged += 1;
                None
            }
            Some(window) => {
                let count = window.unlogged + 1;
                *window = Window {
                    start: now,
                    unlogged: 0,
                };
                Some(count)
            }
            None => {
                windows.insert(
                    role,
                    Window {
                        start: now,
                        unlogged: 0,
                    },
                );
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr};

    use super::*;

    #[test]
    fn an_undelivered_cast_is_logged_once_per_window_with_the_count() {
        let counts = UndeliveredCasts::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(counts.note("poller", at(0)), Some(1), "the first is logged");
        for ms in [1, 500, 9_999] {
            assert_eq!(counts.note("poller", at(ms)), None, "counted at {ms} ms");
        }
        // Another peer has its own window.
        assert_eq!(counts.note("storage", at(2_000)), Some(1));
        // The next window's first line carries the three the last window did not log.
        assert_eq!(counts.note("poller", at(10_000)), Some(4));
        assert_eq!(counts.note("poller", at(10_001)), None);
        assert_eq!(counts.note("poller", at(25_000)), Some(2));
        assert_eq!(counts.note("poller", at(40_000)), Some(1));
    }

    struct Idle;

    impl Actor for Idle {
        type Msg = StorageMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<StorageMsg>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn each_role_gets_its_own_typed_peer_and_a_cast_to_a_stopped_one_says_so() {
        let (actor, join) = Actor::spawn(None, Idle, ())
            .await
            .expect("spawn a test actor");
        let peers = Peers::from_running(
            [
                (storage::ROLE, actor.get_cell()),
                ("probe", actor.get_cell()),
            ],
            &ReadSlot::new(),
        );
        let storage = peers.storage().expect("storage is a peer");
        assert_eq!(storage.role(), storage::ROLE);
        assert!(peers.opcua().is_none() && peers.poller().is_none());
        assert!(storage.cast(StorageMsg::PruneTick { generation: 0 }));
        actor.stop(None);
        join.await.expect("the test actor stops");
        assert!(!storage.cast(StorageMsg::PruneTick { generation: 0 }));
    }
}
