//! Attacks on OPC UA session slots and logins, against the real binary, from the Python
//! `asyncua` client driven at a low level (tests/python/session_attacks.py): it sends what a
//! well-behaved client library cannot (malformed encrypted passwords, sessions never activated)
//! and binds its sockets to several loopback addresses to act as several sources.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value as Json;

use crate::opcua_python::{python, workspace};
use crate::support::{Daemon, Workdir, MINIMAL_CONFIG, TEST_PASSWORD};

/// The gateway with 10 session slots and a 3 s activation deadline.
fn gateway() -> (Workdir, Daemon) {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[opcua]\nmax_connections = 10\nsession_activation_timeout_seconds = 3",
    ));
    let daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    (workdir, daemon)
}

/// Runs one scenario of the attack script; its JSON lines.
fn attack(workdir: &Workdir, daemon: &Daemon, scenario: &str, extra: &[&str]) -> Vec<Json> {
    let output = Command::new(python())
        .arg(workspace().join("tests/python/session_attacks.py"))
        .arg(workdir.opcua_port().to_string())
        .arg(TEST_PASSWORD)
        .arg(scenario)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/python/session_attacks.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("\"done\""),
        "the attack script failed ({}):\n{stdout}\n{stderr}\ngateway log:\n{}",
        output.status,
        daemon.lines().join("\n")
    );
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn step<'a>(lines: &'a [Json], name: &str) -> Vec<&'a Json> {
    lines.iter().filter(|l| l["step"] == name).collect()
}

fn seconds(line: &Json) -> f64 {
    line["seconds"].as_f64().expect("seconds")
}

#[test]
fn malformed_encrypted_passwords_are_refused_and_free_their_session_at_once() {
    let (workdir, daemon) = gateway();
    let lines = attack(&workdir, &daemon, "malformed", &[]);
    let attempts = step(&lines, "malformed");
    assert_eq!(attempts.len(), 14, "{lines:#?}");
    for attempt in &attempts {
        assert_eq!(
            attempt["status"], "BadIdentityTokenInvalid",
            "each malformed secret is answered, not dropped: {attempt}"
        );
    }
    // 14 refused activations on open connections, more than the 10 slots: a real client
    // still logs in at once.
    let real = step(&lines, "real_client")[0];
    assert_eq!(real["ok"], true, "{real}");
    assert!(seconds(real) < 2.0, "{real}");
    // Each refused session was closed at once, not left to time out.
    let released = daemon.wait_for_events("opcua_session_released", 14, Duration::from_secs(5));
    assert!(
        released
            .iter()
            .all(|l| l.contains("BadIdentityTokenInvalid")),
        "{released:#?}"
    );
    assert!(
        daemon.events("opcua_session_evicted").is_empty(),
        "no session had to be evicted to make room"
    );
    let failures = daemon.events("opcua_auth_failed");
    assert!(
        failures.len() >= 14 && failures.iter().all(|l| l.contains("source=127.0.1.")),
        "{failures:#?}"
    );
    let log = daemon.lines().join("\n");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn sessions_never_activated_neither_lock_clients_out_nor_outlive_the_activation_deadline() {
    let (workdir, daemon) = gateway();
    // Ten sessions (every slot) created and never activated, connections kept open 4 s after
    // the real client's login: longer than the 3 s activation deadline.
    let lines = attack(&workdir, &daemon, "unactivated", &["4"]);
    assert_eq!(step(&lines, "unactivated_sessions")[0]["count"], 10);
    let real = step(&lines, "real_client")[0];
    assert_eq!(real["ok"], true, "a real client is locked out: {real}");
    assert!(seconds(real) < 2.0, "{real}");
    // The oldest unactivated session gave way to the real one...
    let evicted = daemon.events("opcua_session_evicted");
    assert_eq!(evicted.len(), 1, "{evicted:#?}");
    // ...and the other nine were closed at the activation deadline, not the 60 s timeout.
    daemon.wait_for_events(
        "opcua_session_activation_expired",
        9,
        Duration::from_secs(5),
    );
}

#[test]
fn failed_logins_are_slowed_per_source_address() {
    let (workdir, daemon) = gateway();
    let lines = attack(&workdir, &daemon, "throttle", &[]);
    let burst = step(&lines, "burst")[0]["results"]
        .as_array()
        .expect("burst results")
        .clone();
    assert!(burst.iter().all(|r| r["ok"] == false), "{burst:#?}");
    // Six wrong passwords at once from one address: the answers wait 0.3 s doubling up to 5 s.
    let slowest = burst.iter().map(seconds).fold(0.0, f64::max);
    assert!(slowest >= 4.0, "{burst:#?}");

    let good = step(&lines, "good_from_other_address")[0];
    assert_eq!(good["ok"], true, "{good}");
    assert!(
        seconds(good) < 1.5,
        "another address logs in at full speed: {good}"
    );
    let attacker = step(&lines, "bad_from_attacker")[0];
    assert_eq!(attacker["ok"], false, "{attacker}");
    assert!(
        seconds(attacker) >= 4.5,
        "the attacker's next guess waits the full delay: {attacker}"
    );
    let third = step(&lines, "bad_from_third_address")[0];
    assert_eq!(third["ok"], false, "{third}");
    assert!(seconds(third) < 1.5, "{third}");

    let failures = daemon.events("opcua_auth_failed");
    assert_eq!(
        failures
            .iter()
            .filter(|l| l.contains("source=127.0.0.1"))
            .count(),
        7,
        "{failures:#?}"
    );
    assert!(
        failures.iter().any(|l| l.contains("source=127.0.0.3")),
        "{failures:#?}"
    );
    assert!(
        !failures.iter().any(|l| l.contains("source=127.0.0.2")),
        "{failures:#?}"
    );
}

/// At the session limit every refused session is logged with its source address and counted
/// in the metrics, with `[opcua].diagnostics_enabled` off (the count does not need them).
#[test]
fn each_session_refused_at_the_limit_is_logged_with_its_source() {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[metrics]\nenabled = true\nport = 9464\n\n[opcua]\nmax_connections = 2\ndiagnostics_enabled = false",
    ));
    let daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    let runtime = crate::support::client_runtime();
    runtime.block_on(async {
        let port = workdir.opcua_port();
        let first = crate::ua_client::connect_none(port, TEST_PASSWORD).await;
        let second = crate::ua_client::connect_none(port, TEST_PASSWORD).await;
        for _ in 0..2 {
            let refused = crate::ua_client::connect(
                port,
                ua::crypto::SecurityPolicy::None,
                ua::types::MessageSecurityMode::None,
                crate::ua_client::USER,
                TEST_PASSWORD,
            )
            .await;
            assert!(refused.is_err(), "a third session was accepted");
        }
        let refusals =
            daemon.wait_for_events("opcua_session_count_at_limit", 2, Duration::from_secs(10));
        assert!(
            refusals.iter().all(|l| l.contains("source_ip=127.0.0.1")
                && l.contains("limit=2")
                && l.contains("current=2")),
            "{refusals:#?}"
        );
        // The session gauge counts without the diagnostics.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let metrics = crate::web_client::WebClient::anonymous(workdir.metrics_port())
            .get("/metrics")
            .body;
        for line in [
            "opcgw_opcua_sessions 2",
            "opcgw_opcua_sessions_refused_total 2",
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "no {line:?} in\n{metrics}"
            );
        }
        first.close().await;
        second.close().await;
    });
}
