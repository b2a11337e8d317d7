//! Running under systemd: the notification protocol spoken by the real binary to a socket
//! standing in for systemd's, and the shipped unit checked by `systemd-analyze` (its syntax,
//! and its exposure score against the bound of the operations issue).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{Daemon, Workdir, MINIMAL_CONFIG};

/// Datagrams received on `socket` until `done` holds over all of them, or `timeout`.
fn receive_until(
    socket: &UnixDatagram,
    got: &mut Vec<String>,
    timeout: Duration,
    done: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 512];
    while !done(got) {
        assert!(Instant::now() < deadline, "timed out; received {got:?}");
        if let Ok(n) = socket.recv(&mut buffer) {
            got.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    }
}

#[test]
fn the_binary_tells_systemd_ready_reloading_stopping_and_pings_the_watchdog() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let path = workdir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut daemon = Daemon::start(
        &workdir,
        &[
            ("NOTIFY_SOCKET", path.to_string_lossy().into_owned()),
            ("WATCHDOG_USEC", "1000000".into()),
        ],
    );
    let mut got = Vec::new();
    let count = |got: &[String], what: &str| got.iter().filter(|m| m.as_str() == what).count();
    receive_until(&socket, &mut got, Duration::from_secs(30), |g| {
        count(g, "READY=1") == 1 && count(g, "WATCHDOG=1") >= 3
    });
    assert_eq!(got[0], "READY=1", "READY comes first: {got:?}");
    assert_eq!(daemon.events("watchdog_enabled").len(), 1);

    got.clear();
    daemon.signal(Signal::SIGHUP);
    receive_until(&socket, &mut got, Duration::from_secs(10), |g| {
        count(g, "READY=1") == 1
    });
    let reloading = got
        .iter()
        .position(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no RELOADING: {got:?}"));
    let ready = got.iter().position(|m| m == "READY=1").unwrap();
    assert!(reloading < ready, "{got:?}");
    daemon.wait_for_events("config_reload_succeeded", 1, Duration::from_secs(5));

    got.clear();
    daemon.signal(Signal::SIGTERM);
    receive_until(&socket, &mut got, Duration::from_secs(10), |g| {
        g.iter().any(|m| m == "STOPPING=1")
    });
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze").arg("--version").output();
    if found.is_ok_and(|o| o.status.success()) {
        Some("systemd-analyze")
    } else {
        eprintln!("systemd-analyze is not installed: the unit is not checked here");
        None
    }
}

fn unit() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/opcgw.service")
}

#[test]
fn the_unit_is_valid_for_systemd() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("opcgw.service");
    let text = std::fs::read_to_string(unit())
        .unwrap()
        .replace("/usr/local/bin/opcgw", env!("CARGO_BIN_EXE_opcgw"));
    std::fs::write(&copy, text).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_unit_is_hardened_to_an_exposure_of_at_most_two() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let out = Command::new(analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for opcgw.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{text}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}
