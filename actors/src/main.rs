//! `opcgw`: the ChirpStack to OPC UA gateway daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use opcgw::config::{self, EnvSnapshot, DEFAULT_CONFIG_PATH};
use opcgw_actors::cli::ctl::{run_ctl, CtlArgs};
use opcgw_actors::cli::demo::start_demo_simulator;
use opcgw_actors::cli::logging::{self, LogSettings, LOG_LEVEL_ENV};
use opcgw_actors::cli::probe::{run_probe, ProbeArgs};
use opcgw_actors::cli::service_manager::{run_watchdog, watchdog_interval, Notifier};
use opcgw_actors::cli::simulate::{run_simulate, SimulateArgs};
use opcgw_actors::tree::gateway::{Tree, TreeOptions};
use opcgw_actors::tree::messages::ReloadTrigger;
use opcgw_actors::tree::supervisor::{FaultPlan, TreeExit};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// Exit codes (also in docs/operations.md).
const EXIT_OK: u8 = 0;
/// Bad configuration or a start-up failure.
const EXIT_CONFIG: u8 = 1;
/// A child restarted too often; the service manager should restart the process.
const EXIT_RESTART_INTENSITY: u8 = 3;
/// SIGTERM, but the tree did not stop within `supervisor.shutdown_timeout_seconds`.
const EXIT_SHUTDOWN_TIMEOUT: u8 = 4;

#[derive(Parser)]
#[command(name = "opcgw", version, about = "ChirpStack to OPC UA gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM / SIGINT (SIGHUP reloads the configuration).
    Run(RunArgs),
    /// Run the gateway against a built-in ChirpStack simulator (what `make run` starts).
    Demo(RunArgs),
    /// Serve a ChirpStack API simulator with synthetic devices.
    Simulate(SimulateArgs),
    /// Validate a configuration: print it resolved (secrets redacted) or list every problem.
    CheckConfig(ConfigArg),
    /// Talk to a running gateway over its control socket.
    Ctl(CtlArgs),
    /// Ask a running gateway's metrics listener whether it is alive (or ready): exit 0 or 1.
    Probe(ProbeArgs),
}

#[derive(Args)]
struct ConfigArg {
    /// Configuration file.
    #[arg(long, short, env = "OPCGW_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Control-socket token, used when neither OPCGW_CONTROL__TOKEN nor the token file
    /// provides one. Visible in the process list: prefer the variable or the file.
    #[arg(long, hide_env_values = true)]
    control_token: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(args) => check_config(&args.config),
        Command::Run(args) => run(args, Mode::Gateway),
        Command::Demo(args) => run(args, Mode::Demo),
        Command::Simulate(args) => block_on(run_simulate(args)),
        Command::Ctl(args) => block_on(run_ctl(args)),
        Command::Probe(args) => ExitCode::from(run_probe(&args)),
    }
}

fn block_on(future: impl std::future::Future<Output = u8>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => ExitCode::from(runtime.block_on(future)),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Whether `run` also starts the demo simulator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Gateway,
    Demo,
}

fn check_config(path: &Path) -> ExitCode {
    match config::load(path, &EnvSnapshot::from_process()) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "# Resolved configuration from {} (secrets redacted)",
                path.display()
            );
            print!("{}", loaded.config.to_redacted_toml());
            ExitCode::from(EXIT_OK)
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn run(args: RunArgs, mode: Mode) -> ExitCode {
    // Everything the gateway creates (logs, database, keys, tokens) is owner-only by default.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let fd_limit = raise_open_file_limit();
    opcgw_actors::cli::memory::limit_arenas();
    opcgw_actors::cli::memory::start_trimming();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    ExitCode::from(runtime.block_on(serve(
        args.config.config,
        args.control_token,
        mode,
        fd_limit,
    )))
}

