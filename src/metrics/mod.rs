//! The gateway's Prometheus metrics: one process-wide set, updated where things happen (the
//! poller counts samples, storage times its commits, the supervisor counts restarts) and
//! encoded when `/metrics` is scraped (`[metrics]`, served by the metrics actor).
//!
//! Counters and gauges are atomics: updating one costs a few nanoseconds and takes no lock
//! another actor could wait on. Gauges describe the present (the upstream state, open
//! streams, values by quality) and are set by the actor that owns that state whenever it
//! changes. Process figures (resident memory, open file descriptors, CPU time) are read from
//! `/proc` at scrape time.

use std::sync::OnceLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub mod http;

/// A label set of one static pair (`source="stream"`).
pub type Label = [(&'static str, &'static str); 1];
/// A label set of one pair whose value is known at run time (`actor="poller"`).
pub type NamedLabel = [(&'static str, String); 1];

type HistogramFamily = Family<Label, Histogram, fn() -> Histogram>;

/// Every metric the gateway exports. Names carry the `opcgw_` prefix; counters get `_total`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Samples taken in from ChirpStack, by `source`: `stream` (uplink events) or
    /// `get_metrics` (the poll cycle's aggregates).
    pub samples_received: Family<Label, Counter>,
    /// Values refused (wrong type, not finite, out of range), by `source`.
    pub samples_rejected: Family<Label, Counter>,
    /// Samples written to the database (committed).
    pub samples_stored: Counter,
    pub poll_cycle_seconds: Histogram,
    /// ChirpStack unary calls made by poll cycles (retries included).
    pub chirpstack_calls: Counter,
    /// 1 for the current upstream state, 0 for the others, by `state`.
    pub upstream_state: Family<Label, Gauge>,
    /// Event streams by `status`: `wanted`, `open`, `failing`.
    pub event_streams: Family<Label, Gauge>,
    /// Served variables by `quality`: `good`, `uncertain`, `bad`, `waiting` (no value yet).
    pub values: Family<Label, Gauge>,
    pub opcua_sessions: Gauge,
    pub opcua_subscriptions: Gauge,
    pub opcua_monitored_items: Gauge,
    /// Sessions refused at `[opcua].max_connections`.
    pub opcua_sessions_refused: Counter,
    /// OPC UA service time by `service`: `read`, `history_read`.
    pub opcua_request_seconds: HistogramFamily,
    pub storage_commit_seconds: Histogram,
    pub storage_database_bytes: Gauge,
    /// Command state changes by `state` (`queued`, `sent`, `acknowledged`, ...).
    pub commands: Family<Label, Counter>,
    /// Restarts of a duty actor by `actor`.
    pub actor_restarts: Family<NamedLabel, Counter>,
    /// Configuration reloads by `outcome`: `applied`, `unchanged`, or why it was refused:
    /// `validation`, `io`, `restart_required`.
    pub config_reloads: Family<Label, Counter>,
    /// Refused credentials by `surface`: `opcua`, `web`, `control`.
    pub auth_failures: Family<Label, Counter>,
}

fn request_histogram() -> Histogram {
    // 100 µs to ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        // The process figures keep their usual names; the gateway's own carry `opcgw_`.
        let ours = registry.sub_registry_with_prefix("opcgw");
        let samples_received = Family::<Label, Counter>::default();
        ours.register(
            "samples_received",
            "Samples taken in from ChirpStack, by source (stream: uplink events; get_metrics: poll-cycle aggregates)",
            samples_received.clone(),
        );
        let samples_rejected = Family::<Label, Counter>::default();
        ours.register(
            "samples_rejected",
            "Values refused (wrong type, not finite), by source",
            samples_rejected.clone(),
        );
        let samples_stored = Counter::default();
        ours.register(
            "samples_stored",
            "Samples committed to the database",
            samples_stored.clone(),
        );
        let poll_cycle_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        ours.register_with_unit(
            "poll_cycle_duration",
            "Duration of a ChirpStack poll cycle",
            Unit::Seconds,
            poll_cycle_seconds.clone(),
        );
        let chirpstack_calls = Counter::default();
        ours.register(
            "chirpstack_calls",
            "ChirpStack unary calls made by poll cycles, retries included",
            chirpstack_calls.clone(),
        );
        let upstream_state = Family::<Label, Gauge>::default();
        ours.register(
            "upstream_state",
            "1 for the current state of the link to ChirpStack (starting, connected, degraded, down, unauthenticated)",
            upstream_state.clone(),
        );
        let event_streams = Family::<Label, Gauge>::default();
        ours.register(
            "event_streams",
            "ChirpStack device event streams by status (wanted, open, failing)",
            event_streams.clone(),
        );
        let values = Family::<Label, Gauge>::default();
        ours.register(
            "values",
            "Served OPC UA variables by quality (good, uncertain, bad, waiting: no value yet)",
            values.clone(),
        );
        let opcua_sessions = Gauge::default();
        ours.register(
            "opcua_sessions",
            "Open OPC UA sessions",
            opcua_sessions.clone(),
        );
        let opcua_subscriptions = Gauge::default();
        ours.register(
            "opcua_subscriptions",
            "OPC UA subscriptions",
            opcua_subscriptions.clone(),
        );
        let opcua_monitored_items = Gauge::default();
        ours.register(
            "opcua_monitored_items",
            "OPC UA monitored items",
            opcua_monitored_items.clone(),
        );
        let opcua_sessions_refused = Counter::default();
        ours.register(
            "opcua_sessions_refused",
            "OPC UA sessions refused at [opcua].max_connections",
            opcua_sessions_refused.clone(),
        );
        let opcua_request_seconds =
            HistogramFamily::new_with_constructor(request_histogram as fn() -> Histogram);
        ours.register_with_unit(
            "opcua_request_duration",
            "Time to answer an OPC UA request, by service (read, history_read)",
            Unit::Seconds,
            opcua_request_seconds.clone(),
        );
        let storage_commit_seconds = request_histogram();
        ours.register_with_unit(
            "storage_commit_duration",
            "Duration of a durable database commit",
            Unit::Seconds,
            storage_commit_seconds.clone(),
        );
        let storage_database_bytes = Gauge::default();
        ours.register_with_unit(
            "storage_database_size",
            "Size of the database file",
            Unit::Bytes,
            storage_database_bytes.clone(),
        );
        let commands = Family::<Label, Counter>::default();
        ours.register(
            "commands",
            "Command state changes, by state (queued, sent, acknowledged, failed, expired, ...)",
            commands.clone(),
        );
        let actor_restarts = Family::<NamedLabel, Counter>::default();
        ours.register(
            "actor_restarts",
            "Restarts of a duty actor by the supervisor, by actor",
            actor_restarts.clone(),
        );
        let config_reloads = Family::<Label, Counter>::default();
        ours.register(
            "config_reloads",
            "Configuration reloads, by outcome (applied, unchanged; refused: validation, io, restart_required)",
            config_reloads.clone(),
        );
        let auth_failures = Family::<Label, Counter>::default();
        ours.register(
            "auth_failures",
            "Refused credentials, by surface (opcua, web, control)",
            auth_failures.clone(),
        );
        ours.register(
            "build",
            "The running opcgw",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(ProcessCollector::new()));
        // Every known label value from the start, at 0: a rate over a series that appears
        // with its first event misses that event, and dashboards show 0 rather than "no data".
        for source in ["stream", "get_metrics"] {
            touch(&samples_received, source_label("source", source));
            touch(&samples_rejected, source_label("source", source));
        }
        for state in ["queued", "sent", "acknowledged", "failed", "expired"] {
            touch(&commands, source_label("state", state));
        }
        for outcome in [
            "applied",
            "unchanged",
            "validation",
            "io",
            "restart_required",
        ] {
            touch(&config_reloads, source_label("outcome", outcome));
        }
        for surface in ["opcua", "web", "control"] {
            touch(&auth_failures, source_label("surface", surface));
        }
        for service in ["read", "history_read"] {
            touch(&opcua_request_seconds, source_label("service", service));
        }
        Self {
            registry,
            samples_received,
            samples_rejected,
            samples_stored,
            poll_cycle_seconds,
            chirpstack_calls,
            upstream_state,
            event_streams,
            values,
            opcua_sessions,
            opcua_subscriptions,
            opcua_monitored_items,
            opcua_sessions_refused,
            opcua_request_seconds,
            storage_commit_seconds,
            storage_database_bytes,
            commands,
            actor_restarts,
            config_reloads,
            auth_failures,
        }
    }

    /// Sets `family` to 1 for `current` and 0 for every other of `all` (an enum as gauges).
    pub fn set_one_of(
        family: &Family<Label, Gauge>,
        key: &'static str,
        all: &[&'static str],
        current: &str,
    ) {
        for state in all {
            family
                .get_or_create(&[(key, *state)])
                .set(i64::from(*state == current));
        }
    }

    /// The Prometheus text format (0.0.4), what a scraper gets unless it asks for OpenMetrics.
    pub fn encode_prometheus(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The OpenMetrics text format (with `# EOF`).
    pub fn encode_openmetrics(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn source_label(key: &'static str, value: &'static str) -> Label {
    [(key, value)]
}

/// Creates the series of `labels` in `family` (at 0) without changing it.
pub fn touch<M, C>(family: &Family<Label, M, C>, labels: Label)
where
    M: prometheus_client::metrics::TypedMetric,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    drop(family.get_or_create(&labels));
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Times one OPC UA request in `opcgw_opcua_request_duration_seconds{service}` when dropped.
pub struct RequestTimer {
    service: &'static str,
    started: std::time::Instant,
}

impl RequestTimer {
    pub fn start(service: &'static str) -> Self {
        Self {
            service,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        observe_since(
            &metrics()
                .opcua_request_seconds
                .get_or_create(&[("service", self.service)]),
            self.started,
        );
    }
}

/// Records how long `started` ago was in `histogram`.
pub fn observe_since(histogram: &Histogram, started: std::time::Instant) {
    histogram.observe(started.elapsed().as_secs_f64());
}

/// The upstream states, as `opcgw_upstream_state` labels them.
pub const UPSTREAM_STATES: &[&str] = &[
    "starting",
    "connected",
    "degraded",
    "down",
    "unauthenticated",
];

/// `process_*` figures read from `/proc/self` at scrape time (the names node exporters and
/// client libraries use, so existing dashboards work).
#[derive(Debug)]
struct ProcessCollector {
    ticks_per_second: u64,
}

impl ProcessCollector {
    fn new() -> Self {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0);
        Self {
            ticks_per_second: ticks.unwrap_or(100),
        }
    }
}

/// Fields of `/proc/self/stat` after the command name: (utime, stime, starttime, threads) in
/// clock ticks.
fn proc_stat() -> Option<(u64, u64, u64, i64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, num_threads 20, starttime 22.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some((field(14)?, field(15)?, field(22)?, field(20)? as i64))
}

/// What the memory allocator holds: blocks in use and free space it keeps.
///
/// Beside resident memory this tells a leak (in use grows) from an allocator that keeps freed
/// space scattered between blocks still in use (free and resident grow, in use does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapFigures {
    /// Bytes handed out and not freed (arena blocks and blocks mapped on their own).
    pub in_use: u64,
    /// Bytes free inside the allocator's arenas (not returned to the system).
    pub free: u64,
}

/// The allocator's figures (glibc only: `mallinfo2` sums every arena under its locks; with the
/// gateway's one arena a call takes well under a millisecond).
pub fn heap_figures() -> Option<HeapFigures> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's own bookkeeping, taking each arena's
        // lock itself; it has no preconditions.
        let info = unsafe { nix::libc::mallinfo2() };
        Some(HeapFigures {
            in_use: (info.uordblks + info.hblkhd) as u64,
            free: info.fordblks as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let resident = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
                kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            });
        let resident = resident.map(|kib| kib * 1024);
        if let Some(bytes) = resident {
            let gauge = ConstGauge::new(bytes as i64);
            gauge.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                gauge.metric_type(),
            )?)?;
        }
        if let Some(heap) = heap_figures() {
            for (name, help, bytes) in [
                (
                    "opcgw_heap_in_use_bytes",
                    "Bytes the memory allocator has handed out and not had back (glibc mallinfo2)",
                    heap.in_use,
                ),
                (
                    "opcgw_heap_free_bytes",
                    "Bytes the memory allocator holds free in its arenas, not returned to the system",
                    heap.free,
                ),
            ] {
                let gauge = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
                gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
            }
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            let gauge = ConstGauge::new(entries.count() as i64);
            gauge.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                gauge.metric_type(),
            )?)?;
        }
        if let Some((utime, stime, start, threads)) = proc_stat() {
            let ticks = self.ticks_per_second as f64;
            let cpu = ConstCounter::new((utime + stime) as f64 / ticks);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
            let gauge = ConstGauge::new(threads);
            gauge.encode(encoder.encode_descriptor(
                "process_threads",
                "Number of OS threads in the process",
                None,
                gauge.metric_type(),
            )?)?;
            // Start = now - the process's age (boot clock now - its start on the boot clock):
            // works where /proc/stat is hidden (systemd's ProcSubset=pid).
            let boot_clock = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME);
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64());
            if let (Ok(boot_clock), Ok(since_epoch)) = (boot_clock, since_epoch) {
                let boot_seconds = boot_clock.tv_sec() as f64 + boot_clock.tv_nsec() as f64 / 1e9;
                let age = (boot_seconds - start as f64 / ticks).max(0.0);
                let started = ConstGauge::<f64>::new(since_epoch - age);
                started.encode(encoder.encode_descriptor(
                    "process_start_time_seconds",
                    "Start time of the process since the Unix epoch in seconds",
                    None,
                    started.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block handed out shows in the allocator's in-use figure and leaves it when freed
    /// (512 MiB, far above what the tests running beside this one allocate; calloc'd, so no
    /// page of it is touched).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_heap_figures_follow_what_is_allocated() {
        const BLOCK: u64 = 512 << 20;
        let before = heap_figures().unwrap().in_use;
        let block = vec![0u8; BLOCK as usize];
        let holding = heap_figures().unwrap().in_use;
        drop(std::hint::black_box(block));
        let after = heap_figures().unwrap().in_use;
        assert!(holding >= before + BLOCK / 2, "{before} -> {holding}");
        assert!(after + BLOCK / 2 <= holding, "{holding} -> {after}");
    }

    #[test]
    fn every_family_is_exported_with_its_help_and_type() {
        let metrics = Metrics::new();
        metrics
            .samples_received
            .get_or_create(&[("source", "stream")])
            .inc_by(3);
        metrics.samples_stored.inc_by(3);
        Metrics::set_one_of(
            &metrics.upstream_state,
            "state",
            UPSTREAM_STATES,
            "degraded",
        );
        metrics.poll_cycle_seconds.observe(0.02);
        metrics
            .opcua_request_seconds
            .get_or_create(&[("service", "read")])
            .observe(0.001);
        let text = metrics.encode_prometheus().unwrap();
        for line in [
            "# TYPE opcgw_samples_received_total counter",
            "opcgw_samples_received_total{source=\"stream\"} 3",
            "opcgw_samples_stored_total 3",
            "opcgw_upstream_state{state=\"degraded\"} 1",
            "opcgw_upstream_state{state=\"down\"} 0",
            "# TYPE opcgw_poll_cycle_duration_seconds histogram",
            "opcgw_poll_cycle_duration_seconds_count 1",
            "opcgw_opcua_request_duration_seconds_count{service=\"read\"} 1",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_open_fds gauge",
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE process_start_time_seconds gauge",
            "# TYPE opcgw_heap_in_use_bytes gauge",
            "# TYPE opcgw_heap_free_bytes gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap();
        assert!(rss > 1 << 20, "{rss}");
        let started = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            started <= now && started > now - 3_600.0,
            "{started} vs {now}"
        );
        let open = metrics.encode_openmetrics().unwrap();
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
