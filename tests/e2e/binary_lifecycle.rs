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
fn the_demo_configuration_starts_the_daemon() {
    // `make run` runs exactly this configuration, with generated secrets in the environment.
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml"))
        .unwrap();
    let workdir = Workdir::new(&demo);
    let mut daemon = Daemon::start(&workdir, &[]);
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
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