async fn serve(
    config_path: PathBuf,
    control_token: Option<String>,
    mode: Mode,
    fd_limit: Result<OpenFileLimit, nix::Error>,
) -> u8 {
    // Handlers first: SIGHUP's default action kills the process, and a reload request may
    // arrive while the tree is still starting.
    let Some(signals) = Signals::install() else {
        eprintln!("error: cannot install signal handlers");
        return EXIT_CONFIG;
    };
    let env = EnvSnapshot::from_process();
    let loaded = match load_and_preflight(&config_path, &env, control_token) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_CONFIG;
        }
    };
    let (log, _log_guard) = start_logging(&loaded, &env, &config_path, &fd_limit);

    let _simulator = match mode {
        Mode::Gateway => None,
        Mode::Demo => match start_demo_simulator(&loaded.config).await {
            Ok(sim) => Some(sim),
            Err(err) => {
                error!(event = "gateway_start_failed", error = err.as_str());
                return EXIT_CONFIG;
            }
        },
    };
    let shutdown_timeout = Duration::from_secs(loaded.config.supervisor.shutdown_timeout_seconds);
    let config_hash = Some(loaded.source_hash);
    let options = TreeOptions {
        config_path,
        env: env.clone(),
        log: Some(log),
        faults: fault_plans(&env),
        opcua_listener: None,
        config_writer: None,
        config_hash,
        initial_file: None,
    };
    let tree = match Tree::start(Arc::new(loaded.config), options).await {
        Ok(tree) => tree,
        Err(err) => {
            error!(event = "gateway_start_failed", error = %err);
            return EXIT_CONFIG;
        }
    };
    info!(event = "gateway_started");
    let notifier = Notifier::from_env(&env);
    if let Some(notifier) = &notifier {
        notifier.send("READY=1");
        if let Some(interval) = watchdog_interval(&env) {
            let handle = tree.handle.clone();
            tokio::spawn(run_watchdog(notifier.clone(), interval, move |within| {
                let handle = handle.clone();
                async move {
                    tokio::time::timeout(within, handle.status())
                        .await
                        .is_ok_and(|status| status.is_some())
                }
            }));
        }
    }
    run_until_exit(tree, signals, shutdown_timeout, notifier).await
}

/// The signals `run` answers: SIGHUP reloads, SIGTERM and SIGINT stop.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Self> {
        Some(Self {
            hup: signal(SignalKind::hangup()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
            int: signal(SignalKind::interrupt()).ok()?,
        })
    }
}

/// Loads the configuration and refuses what would make the gateway run crippled: another
/// instance on the control socket or the database, an unusable OPC UA key pair, a weak
/// `--control-token`.
fn load_and_preflight(
    config_path: &Path,
    env: &EnvSnapshot,
    control_token: Option<String>,
) -> Result<config::LoadedConfig, String> {
    let loaded = config::load(config_path, env).map_err(|e| e.to_string())?;
    // Another instance answering on our control socket: refuse before touching anything.
    let control = &loaded.config.control;
    if control.enabled {
        opcgw::control::check_socket_not_in_use(&control.socket_path).map_err(|e| e.to_string())?;
    }
    // Another opcgw holding the database (with its own control socket, so the check above
    // passed): refuse now rather than run with storage down.
    opcgw::storage::check_not_in_use(&loaded.config.storage.database_path)
        .map_err(|e| e.to_string())?;
    // The OPC UA key must be owner-only and present (unless development keys are allowed):
    // refuse to start rather than run without the OPC UA server.
    opcgw::opcua::keypair::check_keypair(&loaded.config).map_err(|e| e.to_string())?;
    if let Some(token) = control_token {
        use_control_token_flag(&loaded.config.control, env, &token)?;
    }
    Ok(loaded)
}

