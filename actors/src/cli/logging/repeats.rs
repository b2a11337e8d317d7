//! Repeated library log lines, rate-limited per call site.
//!
//! opcgw's own lines carry a stable `event` field and are bounded where they are emitted.
//! Library lines (the OPC UA stack's "Accept new connection", "Connection failed ..." and the
//! like) are emitted once per connection or per request, so a peer that opens connections in a
//! loop writes them as fast as it can connect. Each such call site may log `burst` lines per
//! window; the rest are counted and reported by one `log_repeats_suppressed` line per window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines per call site per window before suppression.
pub const REPEAT_BURST: u32 = 10;
/// The window, and how often suppressed counts are reported.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
    metadata: &'static Metadata<'static>,
}

/// A count of lines suppressed at one call site during one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub target: &'static str,
    pub location: String,
    pub count: u64,
}

/// The per-call-site counter, shared by the layer and the reporter.
#[derive(Clone)]
pub struct RepeatLimit {
    burst: u32,
    window: Duration,
    windows: Arc<Mutex<HashMap<Identifier, Window>>>,
}

impl RepeatLimit {
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            windows: Arc::default(),
        }
    }

    /// Whether a line from `metadata` may be written now.
    pub fn admit(&self, metadata: &'static Metadata<'static>, now: Instant) -> bool {
        if metadata.fields().field("event").is_some() {
            return true;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let window = windows
            .entry(metadata.callsite())
            .or_insert_with(|| Window {
                start: now,
                logged: 0,
                suppressed: 0,
                metadata,
            });
        if window.logged < self.burst {
            window.logged += 1;
            true
        } else {
            window.suppressed += 1;
            false
        }
    }

    /// Ends the windows that are over; returns what they suppressed.
    pub fn take_ended(&self, now: Instant) -> Vec<Suppressed> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut ended = Vec::new();
        windows.retain(|_, w| {
            if now.saturating_duration_since(w.start) < self.window {
                return true;
            }
            if w.suppressed > 0 {
                ended.push(Suppressed {
                    target: w.metadata.target(),
                    location: format!(
                        "{}:{}",
                        w.metadata.file().unwrap_or("?"),
                        w.metadata.line().unwrap_or(0)
                    ),
                    count: w.suppressed,
                });
            }
            false
        });
        ended
    }

    /// Logs the windows that are over, every second, from a background thread.
    pub fn spawn_reporter(&self) {
        let limit = self.clone();
        let spawned = std::thread::Builder::new()
            .name("log-repeats".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                for s in limit.take_ended(Instant::now()) {
                    tracing::warn!(
                        event = "log_repeats_suppressed",
                        target_name = s.target,
                        location = %s.location,
                        suppressed = s.count,
                        window_seconds = limit.window.as_secs(),
                        "a log line repeated too often; its repeats were counted, not written"
                    );
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(event = "log_repeats_reporter_failed", error = %err);
        }
    }
}

impl<S: Subscriber> Layer<S> for RepeatLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        self.admit(event.metadata(), Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the events that reach the writers.
    #[derive(Clone, Default)]
    struct Written(Arc<AtomicUsize>);

    impl<S: Subscriber> Layer<S> for Written {
        fn on_event(&self, _event: &Event<'_>, _ctx: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn with_limit(limit: &RepeatLimit, emit: impl FnOnce()) -> usize {
        let written = Written::default();
        let subscriber = tracing_subscriber::registry()
            .with(limit.clone())
            .with(written.clone());
        tracing::subscriber::with_default(subscriber, emit);
        written.0.load(Ordering::SeqCst)
    }

    #[test]
    fn a_flooding_library_line_is_written_burst_times_then_counted_per_window() {
        let limit = RepeatLimit::new(3, Duration::from_secs(10));
        let written = with_limit(&limit, || {
            for i in 0..1000 {
                tracing::info!("Accept new connection {i}");
            }
        });
        assert_eq!(written, 3);
        let now = Instant::now();
        assert!(limit.take_ended(now).is_empty(), "the window is not over");
        let ended = limit.take_ended(now + Duration::from_secs(10));
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].count, 997);
        assert!(ended[0].location.contains("repeats.rs"), "{ended:?}");
        // A new window, a new burst.
        let again = with_limit(&limit, || {
            for _ in 0..5 {
                tracing::info!("another call site");
            }
        });
        assert_eq!(again, 3);
    }

    #[test]
    fn lines_with_a_stable_event_name_are_never_suppressed() {
        let limit = RepeatLimit::new(1, Duration::from_secs(10));
        let written = with_limit(&limit, || {
            for i in 0..100 {
                tracing::warn!(event = "command_queued", command_id = i);
            }
        });
        assert_eq!(written, 100);
        assert!(limit
            .take_ended(Instant::now() + Duration::from_secs(60))
            .is_empty());
    }
}
