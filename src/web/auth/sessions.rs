//! Console sessions: a 256-bit random token in the `opcgw_session` cookie, of which only the
//! SHA-256 digest is kept here, with a per-session CSRF token, an idle and an absolute expiry
//! (tokio's clock, so tests run on a paused clock), revocation at sign-out and a sweep of
//! expired entries. The table is created once by the web actor and shared by every router it
//! builds, so a restart of the web actor signs nobody out.
//!
//! Each session owns a cancellation token: sign-out, expiry and eviction cancel it, which ends
//! that session's event streams at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::model::Timestamp;
use crate::web::auth::audit::{AuditRing, WEB_SESSION_EXPIRED};

/// The cookie that carries the session token.
pub const SESSION_COOKIE: &str = "opcgw_session";
/// Sessions kept at most; signing in beyond it ends the least recently used one (only people
/// who know the password can create sessions, so this bounds memory, not an attack).
pub const MAX_SESSIONS: usize = 1024;

type TokenDigest = [u8; 32];

#[derive(Debug)]
struct Entry {
    user: String,
    csrf_token: String,
    source: Option<IpAddr>,
    created: Instant,
    last_used: Instant,
    expires_at: Timestamp,
    closed: CancellationToken,
}

/// A fresh session: `token` goes into the cookie and is not kept anywhere.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// What a request learns about its valid session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user: String,
    pub csrf_token: String,
    /// Wall-clock time of the absolute expiry.
    pub expires_at: Timestamp,
    /// Cancelled when the session ends (sign-out, expiry, eviction).
    pub closed: CancellationToken,
    digest: TokenDigest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Idle,
    Absolute,
}

impl Expiry {
    fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Absolute => "absolute",
        }
    }
}

#[derive(Debug)]
pub struct SessionTable {
    sessions: Mutex<HashMap<TokenDigest, Entry>>,
    idle: Duration,
    max_age: Duration,
    capacity: usize,
    audit: Arc<AuditRing>,
}

impl SessionTable {
    pub fn new(idle: Duration, max_age: Duration, audit: Arc<AuditRing>) -> Self {
        Self::with_capacity(idle, max_age, MAX_SESSIONS, audit)
    }

    pub fn with_capacity(
        idle: Duration,
        max_age: Duration,
        capacity: usize,
        audit: Arc<AuditRing>,
    ) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            idle,
            max_age,
            capacity: capacity.max(1),
            audit,
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }

    /// Starts a session for `user` (already authenticated) with new random tokens.
    pub fn create(&self, user: &str, source: Option<IpAddr>) -> NewSession {
        self.sweep();
        let token = random_token();
        let csrf_token = random_token();
        let now = Instant::now();
        let expires_at = Timestamp::now().saturating_add(self.max_age);
        let mut sessions = self.lock();
        if sessions.len() >= self.capacity {
            let stalest = sessions
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k);
            if let Some(entry) = stalest.and_then(|k| sessions.remove(&k)) {
                entry.closed.cancel();
            }
        }
        sessions.insert(
            digest(&token),
            Entry {
                user: user.to_string(),
                csrf_token: csrf_token.clone(),
                source,
                created: now,
                last_used: now,
                expires_at,
                closed: CancellationToken::new(),
            },
        );
        NewSession {
            token,
            csrf_token,
            expires_at,
        }
    }

    /// The session of `token` if it is valid (and marks it used now); an expired one is
    /// removed, its streams closed and `web_session_expired` recorded.
    pub fn authenticate(&self, token: &str) -> Option<SessionInfo> {
        let key = digest(token);
        let now = Instant::now();
        let mut sessions = self.lock();
        let entry = sessions.get_mut(&key)?;
        if let Some(why) = self.expiry(entry, now) {
            if let Some(entry) = sessions.remove(&key) {
                drop(sessions);
                self.expired(entry, why);
            }
            return None;
        }
        entry.last_used = now;
        Some(SessionInfo {
            user: entry.user.clone(),
            csrf_token: entry.csrf_token.clone(),
            expires_at: entry.expires_at,
            closed: entry.closed.clone(),
            digest: key,
        })
    }

    /// Whether `session` is still valid, without counting as a use (event streams ask this on
    /// every heartbeat so that an idle session ends even while a page stays open).
    pub fn is_live(&self, session: &SessionInfo) -> bool {
        let now = Instant::now();
        let mut sessions = self.lock();
        let Some(entry) = sessions.get(&session.digest) else {
            return false;
        };
        match self.expiry(entry, now) {
            None => true,
            Some(why) => {
                if let Some(entry) = sessions.remove(&session.digest) {
                    drop(sessions);
                    self.expired(entry, why);
                }
                false
            }
        }
    }

    /// Ends the session of `token` (sign-out); returns its user when there was one.
    pub fn revoke(&self, token: &str) -> Option<String> {
        let entry = self.lock().remove(&digest(token))?;
        entry.closed.cancel();
        Some(entry.user)
    }

    /// Removes every expired session; returns how many. The web actor may call it on a timer;
    /// sign-ins call it too, so the table never grows with dead entries.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut sessions = self.lock();
        let dead: Vec<(TokenDigest, Expiry)> = sessions
            .iter()
            .filter_map(|(k, e)| self.expiry(e, now).map(|why| (*k, why)))
            .collect();
        let removed: Vec<(Entry, Expiry)> = dead
            .into_iter()
            .filter_map(|(k, why)| sessions.remove(&k).map(|e| (e, why)))
            .collect();
        drop(sessions);
        let count = removed.len();
        for (entry, why) in removed {
            self.expired(entry, why);
        }
        count
    }

    /// Sessions currently kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the session ends at the latest without further use (the event streams wake then).
    pub fn deadline(&self, session: &SessionInfo) -> Option<Instant> {
        let sessions = self.lock();
        let entry = sessions.get(&session.digest)?;
        Some((entry.last_used + self.idle).min(entry.created + self.max_age))
    }

    fn expiry(&self, entry: &Entry, now: Instant) -> Option<Expiry> {
        if now.saturating_duration_since(entry.created) >= self.max_age {
            Some(Expiry::Absolute)
        } else if now.saturating_duration_since(entry.last_used) >= self.idle {
            Some(Expiry::Idle)
        } else {
            None
        }
    }

    fn expired(&self, entry: Entry, why: Expiry) {
        entry.closed.cancel();
        self.audit
            .session_event(WEB_SESSION_EXPIRED, entry.source, &entry.user, why.as_str());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenDigest, Entry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 256 random bits, URL-safe base64 without padding (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}
