//! The systemd notification protocol (`Type=notify`): `READY=1` once the tree has started,
//! `RELOADING=1` (with `MONOTONIC_USEC`) and `READY=1` around a SIGHUP reload, `STOPPING=1` at
//! shutdown, and `WATCHDOG=1` every half `WatchdogSec` while the supervisor answers, so a
//! wedged gateway is killed and restarted by systemd. Without `NOTIFY_SOCKET` nothing is sent.
//!
//! A datagram per message to the socket systemd names (a path, or `@name` in the abstract
//! namespace): a dozen lines, so no crate for it.

use std::future::Future;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use opcgw::config::EnvSnapshot;
use tracing::{info, warn};

/// Where systemd listens for this service's notifications.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: String,
}

impl Notifier {
    /// The notifier of `NOTIFY_SOCKET`, if systemd set one.
    pub fn from_env(env: &EnvSnapshot) -> Option<Self> {
        env.raw("NOTIFY_SOCKET")
            .filter(|s| !s.is_empty())
            .map(|socket| Self {
                socket: socket.to_string(),
            })
    }

    /// Sends `state` (`READY=1`, or several `KEY=value` lines); failures are logged, never
    /// fatal: the gateway serves whether or not its service manager listens.
    pub fn send(&self, state: &str) {
        let address = match self.socket.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&self.socket),
        };
        let sent = address
            .and_then(|address| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &address));
        if let Err(error) = sent {
            warn!(event = "sd_notify_failed", error = %error);
        }
    }

    /// `RELOADING=1` with the monotonic clock, as systemd wants it before a reload.
    pub fn reloading(&self) {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
    }
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this process when
/// `WATCHDOG_PID` names one): pings go out every half of it.
pub fn watchdog_interval(env: &EnvSnapshot) -> Option<Duration> {
    let usec: u64 = env.raw("WATCHDOG_USEC")?.parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = env.raw("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Pings `WATCHDOG=1` every `interval / 2` for as long as `healthy` answers true within a
/// quarter of the interval. A missed ping is logged once per streak; systemd acts when a whole
/// interval passes without one.
pub async fn run_watchdog<F, Fut>(notifier: Notifier, interval: Duration, healthy: F)
where
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = bool>,
{
    let period = interval / 2;
    info!(
        event = "watchdog_enabled",
        interval_ms = interval.as_millis() as u64
    );
    let mut withheld = false;
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        if healthy(interval / 4).await {
            if withheld {
                info!(event = "watchdog_resumed");
            }
            withheld = false;
            notifier.send("WATCHDOG=1");
        } else if !withheld {
            withheld = true;
            warn!(
                event = "watchdog_withheld",
                "the supervisor did not answer: no watchdog ping until it does (systemd restarts the gateway after WatchdogSec)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn receiver() -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        let notifier = Notifier {
            socket: path.to_string_lossy().into_owned(),
        };
        (dir, socket, notifier)
    }

    fn received(socket: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buffer = [0u8; 256];
        while let Ok(n) = socket.recv(&mut buffer) {
            out.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
        out
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        let (_dir, socket, notifier) = receiver();
        notifier.send("READY=1");
        notifier.reloading();
        let got = received(&socket);
        assert_eq!(got[0], "READY=1");
        let usec: u64 = got[1]
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("{got:?}"))
            .parse()
            .unwrap();
        assert!(usec > 0);
    }

    #[test]
    fn the_watchdog_interval_is_for_this_process_only() {
        let ours = std::process::id().to_string();
        let env = |pairs: &[(&str, &str)]| EnvSnapshot::from_pairs(pairs.iter().copied());
        assert_eq!(
            watchdog_interval(&env(&[("WATCHDOG_USEC", "30000000")])),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval(&env(&[
                ("WATCHDOG_USEC", "2000000"),
                ("WATCHDOG_PID", &ours)
            ])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval(&env(&[("WATCHDOG_USEC", "2000000"), ("WATCHDOG_PID", "1")])),
            None
        );
        assert_eq!(watchdog_interval(&env(&[("WATCHDOG_USEC", "0")])), None);
        assert_eq!(watchdog_interval(&env(&[])), None);
    }

    #[tokio::test(start_paused = true)]
    async fn pings_stop_while_the_supervisor_does_not_answer_and_resume_after() {
        let (_dir, socket, notifier) = receiver();
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        let task = tokio::spawn(run_watchdog(notifier, Duration::from_secs(2), move |_| {
            let answer = flag.load(Ordering::SeqCst);
            async move { answer }
        }));
        // Pings at 0, 1, 2 s...
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(received(&socket), ["WATCHDOG=1"; 3]);
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(received(&socket).is_empty(), "pinged while unhealthy");
        healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(received(&socket), ["WATCHDOG=1"]);
        task.abort();
    }
}
