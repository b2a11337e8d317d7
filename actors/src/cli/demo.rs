//! `opcgw demo`: the gateway against an in-process ChirpStack simulator — what `make run`
//! starts, so a fresh machine shows live values without any LoRaWAN network.
//!
//! The simulated world is fixed ([`demo_simulator`]) and `config/demo.toml` carries its
//! `[[application]]` blocks (printed by `opcgw simulate --print-config` with the same sizes);
//! a test keeps the two in step.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use opcgw::chirpstack::simulator::{Simulator, SimulatorConfig, SimulatorHandle};
use opcgw::config::AppConfig;
use tracing::info;

/// The demo world: 2 applications x 3 devices, 4 uplink metrics each, an uplink every 5 s.
pub fn demo_simulator(config: &AppConfig) -> SimulatorConfig {
    SimulatorConfig {
        tenant_id: config.chirpstack.tenant_id.clone(),
        api_token: config.chirpstack.api_token.expose().to_string(),
        applications: 2,
        devices_per_application: 3,
        metrics_per_device: 4,
        uplink_interval: Duration::from_secs(5),
        ..SimulatorConfig::default()
    }
}

/// Starts the simulator on the address of `[chirpstack].server_address`, which must be a
/// loopback address (the demo never listens beyond this machine).
pub async fn start_demo_simulator(config: &AppConfig) -> Result<SimulatorHandle, String> {
    let address = config
        .chirpstack
        .server_address
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let address = address.split('/').next().unwrap_or_default();
    let addr: SocketAddr = address
        .to_socket_addrs()
        .map_err(|e| format!("chirpstack.server_address {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("chirpstack.server_address {address} resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "the demo serves its simulator on loopback only; chirpstack.server_address is {addr}"
        ));
    }
    let sim = Simulator::start(demo_simulator(config), addr)
        .await
        .map_err(|e| format!("cannot start the simulator on {addr}: {e}"))?;
    info!(event = "demo_simulator_started", addr = %addr, devices = sim.world().device_count());
    Ok(sim)
}
