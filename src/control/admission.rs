//! Which control connections the daemon keeps when many arrive: unauthenticated ones are capped
//! and give way to newer ones, authenticated ones are capped separately and are never displaced.
//!
//! A local process that cannot read the token can still connect, as often as it likes. Each
//! such connection holds a slot for at most [`AUTH_TIMEOUT`](super::AUTH_TIMEOUT); at
//! [`MAX_PENDING_CONNECTIONS`] the oldest one still waiting to authenticate is closed for every
//! new arrival. A real client sends its token at once, so it authenticates long before a flood
//! pushes it out — and from then on it counts against [`MAX_AUTHENTICATED_CONNECTIONS`] only,
//! which a peer without the token cannot fill.
//!
//! The race between "the oldest pending connection is evicted" and "it has just authenticated"
//! is settled by one compare-and-swap on the connection's [`Ticket`]: whichever happens first
//! wins, so an authenticated connection is never closed by an eviction.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// Connections that have not authenticated yet, at most. Enough for a burst of legitimate
/// clients connecting at once; each slot is held for at most the auth timeout.
pub const MAX_PENDING_CONNECTIONS: usize = 32;

/// Authenticated connections at once, at most. `opcgw ctl` opens one per command; automation
/// may keep a few open. A client beyond this is told `unavailable` and closed; nobody else is.
pub const MAX_AUTHENTICATED_CONNECTIONS: usize = 64;

const PENDING: u8 = 0;
const AUTHENTICATED: u8 = 1;
const EVICTED: u8 = 2;

/// Both caps of a [`ConnectionTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_pending: usize,
    pub max_authenticated: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_pending: MAX_PENDING_CONNECTIONS,
            max_authenticated: MAX_AUTHENTICATED_CONNECTIONS,
        }
    }
}

/// Why an authenticated peer may not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionRefused {
    /// Every authenticated slot is taken.
    Full { limit: usize },
    /// The connection was evicted (as the oldest unauthenticated one) before its token arrived.
    Evicted,
}

impl std::fmt::Display for AdmissionRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full { limit } => write!(
                f,
                "too many control connections ({limit} authenticated connections are open); \
                 close idle clients and retry"
            ),
            Self::Evicted => f.write_str(
                "the connection was closed to make room before its token was checked; retry",
            ),
        }
    }
}

/// One connection's standing, shared by its task (which authenticates it) and the accept loop
/// (which may evict it while it is still pending).
#[derive(Debug)]
pub struct Ticket {
    state: AtomicU8,
    authenticated: Arc<AtomicUsize>,
    max_authenticated: usize,
}

impl Ticket {
    /// Takes an authenticated slot for this connection, unless all are taken or the connection
    /// was evicted meanwhile. The slot is given back when the returned guard is dropped.
    pub fn authenticate(self: &Arc<Self>) -> Result<AuthenticatedSlot, AdmissionRefused> {
        let limit = self.max_authenticated;
        let taken = self
            .authenticated
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(AdmissionRefused::Full { limit });
        }
        let slot = AuthenticatedSlot {
            count: self.authenticated.clone(),
        };
        match self.state.compare_exchange(
            PENDING,
            AUTHENTICATED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(slot),
            // Dropping `slot` gives the count back.
            Err(_) => Err(AdmissionRefused::Evicted),
        }
    }

    /// Marks the connection evicted if it is still pending; false if it authenticated first.
    fn evict(&self) -> bool {
        self.state
            .compare_exchange(PENDING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }
}

/// An authenticated connection's slot, held until the connection ends.
#[derive(Debug)]
pub struct AuthenticatedSlot {
    count: Arc<AtomicUsize>,
}

impl Drop for AuthenticatedSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The accept loop's view of its connections: the pending ones in arrival order (with a
/// handle `H` to close each), and the number of authenticated ones.
#[derive(Debug)]
pub struct ConnectionTable<H> {
    limits: ConnectionLimits,
    pending: VecDeque<(Arc<Ticket>, H)>,
    authenticated: Arc<AtomicUsize>,
}

/// What [`ConnectionTable::admit`] decided about a new connection.
#[derive(Debug)]
pub struct Admitted<H> {
    /// The new connection's ticket, for its task.
    pub ticket: Arc<Ticket>,
    /// Pending connections the caller must close to make room (oldest first).
    pub evicted: Vec<H>,
}

impl<H> ConnectionTable<H> {
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            pending: VecDeque::new(),
            authenticated: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Makes room for one more pending connection and issues its ticket. `ended` says whether
    /// a connection's task has already finished (its entry is simply forgotten). Register the
    /// connection with [`Self::track`] once its task runs.
    pub fn admit(&mut self, ended: impl Fn(&H) -> bool) -> Admitted<H> {
        // Authenticated and finished connections no longer hold a pending slot.
        self.pending
            .retain(|(ticket, handle)| ticket.is_pending() && !ended(handle));
        let mut evicted = Vec::new();
        while self.pending.len() >= self.limits.max_pending.max(1) {
            let Some((ticket, handle)) = self.pending.pop_front() else {
                break;
            };
            // Lost the race to its own authentication: it stays open, it just is not pending.
            if ticket.evict() {
                evicted.push(handle);
            }
        }
        let ticket = Arc::new(Ticket {
            state: AtomicU8::new(PENDING),
            authenticated: self.authenticated.clone(),
            max_authenticated: self.limits.max_authenticated,
        });
        Admitted { ticket, evicted }
    }

    /// Remembers a pending connection (as the newest) with the handle that closes it.
    pub fn track(&mut self, ticket: Arc<Ticket>, handle: H) {
        self.pending.push_back((ticket, handle));
    }

    /// Connections currently waiting to authenticate (as last counted by [`Self::admit`]).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Connections currently authenticated.
    pub fn authenticated(&self) -> usize {
        self.authenticated.load(Ordering::Acquire)
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }
}