/// Starts logging and writes the start-up lines (version, limits, configuration warnings).
fn start_logging(
    loaded: &config::LoadedConfig,
    env: &EnvSnapshot,
    config_path: &Path,
    fd_limit: &Result<OpenFileLimit, nix::Error>,
) -> (logging::LogControl, logging::LogGuard) {
    let settings = LogSettings::resolve(&loaded.config.logging, env);
    let (log, guard) = logging::init(&settings);
    if env.raw(LOG_LEVEL_ENV).is_some_and(|v| !v.is_empty()) && !settings.level_pinned {
        warn!(
            event = "log_level_env_invalid",
            "{LOG_LEVEL_ENV} is not a valid filter and was ignored"
        );
    }
    info!(
        event = "gateway_starting",
        version = env!("CARGO_PKG_VERSION"),
        config = %config_path.display(),
        pid = std::process::id(),
        log_level = %settings.level
    );
    log_open_file_limit(fd_limit, loaded.config.opcua.max_tcp_connections);
    for warning in &loaded.warnings {
        warn!(
            event = "config_warning",
            key = warning.key.as_str(),
            message = warning.message.as_str()
        );
    }
    (log, guard)
}

/// Serves signals until the tree ends or is told to stop; returns the exit code.
async fn run_until_exit(
    mut tree: Tree,
    signals: Signals,
    shutdown_timeout: Duration,
    notifier: Option<Notifier>,
) -> u8 {
    let Signals {
        mut hup,
        mut term,
        mut int,
    } = signals;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let handle = tree.handle.clone();
                let notifier = notifier.clone();
                // A reload must not hold up signal handling.
                tokio::spawn(async move {
                    if let Some(notifier) = &notifier {
                        notifier.reloading();
                    }
                    if handle.reload(ReloadTrigger::Sighup).await.is_err() {
                        warn!(event = "config_reload_unavailable", "the reload actor is not running; SIGHUP ignored");
                    }
                    if let Some(notifier) = &notifier {
                        notifier.send("READY=1");
                    }
                });
            }
            _ = term.recv() => return shut_down(&mut tree, "SIGTERM", shutdown_timeout, notifier.as_ref()).await,
            _ = int.recv() => return shut_down(&mut tree, "SIGINT", shutdown_timeout, notifier.as_ref()).await,
            changed = tree.exit.changed() => {
                let ended = tree.exit.borrow().clone();
                match (changed, ended) {
                    (_, Some(TreeExit::IntensityExceeded { child, restarts })) => {
                        error!(event = "gateway_exiting", reason = "restart_intensity_exceeded", actor = %child, restarts);
                        let _ = tokio::time::timeout(shutdown_timeout, &mut tree.join).await;
                        return EXIT_RESTART_INTENSITY;
                    }
                    (_, Some(TreeExit::StartUnrecoverable { child, error })) => {
                        error!(event = "gateway_exiting", reason = "start_unrecoverable", actor = %child, error = error.as_str());
                        eprintln!("error: {error}");
                        let _ = tokio::time::timeout(shutdown_timeout, &mut tree.join).await;
                        return EXIT_CONFIG;
                    }
                    (_, Some(TreeExit::Clean)) => return EXIT_OK,
                    (Err(_), None) => {
                        error!(event = "gateway_exiting", reason = "supervisor_lost");
                        return EXIT_CONFIG;
                    }
                    (Ok(()), None) => {}
                }
            }
        }
    }
}

async fn shut_down(
    tree: &mut Tree,
    signal: &str,
    timeout: Duration,
    notifier: Option<&Notifier>,
) -> u8 {
    info!(
        event = "shutdown_requested",
        signal,
        timeout_ms = timeout.as_millis() as u64
    );
    if let Some(notifier) = notifier {
        notifier.send("STOPPING=1");
    }
    let stopped = tree.handle.shutdown(timeout).await
        && tokio::time::timeout(timeout, &mut tree.join).await.is_ok();
    if stopped {
        info!(event = "gateway_stopped");
        EXIT_OK
    } else {
        error!(
            event = "shutdown_timeout",
            timeout_ms = timeout.as_millis() as u64
        );
        EXIT_SHUTDOWN_TIMEOUT
    }
}

