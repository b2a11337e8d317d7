//! `opcgw ctl`: the client of the control socket.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use opcgw::config::{self, EnvSnapshot, DEFAULT_CONFIG_PATH};
use opcgw::control::{read_client_token, render, ControlClient, Request, EXIT_ERROR, EXIT_OK};

/// How long `ctl` waits for the daemon (a reload may take a few seconds).
const TIMEOUT: Duration = Duration::from_secs(35);

#[derive(Args)]
pub struct CtlArgs {
    /// Configuration file of the daemon (for the socket path and token file).
    #[arg(long, short, env = "OPCGW_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Token, when neither OPCGW_CONTROL__TOKEN nor the token file provides one. Visible in
    /// the process list: prefer the variable or the file.
    #[arg(long, hide_env_values = true)]
    pub control_token: Option<String>,
    /// Print the raw JSON result (for scripts) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand)]
pub enum CtlCommand {
    /// Actor states, restarts, upstream and storage figures.
    Status,
    /// Reload the configuration (same path as SIGHUP) and print the outcome.
    Reload,
    /// Discover the devices of `discover = true` applications from ChirpStack now.
    Discover,
    /// Configured devices with their newest value and quality.
    Devices,
    /// Latest values of a device (or one metric).
    Read {
        device: String,
        metric: Option<String>,
    },
    /// History of one metric.
    History {
        device: String,
        metric: String,
        /// Start: RFC 3339 or a duration ago ("15m", "2h", "7d").
        #[arg(long, default_value = "1h")]
        since: String,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        /// An OPC UA Part 13 aggregate per interval instead of the stored rows: average,
        /// time_average, total, minimum, maximum, minimum_actual_time, maximum_actual_time,
        /// range, count, start, end, delta, interpolative, duration_good, duration_bad,
        /// percent_good.
        #[arg(long)]
        aggregate: Option<String>,
        /// The aggregate's processing interval ("15m", "1h", "1d"; default: the whole window).
        #[arg(long, requires = "aggregate")]
        interval: Option<String>,
    },
    /// Downlink commands.
    #[command(subcommand)]
    Command(CommandCtl),
    /// Change the log filter now (e.g. "debug" or "info,opcgw_actors::duties::poller=debug").
    LogLevel { filter: String },
}

#[derive(Subcommand)]
pub enum CommandCtl {
    /// Queue a command: its value is parsed as JSON (42, 1.5, true, "text"), else taken as text.
    Send {
        device: String,
        command: String,
        value: String,
    },
    /// Recent commands, newest first.
    List {
        device: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
}

impl CtlCommand {
    fn request(self) -> Request {
        match self {
            Self::Status => Request::Status,
            Self::Reload => Request::Reload,
            Self::Discover => Request::Discover,
            Self::Devices => Request::Devices,
            Self::Read { device, metric } => Request::Read { device, metric },
            Self::History {
                device,
                metric,
                since,
                until,
                limit,
                aggregate,
                interval,
            } => Request::History {
                device,
                metric,
                since,
                until,
                limit,
                aggregate,
                interval,
            },
            Self::Command(CommandCtl::Send {
                device,
                command,
                value,
            }) => {
                let value =
                    serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value));
                Request::CommandSend {
                    device,
                    command,
                    value,
                }
            }
            Self::Command(CommandCtl::List { device, limit }) => {
                Request::CommandList { device, limit }
            }
            Self::LogLevel { filter } => Request::LogLevel { filter },
        }
    }
}

pub async fn run_ctl(args: CtlArgs) -> u8 {
    let control = match config::load_control(&args.config, &EnvSnapshot::from_process()) {
        Ok(control) => control,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_ERROR;
        }
    };
    if args.control_token.is_some() {
        eprintln!(
            "WARNING: --control-token is visible in the process list (ps/top).\n         Use the OPCGW_CONTROL__TOKEN env var or [control].token_file instead."
        );
    }
    let token = match (read_client_token(&control), args.control_token) {
        (Ok(token), _) => token,
        (Err(_), Some(flag)) => opcgw::config::Secret::new(flag),
        (Err(err), None) => {
            eprintln!("error: {err}");
            return opcgw::control::EXIT_AUTH_FAILED;
        }
    };
    let mut client =
        match ControlClient::connect(&control.socket_path, token.expose(), TIMEOUT).await {
            Ok(client) => client,
            Err(err) => {
                eprintln!("error: {err}");
                return err.exit_code();
            }
        };
    let request = args.command.request();
    match client.request(&request).await {
        Ok(response) if response.ok => {
            let result = response.result.unwrap_or(serde_json::Value::Null);
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result).unwrap_or_default()
                );
            } else {
                print!("{}", render(&request, &result));
            }
            // A reload the daemon refused is a failure for scripts, like SIGHUP's warning.
            let refused = result.get("outcome").and_then(|o| o.as_str()) == Some("failed");
            if matches!(request, Request::Reload | Request::Discover) && refused {
                return EXIT_ERROR;
            }
            EXIT_OK
        }
        Ok(response) => {
            match response.error {
                Some(error) => eprintln!("error ({}): {}", error.code.as_str(), error.message),
                None => eprintln!("error: the daemon refused the request"),
            }
            EXIT_ERROR
        }
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}
