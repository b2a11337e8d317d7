//! opcgw patch: the accept loop's log lines, rate-limited (see `repeat_log`).

use std::{io, net::SocketAddr, time::Duration, time::Instant};

use tracing::warn;

use super::{
    admission::{ConnectionLimits, Refusal},
    repeat_log::{Occurrence, RepeatLimiter, REPEAT_SUMMARY_INTERVAL},
};

/// Log state of the accept loop.
pub(crate) struct AcceptLog {
    total_limit: RepeatLimiter,
    source_limit: RepeatLimiter,
    accept_failed: RepeatLimiter,
}

impl Default for AcceptLog {
    fn default() -> Self {
        Self {
            total_limit: RepeatLimiter::new(REPEAT_SUMMARY_INTERVAL),
            source_limit: RepeatLimiter::new(REPEAT_SUMMARY_INTERVAL),
            accept_failed: RepeatLimiter::new(REPEAT_SUMMARY_INTERVAL),
        }
    }
}

impl AcceptLog {
    fn limiter(&mut self, refusal: Refusal) -> &mut RepeatLimiter {
        match refusal {
            Refusal::TotalLimit => &mut self.total_limit,
            Refusal::SourceLimit => &mut self.source_limit,
        }
    }

    pub(crate) fn refused(
        &mut self,
        refusal: Refusal,
        peer: SocketAddr,
        open: usize,
        limits: ConnectionLimits,
    ) {
        if self.limiter(refusal).occurred(Instant::now()) == Occurrence::Suppressed {
            return;
        }
        let limit = match refusal {
            Refusal::TotalLimit => limits.max_connections,
            Refusal::SourceLimit => limits.max_connections_per_source,
        };
        warn!(
            event = "opcua_connection_refused",
            reason = refusal.reason(),
            peer = %peer,
            open,
            limit,
            "OPC UA connection closed at once: too many open TCP connections; repeats are summarised every {} s",
            REPEAT_SUMMARY_INTERVAL.as_secs()
        );
    }

    pub(crate) fn accept_failed(&mut self, error: &io::Error, pause: Option<Duration>) {
        if self.accept_failed.occurred(Instant::now()) == Occurrence::Suppressed {
            return;
        }
        warn!(
            event = "opcua_accept_failed",
            error = %error,
            retry_in_ms = pause.map(|p| p.as_millis() as u64).unwrap_or(0),
            "cannot accept an OPC UA connection (for \"Too many open files\": raise LimitNOFILE or lower [opcua].max_tcp_connections); repeats are summarised every {} s",
            REPEAT_SUMMARY_INTERVAL.as_secs()
        );
    }

    /// Logs the summary lines of intervals that have ended.
    pub(crate) fn summarise(&mut self) {
        let now = Instant::now();
        for refusal in [Refusal::TotalLimit, Refusal::SourceLimit] {
            if let Some(suppressed) = self.limiter(refusal).summary_due(now) {
                warn!(
                    event = "opcua_connection_refused_repeats",
                    reason = refusal.reason(),
                    suppressed,
                    interval_seconds = REPEAT_SUMMARY_INTERVAL.as_secs(),
                    "more OPC UA connections closed at once"
                );
            }
        }
        if let Some(suppressed) = self.accept_failed.summary_due(now) {
            warn!(
                event = "opcua_accept_failed_repeats",
                suppressed,
                interval_seconds = REPEAT_SUMMARY_INTERVAL.as_secs(),
                "more OPC UA accept failures"
            );
        }
    }
}
