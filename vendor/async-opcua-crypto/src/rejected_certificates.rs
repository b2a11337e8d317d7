//! opcgw patch: bounds on `pki/rejected/`.
//!
//! The published store writes every distinct untrusted client certificate to the rejected
//! directory and never removes one, so a peer presenting a fresh self-signed certificate per
//! handshake fills the disk. Here the writes are rate-limited (beyond the rate the
//! certificate is still rejected, only not written) and the oldest files are removed once the
//! directory holds more than the cap.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use tracing::{info, warn};

const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Bounds on the files written to the rejected directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectedCertificateLimits {
    /// Files kept in the rejected directory (the oldest are removed first); `0` = no cap.
    pub max_files: usize,
    /// New files written per minute at most; `0` = no cap.
    pub max_writes_per_minute: usize,
}

impl RejectedCertificateLimits {
    /// No bound, as in the published crate.
    pub const UNLIMITED: Self = Self {
        max_files: 0,
        max_writes_per_minute: 0,
    };
}

impl Default for RejectedCertificateLimits {
    fn default() -> Self {
        Self::UNLIMITED
    }
}

/// What the store did with a rejected certificate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteDecision {
    Write,
    /// Over the write rate: reject without writing.
    Skip,
}

/// Write history of the rejected directory.
#[derive(Debug, Default)]
pub(crate) struct RejectedLedger {
    /// Times of the writes of the last minute.
    recent_writes: VecDeque<Instant>,
    /// Files written by this process, oldest first (file times are too coarse to order
    /// handshakes that are milliseconds apart).
    written: VecDeque<PathBuf>,
    /// Certificates not written since the last warning about it.
    skipped: u64,
    last_skip_warning: Option<Instant>,
}

impl RejectedLedger {
    /// Whether one more file may be written now (and counts it if so).
    pub(crate) fn decide(
        &mut self,
        limits: RejectedCertificateLimits,
        now: Instant,
    ) -> WriteDecision {
        while self
            .recent_writes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            self.recent_writes.pop_front();
        }
        if limits.max_writes_per_minute > 0
            && self.recent_writes.len() >= limits.max_writes_per_minute
        {
            self.skipped += 1;
            let warn_now = self
                .last_skip_warning
                .is_none_or(|t| now.saturating_duration_since(t) >= RATE_WINDOW);
            if warn_now {
                warn!(
                    event = "opcua_rejected_certificate_not_stored",
                    skipped = self.skipped,
                    max_writes_per_minute = limits.max_writes_per_minute,
                    "untrusted client certificates arrive faster than [opcua].rejected_certificates_per_minute: they are rejected without being written to the rejected directory (one warning per minute)"
                );
                self.skipped = 0;
                self.last_skip_warning = Some(now);
            }
            return WriteDecision::Skip;
        }
        self.recent_writes.push_back(now);
        WriteDecision::Write
    }

    /// Records `path` as just written and removes the oldest files of `dir` beyond
    /// `limits.max_files`.
    pub(crate) fn written(&mut self, dir: &Path, path: PathBuf, limits: RejectedCertificateLimits) {
        self.written.retain(|p| p != &path);
        self.written.push_back(path);
        if limits.max_files == 0 {
            return;
        }
        let on_disk = match files_by_age(dir) {
            Ok(files) => files,
            Err(e) => {
                warn!(
                    event = "opcua_rejected_certificates_unreadable",
                    dir = %dir.display(),
                    error = %e,
                    "cannot list the rejected-certificate directory to bound it"
                );
                return;
            }
        };
        self.written.retain(|p| on_disk.contains(p));
        // Files this process did not write (earlier runs, an administrator) count as older.
        let mut oldest_first: Vec<PathBuf> = on_disk
            .into_iter()
            .filter(|p| !self.written.contains(p))
            .collect();
        oldest_first.extend(self.written.iter().cloned());
        let excess = oldest_first.len().saturating_sub(limits.max_files);
        for old in oldest_first.into_iter().take(excess) {
            match std::fs::remove_file(&old) {
                Ok(()) => info!(
                    event = "opcua_rejected_certificate_removed",
                    path = %old.display(),
                    max_files = limits.max_files,
                    "oldest rejected client certificate removed ([opcua].max_rejected_certificates)"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(
                    event = "opcua_rejected_certificates_unreadable",
                    path = %old.display(),
                    error = %e,
                    "cannot remove an old rejected client certificate"
                ),
            }
            self.written.retain(|p| p != &old);
        }
    }
}

/// Regular files of `dir`, oldest modification first (ties by name).
fn files_by_age(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            files.push((
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                entry.path(),
            ));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_beyond_the_rate_are_skipped_until_the_minute_has_passed() {
        let limits = RejectedCertificateLimits {
            max_files: 0,
            max_writes_per_minute: 2,
        };
        let mut ledger = RejectedLedger::default();
        let t0 = Instant::now();
        assert_eq!(ledger.decide(limits, t0), WriteDecision::Write);
        assert_eq!(ledger.decide(limits, t0), WriteDecision::Write);
        assert_eq!(ledger.decide(limits, t0), WriteDecision::Skip);
        assert_eq!(
            ledger.decide(limits, t0 + RATE_WINDOW),
            WriteDecision::Write
        );
    }
}
