//! The real binary: start, SIGTERM, restart intensity, the demo configuration.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{actor_of, Daemon, Workdir, MINIMAL_CONFIG};

const START_ORDER: [&str; 6] = ["storage", "opcua", "poller", "web", "control", "reload"];

fn reversed() -> Vec<&'static str> {
    START_ORDER.iter().rev().copied().collect()
}

#[test]
fn sigterm_stops_children_in_reverse_order_and_exits_zero() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    let started: Vec<String> = daemon
        .events("actor_started")
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    assert_eq!(started, START_ORDER);

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "log:\n{}",
        daemon.lines().join("\n")
    );
    let stopped: Vec<String> = daemon
        .events("actor_stopped")
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    assert_eq!(stopped, reversed());
    assert_eq!(daemon.events("gateway_stopped").len(), 1);
}

#[test]
fn sigint_stops_the_gateway_cleanly_too() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    daemon.signal(Signal::SIGINT);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_child_crashing_past_the_restart_intensity_stops_the_tree_and_exits_non_zero() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let mut daemon = Daemon::start(
        &workdir,
        &[
            ("OPCGW_FAULT_INJECT", "poller@20".into()),
            ("OPCGW_SUPERVISOR__BACKOFF_INITIAL_MS", "10".into()),
            ("OPCGW_SUPERVISOR__BACKOFF_MAX_MS", "40".into()),
            ("OPCGW_SUPERVISOR__MAX_RESTARTS", "3".into()),
        ],
    );
    let status = daemon.wait_exit(Duration::from_secs(20));
    let log = daemon.lines().join("\n");
    assert_eq!(status.code(), Some(3), "log:\n{log}");
    assert_eq!(daemon.events("actor_failed").len(), 4, "log:\n{log}");
    assert_eq!(daemon.events("restart_intensity_exceeded").len(), 1);
    let stopped: Vec<String> = daemon
        .events("actor_stopped")
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    let expected: Vec<&str> = reversed().into_iter().filter(|a| *a != "poller").collect();
    assert_eq!(stopped, expected, "log:\n{log}");
    assert!(
        !log.contains("panicked at") || log.contains("injected panic"),
        "only the injected panic may appear"
    );
}

#[test]
fn the_demo_runs_against_its_simulator_and_logs_live_samples() {
    // `make run` runs exactly this, with generated secrets in the environment; the test moves
    // the simulator to a free port so it cannot collide with a running demo.
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml"))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let workdir = Workdir::new(&demo);
    let mut daemon = Daemon::start_with(
        &workdir,
        "demo",
        &[
            (
                "OPCGW_CHIRPSTACK__SERVER_ADDRESS",
                format!("http://127.0.0.1:{port}"),
            ),
            ("OPCGW_LOG_LEVEL", String::new()),
        ],
    );
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    // The demo generates its own OPC UA key pair, and says so; nothing else may be wrong with it.
    let warnings: Vec<String> = daemon
        .events("config_warning")
        .into_iter()
        .filter(|w| !w.contains("opcua.create_sample_keypair"))
        .collect();
    assert!(
        warnings.is_empty(),
        "the demo config should be clean: {warnings:#?}"
    );
    let samples = daemon.wait_for_events("samples_received", 3, Duration::from_secs(20));
    assert!(
        samples.iter().any(|l| l.contains("temperature=")),
        "{samples:#?}"
    );
    assert!(daemon
        .events("upstream_state_changed")
        .iter()
        .any(|l| l.contains("to=\"connected\"")));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn the_demo_config_describes_the_demo_simulator_world() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml");
    let env = opcgw::config::EnvSnapshot::from_pairs([
        ("OPCGW_CHIRPSTACK__API_TOKEN", "demo-test-token-5e1f"),
        ("OPCGW_OPCUA__USER_PASSWORD", "demo-test-password-8c2d"),
    ]);
    let config = opcgw::config::load(std::path::Path::new(path), &env)
        .unwrap()
        .config;
    let printed = opcgw_actors::demo::demo_simulator(&config).print_config();
    #[derive(serde::Deserialize)]
    struct Blocks {
        application: Vec<opcgw::config::ApplicationConfig>,
    }
    let world: Blocks = toml::from_str(&printed).unwrap();
    assert_eq!(
        config.applications, world.application,
        "regenerate the demo.toml applications with `opcgw simulate --print-config`"
    );
}

#[test]
fn a_corrupt_database_is_reported_left_untouched_and_the_rest_keeps_running() {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[supervisor]\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n\n[opcua]",
    ));
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::create_dir_all(workdir.path().join("data")).unwrap();
    let db = workdir.path().join("data/opcgw.redb");
    std::fs::write(&db, &garbage).unwrap();
    let mut daemon = Daemon::start(&workdir, &[]);
    let failures = daemon.wait_for_events("actor_start_failed", 3, Duration::from_secs(20));
    assert!(
        failures.iter().all(|l| l.contains("actor=\"storage\"")),
        "{failures:#?}"
    );
    assert!(
        failures[0].contains("opcgw.redb") && failures[0].contains("mv "),
        "{}",
        failures[0]
    );
    let started: Vec<String> = daemon
        .events("actor_started")
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    assert_eq!(
        started,
        ["opcua", "poller", "web", "control", "reload"],
        "everything but storage runs"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "the corrupt file was modified"
    );
}
