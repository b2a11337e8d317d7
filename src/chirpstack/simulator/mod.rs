//! A ChirpStack v4 API simulator: a real tonic server speaking the real `chirpstack_api`
//! services, with synthetic, deterministic, time-varying devices and fault injection.
//!
//! Tests, benchmarks and the gateway's demo mode (`opcgw simulate`) run against it, so it
//! mirrors what a real ChirpStack answers (`chirpstack/src/api/*.rs`, `eventlog.rs`,
//! `storage/metrics.rs`) rather than what would be convenient, and it can be broken on demand:
//! latency, failing calls, dropped streams, a full outage, a changed token, malformed events.
//!
//! Where things live:
//! - `world.rs`: applications, devices, the metric catalogue, the value functions;
//! - `state.rs`: each device's runtime (frame counters, event log, uplink history, queue);
//! - `uplinks.rs`: the one timer task that drives every device's uplinks;
//! - `event_log.rs`, `streams.rs`: ChirpStack's per-device event stream and its live readers;
//! - `metrics.rs`: `GetMetrics` bucket aggregation;
//! - `downlinks.rs`: the downlink queue and what transmission produces (txack, ack, log);
//! - `faults.rs`: the front door every call passes (count, latency, auth, injected failure);
//! - `device_api.rs`, `application_api.rs`, `profile_api.rs`, `internal_api.rs`, `rpc.rs`: the
//!   gRPC services;
//! - `server.rs`: serving and killing connections; `handle.rs`: the public control surface.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::model::Timestamp;

mod application_api;
mod device_api;
mod downlinks;
mod event_log;
mod faults;
mod handle;
mod internal_api;
mod metrics;
mod profile_api;
mod rpc;
mod server;
mod state;
mod streams;
mod uplinks;
mod world;

#[cfg(test)]
mod tests;

pub use handle::SimulatorHandle;
pub use profile_api::UNTRACKED_MEASUREMENT;
pub use world::{
    MeasurementKind, SimApplication, SimDevice, SimMetric, World, BATTERY_METRIC, DEVICE_PROFILE_ID,
};

/// Most devices one simulator serves (memory stays in the tens of MB).
const MAX_DEVICES: usize = 100_000;
const MAX_METRICS_PER_DEVICE: usize = 1_000;
const MAX_EVENT_HISTORY: usize = 10_000;
/// Longest uplink interval or acknowledgement delay (keeps timer arithmetic far from overflow).
const MAX_DELAY: Duration = Duration::from_secs(86_400);

