//! Trusting a SCADA client from the web console, against the real binary: a Python asyncua
//! client with its own certificate is refused on the SignAndEncrypt endpoint, its certificate
//! shows in `GET /api/certificates` as rejected, an operator trusts it over HTTP, and the same
//! client then connects and reads a value, without a restart.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::opcua_python::{python, workspace};
use crate::support::{Workdir, TEST_PASSWORD};
use crate::web::{console_daemon, demo_config, wait_for_value, DEVICE, USER};
use crate::web_client::WebClient;

const METRIC: &str = "temperature";

#[test]
fn an_operator_trusts_a_rejected_client_certificate_and_the_client_gets_in() {
    let workdir = Workdir::new(&demo_config());
    let mut daemon = console_daemon(&workdir, &[]);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    let console = WebClient::sign_in(workdir.web_port(), USER, TEST_PASSWORD);
    let listed = console.get_json("/api/certificates");
    assert_eq!(listed["certificates"], json!([]), "{listed}");
    // The value the client reads later is there by then.
    wait_for_value(&console, DEVICE, METRIC);

    let mut child = Command::new(python())
        .arg(workspace().join("tests/python/trusted_client.py"))
        .arg(workdir.opcua_port().to_string())
        .arg(workdir.path().join("pki/own/cert.der"))
        .arg(TEST_PASSWORD)
        .arg(format!("{DEVICE}/{METRIC}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python client");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the Python client stalled or ended")
    };
    let step = |line: String| -> Value {
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    };

    let untrusted = step(next_line());
    assert_eq!(untrusted["step"], "untrusted");
    assert_eq!(untrusted["refused"], true, "{untrusted}");
    assert!(
        untrusted["error"]
            .as_str()
            .unwrap_or("")
            .contains("CertificateUntrusted"),
        "{untrusted}"
    );
    let wait = next_line();
    let thumbprint = wait
        .strip_prefix("WAIT trust ")
        .unwrap_or_else(|| panic!("expected WAIT trust, got {wait}"))
        .to_string();
    assert_eq!(untrusted["thumbprint"], thumbprint);

    // The console shows what the server just refused.
    let listed = console.get_json("/api/certificates");
    let certificates = listed["certificates"].as_array().expect("a list");
    assert_eq!(certificates.len(), 1, "{listed}");
    let rejected = &certificates[0];
    assert_eq!(rejected["thumbprint"], thumbprint);
    assert_eq!(rejected["state"], "rejected");
    assert!(
        rejected["subject"]
            .as_str()
            .unwrap_or("")
            .contains("CN=Console trusted client"),
        "{rejected}"
    );
    assert_eq!(
        rejected["application_uri"],
        "urn:opcgw:console-trusted-client"
    );
    assert_eq!(rejected["expired"], false);

    let answer = console.post_json(&format!("/api/certificates/{thumbprint}/trust"), &json!({}));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["state"], "trusted");

    writeln!(stdin, "GO").expect("answer the client");
    stdin.flush().expect("flush");
    let trusted = step(next_line());
    assert_eq!(trusted["step"], "trusted");
    assert_eq!(trusted["connected"], true, "{trusted}");
    assert_eq!(trusted["mode"], "SignAndEncrypt", "{trusted}");
    assert_eq!(trusted["status"], "Good", "{trusted}");
    assert!(trusted["value"].is_number(), "{trusted}");
    assert_eq!(step(next_line())["step"], "done");
    assert!(child.wait().expect("the client ends").success());

    let audited = daemon.wait_for_events(
        "pki_certificate_trusted",
        1,
        std::time::Duration::from_secs(10),
    );
    assert_eq!(audited.len(), 1, "{audited:#?}");
    assert!(
        audited[0].contains(&thumbprint) && audited[0].contains("127.0.0.1"),
        "{}",
        audited[0]
    );
    let listed = console.get_json("/api/certificates");
    assert_eq!(listed["certificates"][0]["state"], "trusted", "{listed}");
    assert_eq!(listed["certificates"].as_array().map(Vec::len), Some(1));

    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}
