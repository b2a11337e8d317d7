//! A peer without credentials presenting a fresh self-signed certificate per handshake
//! against the real binary: `pki/rejected/` stays bounded and keeps the newest files.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value as Json;

use crate::opcua_python::{python, workspace};
use crate::support::{Daemon, Workdir, MINIMAL_CONFIG};

const HANDSHAKES: usize = 150;
const MAX_FILES: usize = 20;
const WRITES_PER_MINUTE: usize = 100;

/// The common names of the certificates in `pki/rejected/`, sorted.
fn rejected_names(workdir: &Workdir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workdir.path().join("pki/rejected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|n| n.split(' ').next().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn distinct_untrusted_certificates_leave_a_bounded_rejected_directory_with_the_newest_kept() {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]\n",
        &format!(
            "[opcua]\nmax_rejected_certificates = {MAX_FILES}\nrejected_certificates_per_minute = {WRITES_PER_MINUTE}\n"
        ),
    ));
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));

    let start = Instant::now();
    let output = Command::new(python())
        .arg(workspace().join("tests/python/rejected_certificates.py"))
        .arg(workdir.opcua_port().to_string())
        .arg(workdir.path().join("pki/own/cert.der"))
        .arg(HANDSHAKES.to_string())
        .output()
        .expect("run the Python handshakes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The whole flood runs well within the one-minute rate window.
    assert!(
        start.elapsed() < Duration::from_secs(55),
        "{:?}",
        start.elapsed()
    );
    let results: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let handshakes: Vec<&Json> = results.iter().filter(|r| r.get("i").is_some()).collect();
    assert_eq!(handshakes.len(), HANDSHAKES);
    assert!(
        handshakes.iter().all(|r| r["refused"] == true),
        "an untrusted certificate got in: {handshakes:#?}"
    );
    assert!(
        handshakes[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("CertificateUntrusted"),
        "{}",
        handshakes[0]
    );

    // The first WRITES_PER_MINUTE certificates were written, of which the newest MAX_FILES
    // are kept; the rest were refused without a file.
    let expected: Vec<String> = (WRITES_PER_MINUTE - MAX_FILES..WRITES_PER_MINUTE)
        .map(|i| format!("CN=flood-{i:03}"))
        .collect();
    assert_eq!(rejected_names(&workdir), expected);
    let not_stored = daemon.events("opcua_rejected_certificate_not_stored");
    assert_eq!(
        not_stored.len(),
        1,
        "one warning per minute: {not_stored:#?}"
    );

    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}