/// What to simulate. `Default` is a small tenant suitable for a demo.
#[derive(Clone)]
pub struct SimulatorConfig {
    pub tenant_id: String,
    /// Bearer token every call must carry (`authorization: Bearer <token>`).
    pub api_token: String,
    pub applications: usize,
    pub devices_per_application: usize,
    /// Uplink object fields per device; `battery_mv` comes on top (GetMetrics only).
    pub metrics_per_device: usize,
    /// Uplink period of each device, staggered across devices. Zero: no scheduled uplinks,
    /// only `SimulatorHandle::emit_uplink_now` (deterministic tests).
    pub uplink_interval: Duration,
    /// Events replayed when a stream opens (ChirpStack's `per_device_event_log_max_history`);
    /// 0 delivers live events only.
    pub event_history: usize,
    /// Uplinks every device sent before the simulator started, one per `uplink_interval`
    /// back from its first scheduled slot (in its event log and metric history): a gateway
    /// starting against it meets a ChirpStack that has been running, with events to replay.
    /// At most `MAX_EVENT_HISTORY`; needs a non-zero `uplink_interval`.
    pub past_uplinks: usize,
    /// False simulates servers older than the MINUTE aggregation: it is refused.
    pub supports_minute_aggregation: bool,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`, which caps event streams per connection.
    pub max_concurrent_streams_per_connection: u32,
    /// Enqueue -> `txack` -> (confirmed) `ack`, each step after this delay.
    pub downlink_ack_delay: Duration,
    /// Seeds the RNG of injected failures and generated ids.
    pub seed: u64,
    /// Real ChirpStack answers `GetMetrics` with every bucket of the range, empty ones as 0
    /// (it cannot tell "no data" from 0). False (default) returns only buckets with data;
    /// true reproduces ChirpStack, to test that the gateway survives those zeros.
    pub fill_empty_buckets: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            tenant_id: "52f14cd4-c6f1-4fbd-8f87-4025e1d49242".into(),
            api_token: "opcgw-simulator-token".into(),
            applications: 1,
            devices_per_application: 3,
            metrics_per_device: 4,
            uplink_interval: Duration::from_secs(10),
            event_history: 10,
            past_uplinks: 0,
            supports_minute_aggregation: true,
            max_concurrent_streams_per_connection: 200,
            downlink_ack_delay: Duration::from_millis(50),
            seed: 1,
            fill_empty_buckets: false,
        }
    }
}

/// Never prints the token (configs end up in logs and test failure messages).
impl fmt::Debug for SimulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatorConfig")
            .field("tenant_id", &self.tenant_id)
            .field("api_token", &"***")
            .field("applications", &self.applications)
            .field("devices_per_application", &self.devices_per_application)
            .field("metrics_per_device", &self.metrics_per_device)
            .field("uplink_interval", &self.uplink_interval)
            .field("event_history", &self.event_history)
            .field("past_uplinks", &self.past_uplinks)
            .field(
                "supports_minute_aggregation",
                &self.supports_minute_aggregation,
            )
            .field(
                "max_concurrent_streams_per_connection",
                &self.max_concurrent_streams_per_connection,
            )
            .field("downlink_ack_delay", &self.downlink_ack_delay)
            .field("seed", &self.seed)
            .field("fill_empty_buckets", &self.fill_empty_buckets)
            .finish()
    }
}

impl SimulatorConfig {
    /// `[[application]]` blocks (devices, every metric with type and unit, one command per
    /// device) that make an opcgw configuration serve this world, as TOML text.
    pub fn print_config(&self) -> String {
        #[derive(serde::Serialize)]
        struct Blocks {
            application: Vec<crate::config::ApplicationConfig>,
        }
        let world = self.world(Timestamp::default());
        let blocks = Blocks {
            application: world.to_config(),
        };
        let body = toml::to_string_pretty(&blocks)
            .unwrap_or_else(|e| format!("# cannot render the simulated applications: {e}\n"));
        format!(
            "# Applications of the opcgw ChirpStack simulator ({} devices).\n\
             # Pair with [chirpstack] tenant_id = \"{}\" and the simulator's address and token.\n\
             # battery_mv is never in uplinks: it is read through GetMetrics.\n\n{body}",
            world.device_count(),
            self.tenant_id,
        )
    }

    pub(crate) fn world(&self, epoch: Timestamp) -> World {
        World::new(
            &self.tenant_id,
            self.applications,
            self.devices_per_application,
            self.metrics_per_device,
            self.uplink_interval,
            epoch,
        )
    }

    /// Refuses sizes that would exhaust memory or ids, before anything is allocated.
    fn validate(&self) -> io::Result<()> {
        let invalid = |message: String| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        let devices = self.applications.checked_mul(self.devices_per_application);
        if devices.is_none_or(|n| n > MAX_DEVICES) || self.applications > 0xffff {
            return invalid(format!(
                "at most {MAX_DEVICES} devices in at most 65535 applications"
            ));
        }
        if self.metrics_per_device > MAX_METRICS_PER_DEVICE {
            return invalid(format!(
                "at most {MAX_METRICS_PER_DEVICE} metrics per device"
            ));
        }
        if self.event_history > MAX_EVENT_HISTORY {
            return invalid(format!("event_history is at most {MAX_EVENT_HISTORY}"));
        }
        let interval = self.uplink_interval;
        if !interval.is_zero() && !(Duration::from_millis(1)..=MAX_DELAY).contains(&interval) {
            return invalid("uplink_interval must be zero (off) or 1 ms to 1 day".into());
        }
        if self.past_uplinks > MAX_EVENT_HISTORY {
            return invalid(format!("past_uplinks is at most {MAX_EVENT_HISTORY}"));
        }
        if self.past_uplinks > 0 && interval.is_zero() {
            return invalid("past_uplinks needs an uplink_interval".into());
        }
        if self.downlink_ack_delay > MAX_DELAY {
            return invalid("downlink_ack_delay is at most 1 day".into());
        }
        if self.max_concurrent_streams_per_connection == 0 {
            return invalid("max_concurrent_streams_per_connection must be at least 1".into());
        }
        if rpc::require_uuid("tenant_id", &self.tenant_id).is_err() {
            return invalid("tenant_id must be a UUID".into());
        }
        Ok(())
    }
}

/// How simulated devices answer downlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckBehaviour {
    /// Transmitted (`txack`); a confirmed downlink is then acknowledged (`ack`, true).
    #[default]
    Ack,
    /// Transmitted (`txack`); a confirmed downlink is then negatively acknowledged (`ack`,
    /// false: ChirpStack's answer when the acknowledgement times out).
    Nack,
    /// Never transmitted: no event; the item stays queued until its `expires_at`, if any.
    Silent,
}

/// One accepted `DeviceService.Enqueue`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedDownlink {
    pub queue_item_id: String,
    pub dev_eui: String,
    pub f_port: u32,
    pub confirmed: bool,
    pub data: Vec<u8>,
    /// When it was enqueued.
    pub at: Timestamp,
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds `addr` (`127.0.0.1:0` in tests) and serves until the last handle is dropped or
    /// shut down. Fails on a config that would not fit in memory or an address in use.
    pub async fn start(config: SimulatorConfig, addr: SocketAddr) -> io::Result<SimulatorHandle> {
        handle::start(config, addr).await
    }
}