/// The open-file limit before and after start-up.
struct OpenFileLimit {
    soft_before: u64,
    soft: u64,
    hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: every OPC UA, web and ChirpStack
/// connection costs a descriptor, and systemd's default soft limit (1024) is far below its
/// hard limit.
fn raise_open_file_limit() -> Result<OpenFileLimit, nix::Error> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // An unlimited hard limit is refused as a soft value; Linux allows at most
    // fs.nr_open (1,048,576 by default).
    const NR_OPEN_DEFAULT: u64 = 1_048_576;
    let (soft_before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let target = hard.min(NR_OPEN_DEFAULT);
    if soft_before < target {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(OpenFileLimit {
        soft_before,
        soft,
        hard,
    })
}

/// Descriptors kept free for everything but OPC UA connections (redb, logs, the web console,
/// ChirpStack streams, the control socket).
const DESCRIPTORS_FOR_THE_REST: u64 = 256;

fn log_open_file_limit(limit: &Result<OpenFileLimit, nix::Error>, max_tcp_connections: u32) {
    match limit {
        Ok(limit) => {
            info!(
                event = "open_file_limit",
                soft_before = limit.soft_before,
                soft = limit.soft,
                hard = limit.hard,
                "open-file limit (RLIMIT_NOFILE)"
            );
            if u64::from(max_tcp_connections) + DESCRIPTORS_FOR_THE_REST > limit.soft {
                warn!(
                    event = "open_file_limit_low",
                    soft = limit.soft,
                    max_tcp_connections,
                    "[opcua].max_tcp_connections plus {DESCRIPTORS_FOR_THE_REST} descriptors for the rest exceeds the open-file limit: raise LimitNOFILE (systemd) / ulimit -n, or lower max_tcp_connections"
                );
            }
        }
        Err(err) => warn!(
            event = "open_file_limit",
            error = %err,
            "cannot read or raise the open-file limit (RLIMIT_NOFILE)"
        ),
    }
}

/// `--control-token`: the lowest-precedence source (env > token file > flag), visible in the
/// process list, hence the warning. It is stored as the token file, so a later reload reads
/// the same token the socket uses.
fn use_control_token_flag(
    control: &opcgw::config::ControlConfig,
    env: &EnvSnapshot,
    token: &str,
) -> Result<(), String> {
    eprintln!(
        "WARNING: --control-token is visible in the process list (ps/top).\n         Use the OPCGW_CONTROL__TOKEN env var or [control].token_file instead."
    );
    if env.raw(opcgw::config::SECRET_ENV_VARS[2]).is_some() || control.token_file.exists() {
        return Ok(()); // a stronger source wins
    }
    opcgw::control::check_strength(token, "--control-token").map_err(|e| e.to_string())?;
    opcgw::control::write_token_file(&control.token_file, token)
        .map_err(|e| format!("cannot write {}: {e}", control.token_file.display()))
}

/// Debug builds only: `OPCGW_FAULT_INJECT=poller@200,web@50` makes each named actor panic that
/// many milliseconds after every start, for crash-isolation tests of the real binary.
#[cfg(debug_assertions)]
fn fault_plans(env: &EnvSnapshot) -> Vec<FaultPlan> {
    let Some(spec) = env.raw("OPCGW_FAULT_INJECT") else {
        return Vec::new();
    };
    let plans: Vec<FaultPlan> = spec
        .split(',')
        .filter_map(|item| {
            let (child, ms) = item.trim().split_once('@')?;
            Some(FaultPlan {
                child: child.to_string(),
                after: Duration::from_millis(ms.parse().ok()?),
            })
        })
        .collect();
    warn!(event = "fault_injection_enabled", plans = ?plans);
    plans
}

#[cfg(not(debug_assertions))]
fn fault_plans(_env: &EnvSnapshot) -> Vec<FaultPlan> {
    Vec::new()
}
