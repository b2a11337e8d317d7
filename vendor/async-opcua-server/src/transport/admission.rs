//! opcgw patch: caps on open TCP connections, in total and per source address.
//!
//! The published server caps *sessions* only. Every accepted socket costs a file descriptor
//! until its Hello timeout, so a peer that opens idle connections faster than they time out
//! exhausts the process's descriptors and the accept loop fails for everyone. Admission is
//! decided right after `accept()`: a refused socket is closed at once, so it neither sits in
//! the kernel backlog nor holds a descriptor.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::Arc,
};

use parking_lot::Mutex;

/// Caps on open TCP connections (before and after a session exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections in total; `0` means no cap (the published behaviour).
    pub max_connections: usize,
    /// Open connections from one source (an IPv4 address, or an IPv6 /64: one host usually
    /// owns a whole /64); `0` means no per-source cap.
    pub max_connections_per_source: usize,
}

impl ConnectionLimits {
    /// No cap at all, as in the published crate.
    pub const UNLIMITED: Self = Self {
        max_connections: 0,
        max_connections_per_source: 0,
    };
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::UNLIMITED
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// `max_connections` connections are open.
    TotalLimit,
    /// `max_connections_per_source` connections from this source are open.
    SourceLimit,
}

impl Refusal {
    /// The stable `reason` value of the `opcua_connection_refused` log event.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::TotalLimit => "tcp_connection_limit",
            Refusal::SourceLimit => "per_source_connection_limit",
        }
    }
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// Counts open connections and admits or refuses new ones.
#[derive(Clone, Default)]
pub(crate) struct ConnectionAdmission {
    limits: ConnectionLimits,
    open: Arc<Mutex<OpenConnections>>,
}

impl ConnectionAdmission {
    pub(crate) fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            open: Arc::default(),
        }
    }

    pub(crate) fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Admits a connection from `peer`; the returned slot frees itself when dropped (the
    /// connection task owns it, so a panicking task frees it too).
    pub(crate) fn admit(&self, peer: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let source = source_of(peer);
        let mut open = self.open.lock();
        if self.limits.max_connections > 0 && open.total >= self.limits.max_connections {
            return Err(Refusal::TotalLimit);
        }
        let from_source = open.per_source.get(&source).copied().unwrap_or(0);
        if self.limits.max_connections_per_source > 0
            && from_source >= self.limits.max_connections_per_source
        {
            return Err(Refusal::SourceLimit);
        }
        open.total += 1;
        open.per_source.insert(source, from_source + 1);
        Ok(ConnectionSlot {
            source,
            open: self.open.clone(),
        })
    }

    /// Connections open now.
    pub(crate) fn open_connections(&self) -> usize {
        self.open.lock().total
    }
}

/// One admitted connection; dropping it frees the slot.
pub(crate) struct ConnectionSlot {
    source: IpAddr,
    open: Arc<Mutex<OpenConnections>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_source.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_source.remove(&self.source);
            }
        }
    }
}

/// The unit a per-source cap counts: an IPv4 address (also when it arrives IPv4-mapped on an
/// IPv6 socket), or the /64 network of an IPv6 address.
fn source_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_cannot_take_every_slot() {
        let admission = ConnectionAdmission::new(ConnectionLimits {
            max_connections: 3,
            max_connections_per_source: 2,
        });
        let a1 = admission.admit(ip("10.0.0.1")).unwrap();
        let _a2 = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).err(),
            Some(Refusal::SourceLimit)
        );
        let _b1 = admission.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.3")).err(),
            Some(Refusal::TotalLimit)
        );
        drop(a1);
        assert!(admission.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_the_ipv4_address() {
        assert_eq!(
            source_of(ip("2001:db8::1")),
            source_of(ip("2001:db8::ffff:2"))
        );
        assert_ne!(
            source_of(ip("2001:db8::1")),
            source_of(ip("2001:db8:0:1::1"))
        );
        assert_eq!(source_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }
}
