//! `opcgw simulate`: serve the ChirpStack API simulator, for the demo mode and for trying the
//! gateway without a LoRaWAN network.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use opcgw::chirpstack::simulator::{Simulator, SimulatorConfig};
use rand::distributions::{Alphanumeric, DistString};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use crate::cli::logging::LOG_LEVEL_ENV;

/// Where the token comes from when `--token` is not given.
pub const TOKEN_ENV: &str = "OPCGW_SIMULATOR_TOKEN";

const EXIT_OK: u8 = 0;
/// Bad arguments or the simulator could not start (address in use).
const EXIT_START_FAILED: u8 = 1;

/// No `Debug`: it would print the token.
#[derive(Args)]
pub struct SimulateArgs {
    /// Address to serve the ChirpStack gRPC API on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// Number of applications.
    #[arg(long, default_value_t = 1)]
    pub applications: usize,
    /// Devices per application.
    #[arg(long, default_value_t = 3)]
    pub devices: usize,
    /// Metrics in each uplink (battery_mv, reported through GetMetrics only, comes on top).
    #[arg(long, default_value_t = 4)]
    pub metrics: usize,
    /// Uplink period of each device in milliseconds (staggered across devices); 0 = none.
    #[arg(long, default_value_t = 10_000)]
    pub uplink_interval_ms: u64,
    /// Uplinks every device sent before the simulator started (one per interval, replayed to
    /// a new event stream up to the 10 ChirpStack keeps): a gateway starting against it meets
    /// a network server that has been running.
    #[arg(long, default_value_t = 0)]
    pub past_uplinks: usize,
    /// API token clients must present; a random one is generated and printed when absent.
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,
    /// Latency added to every call, in milliseconds (fault injection, benchmarks).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Print the `[[application]]` configuration blocks of this world and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl SimulateArgs {
    fn config(&self, api_token: String) -> SimulatorConfig {
        SimulatorConfig {
            api_token,
            applications: self.applications,
            devices_per_application: self.devices,
            metrics_per_device: self.metrics,
            uplink_interval: Duration::from_millis(self.uplink_interval_ms),
            past_uplinks: self.past_uplinks,
            ..SimulatorConfig::default()
        }
    }
}

/// Runs `opcgw simulate` until SIGINT / SIGTERM; returns the exit code.
pub async fn run_simulate(args: SimulateArgs) -> u8 {
    if args.print_config {
        print!("{}", args.config(String::new()).print_config());
        return EXIT_OK;
    }
    init_console_logging();
    // Handlers before serving: a signal during start-up must still stop us cleanly.
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        _ => {
            eprintln!("error: cannot install signal handlers");
            return EXIT_START_FAILED;
        }
    };
    let token = match args.token.clone().filter(|token| !token.is_empty()) {
        Some(token) => token,
        None => {
            let token = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
            // Printed once, on stdout only, in the form the gateway reads it from.
            println!("OPCGW_CHIRPSTACK__API_TOKEN={token}");
            token
        }
    };
    let config = args.config(token);
    let simulator = match Simulator::start(config, args.listen).await {
        Ok(simulator) => simulator,
        Err(err) => {
            error!(event = "simulator_start_failed", addr = %args.listen, error = %err);
            return EXIT_START_FAILED;
        }
    };
    simulator.set_latency(Duration::from_millis(args.latency_ms));
    let world = simulator.world();
    info!(
        event = "simulator_started",
        addr = %simulator.addr(),
        tenant_id = %world.tenant_id,
        applications = world.applications.len(),
        devices = world.device_count(),
        metrics_per_device = args.metrics,
        uplink_interval_ms = args.uplink_interval_ms,
    );
    let signal = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(event = "simulator_stopping", signal);
    simulator.shutdown().await;
    info!(event = "simulator_stopped");
    EXIT_OK
}

/// Console logging for this command (the gateway's file logging needs a configuration).
fn init_console_logging() {
    let level = std::env::var(LOG_LEVEL_ENV)
        .ok()
        .filter(|level| opcgw::config::check_log_filter(level).is_ok())
        .unwrap_or_else(|| "info".to_string());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::new(level))
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn defaults_match_the_simulator_defaults() {
        let cli = Cli::try_parse_from(["simulate"]).unwrap();
        assert_eq!(cli.args.listen, "127.0.0.1:18080".parse().unwrap());
        let config = cli.args.config("t".into());
        let defaults = SimulatorConfig::default();
        assert_eq!(config.applications, defaults.applications);
        assert_eq!(
            config.devices_per_application,
            defaults.devices_per_application
        );
        assert_eq!(config.metrics_per_device, defaults.metrics_per_device);
        assert_eq!(config.uplink_interval, defaults.uplink_interval);
    }

    #[test]
    fn sizes_and_interval_come_from_the_flags() {
        let cli = Cli::try_parse_from([
            "simulate",
            "--applications",
            "2",
            "--devices",
            "5",
            "--metrics",
            "7",
            "--uplink-interval-ms",
            "250",
            "--token",
            "abc",
        ])
        .unwrap();
        let config = cli.args.config(cli.args.token.clone().unwrap());
        assert_eq!(
            (
                config.applications,
                config.devices_per_application,
                config.metrics_per_device
            ),
            (2, 5, 7)
        );
        assert_eq!(config.uplink_interval, Duration::from_millis(250));
        assert_eq!(config.api_token, "abc");
    }

    #[tokio::test]
    async fn print_config_exits_zero_without_serving() {
        let args = Cli::try_parse_from(["simulate", "--print-config", "--listen", "127.0.0.1:1"])
            .unwrap()
            .args;
        assert_eq!(run_simulate(args).await, EXIT_OK);
    }
}
