//! `[metrics]` on the real binary: `/metrics` scraped over HTTP and parsed by the Prometheus
//! client library's own parsers (Python `prometheus_client`, both formats), and the probes.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value as Json;

use crate::opcua_python::{python, workspace};
use crate::support::{Daemon, Workdir, MINIMAL_CONFIG, TEST_PASSWORD};
use crate::web_client::WebClient;

/// One parsed scrape: family types by name, and every sample.
struct Scrape {
    families: HashMap<String, String>,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    /// The value of `name` with every label of `labels`; panics when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or_else(|| {
            let near: Vec<_> = self.samples.iter().filter(|s| s.0 == name).collect();
            panic!("no sample {name}{labels:?}; samples of that name: {near:?}")
        })
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
    }
}

/// Parses `text` with `prometheus_client`'s parser for `format`; fails the test when it refuses.
fn parse(text: &str, format: &str) -> Scrape {
    let mut child = Command::new(python())
        .arg(workspace().join("tests/python/parse_metrics.py"))
        .arg(format)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the {format} parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Json = serde_json::from_slice(&out.stdout).unwrap();
    let families = json["families"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let samples = json["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s[1]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (
                s[0].as_str().unwrap().to_string(),
                labels,
                s[2].as_f64().unwrap(),
            )
        })
        .collect();
    Scrape { families, samples }
}

#[test]
fn the_demo_exports_prometheus_metrics_that_parse_and_probes_that_answer() {
    let (workdir, mut daemon) = Daemon::start_demo(&[("OPCGW_LOG_LEVEL", "info".into())]);
    daemon.wait_for_events("metrics_listening", 1, Duration::from_secs(20));
    let http = WebClient::anonymous(workdir.metrics_port());
    let ready = Instant::now() + Duration::from_secs(20);
    while http.get("/readyz").status != 200 {
        assert!(
            Instant::now() < ready,
            "never ready: {:?}",
            http.get("/readyz")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http.get("/healthz").status, 200);
    // `opcgw probe`, the image's HEALTHCHECK, agrees.
    let probe = |ready: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_opcgw"));
        command.args([
            "probe",
            "--address",
            &format!("127.0.0.1:{}", workdir.metrics_port()),
        ]);
        if ready {
            command.arg("--ready");
        }
        command.env_clear().output().unwrap()
    };
    assert!(probe(false).status.success() && probe(true).status.success());
    // A wrong token on the control socket, a wrong password on the console.
    let ctl = Command::new(env!("CARGO_BIN_EXE_opcgw"))
        .args(["ctl", "--config"])
        .arg(&workdir.config)
        .arg("status")
        .current_dir(workdir.path())
        .env_clear()
        .env(
            "OPCGW_CONTROL__TOKEN",
            "not-the-control-token-0123456789abcdef",
        )
        .output()
        .unwrap();
    assert!(!ctl.status.success(), "{ctl:?}");
    daemon.wait_for_events("control_auth_failed", 1, Duration::from_secs(5));
    let console = WebClient::basic(
        workdir.web_port(),
        crate::ua_client::USER,
        "wrong-password-42",
    );
    let web_ready = Instant::now() + Duration::from_secs(10);
    while console.get("/api/health").status != 401 {
        assert!(
            Instant::now() < web_ready,
            "the console never refused the password"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_events("config_reload_succeeded", 1, Duration::from_secs(10));

    let runtime = crate::support::client_runtime();
    let scrape = runtime.block_on(async {
        let port = workdir.opcua_port();
        let refused = crate::ua_client::connect(
            port,
            ua::crypto::SecurityPolicy::None,
            ua::types::MessageSecurityMode::None,
            crate::ua_client::USER,
            "not-the-password",
        )
        .await;
        assert!(refused.is_err());
        let ua = crate::ua_client::connect_none(port, TEST_PASSWORD).await;
        // Values flow: wait until a stored, streamed value is Good, then read and page history.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = ua.read("5100000100000001/temperature").await;
            if value.status().is_good() {
                break;
            }
            assert!(Instant::now() < deadline, "no Good value: {value:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let now = opcgw::model::Timestamp::now();
        let hour_ago = opcgw::opcua::nodes::ua_time(opcgw::model::Timestamp(now.0 - 3_600_000_000));
        let now = opcgw::opcua::nodes::ua_time(now);
        let (status, _, _) = ua
            .history(
                &ua.id("5100000100000001/temperature"),
                &crate::ua_client::history_action(hour_ago, now, 100, false),
                ua::types::ByteString::null(),
            )
            .await;
        assert!(status.is_good(), "{status}");
        // The session gauge is refreshed every second by the OPC UA actor.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let response = http.get("/metrics");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        ua.close().await;
        response.body
    });

    let parsed = parse(&scrape, "prometheus");
    for (family, kind) in [
        ("opcgw_samples_received", "counter"),
        ("opcgw_samples_stored", "counter"),
        ("opcgw_poll_cycle_duration_seconds", "histogram"),
        ("opcgw_upstream_state", "gauge"),
        ("opcgw_event_streams", "gauge"),
        ("opcgw_values", "gauge"),
        ("opcgw_opcua_sessions", "gauge"),
        ("opcgw_opcua_subscriptions", "gauge"),
        ("opcgw_opcua_request_duration_seconds", "histogram"),
        ("opcgw_storage_commit_duration_seconds", "histogram"),
        ("opcgw_storage_database_size_bytes", "gauge"),
        ("opcgw_actor_restarts", "counter"),
        ("opcgw_commands", "counter"),
        ("opcgw_config_reloads", "counter"),
        ("opcgw_auth_failures", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        assert_eq!(
            parsed.families.get(family).map(String::as_str),
            Some(kind),
            "family {family}: {:?}",
            parsed.families
        );
    }
    let at_least = |name: &str, labels: &[(&str, &str)], min: f64| {
        let value = parsed.value(name, labels);
        assert!(
            value >= min,
            "{name}{labels:?} = {value}, expected >= {min}"
        );
    };
    at_least("opcgw_samples_received_total", &[("source", "stream")], 1.0);
    at_least("opcgw_samples_stored_total", &[], 1.0);
    at_least("opcgw_poll_cycle_duration_seconds_count", &[], 1.0);
    at_least("opcgw_chirpstack_calls_total", &[], 1.0);
    assert_eq!(
        parsed.value("opcgw_upstream_state", &[("state", "connected")]),
        1.0
    );
    assert_eq!(
        parsed.value("opcgw_upstream_state", &[("state", "down")]),
        0.0
    );
    // The demo: 2 applications x 3 devices, every device streamed.
    assert_eq!(
        parsed.value("opcgw_event_streams", &[("status", "open")]),
        6.0
    );
    assert_eq!(
        parsed.value("opcgw_event_streams", &[("status", "failing")]),
        0.0
    );
    at_least("opcgw_values", &[("quality", "good")], 1.0);
    assert_eq!(parsed.value("opcgw_opcua_sessions", &[]), 1.0);
    at_least(
        "opcgw_opcua_request_duration_seconds_count",
        &[("service", "read")],
        1.0,
    );
    at_least(
        "opcgw_opcua_request_duration_seconds_count",
        &[("service", "history_read")],
        1.0,
    );
    at_least("opcgw_storage_commit_duration_seconds_count", &[], 1.0);
    at_least("opcgw_storage_database_size_bytes", &[], 4096.0);
    at_least(
        "opcgw_config_reloads_total",
        &[("outcome", "unchanged")],
        1.0,
    );
    for surface in ["opcua", "control", "web"] {
        at_least("opcgw_auth_failures_total", &[("surface", surface)], 1.0);
    }
    at_least("process_resident_memory_bytes", &[], 1_048_576.0);
    at_least("process_open_fds", &[], 10.0);
    at_least(
        "opcgw_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );

    // OpenMetrics when asked for, and it parses too.
    let mut open = http.clone();
    open.basic = None;
    let response = send_accepting(&open, "application/openmetrics-text; version=1.0.0");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.ends_with("# EOF\n"));
    parse(body, "openmetrics");

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let gone = probe(false);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("cannot connect"),
        "{gone:?}"
    );
}

/// A GET of `/metrics` with an `Accept` header, answered in full (head and body).
fn send_accepting(client: &WebClient, accept: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", client.port)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// Debug builds inject a panic into the poller 300 ms after each of its starts: every restart
/// is counted under the actor's name, and `/readyz` says which actor is not running.
#[test]
fn restarts_are_counted_by_actor_and_readiness_names_what_is_down() {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[metrics]\nenabled = true\nport = 9464\n\n[supervisor]\nmax_restarts = 100\nbackoff_initial_ms = 1000\nbackoff_max_ms = 1000\n\n[opcua]",
    ));
    let mut daemon = Daemon::start(&workdir, &[("OPCGW_FAULT_INJECT", "poller@300".into())]);
    daemon.wait_for_events("actor_failed", 2, Duration::from_secs(20));
    let http = WebClient::anonymous(workdir.metrics_port());
    let parsed = parse(&http.get("/metrics").body, "prometheus");
    let restarts = parsed.value("opcgw_actor_restarts_total", &[("actor", "poller")]);
    assert!(restarts >= 2.0, "{restarts}");
    // Between a panic and the restart 1 s later the poller is not running.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = http.get("/readyz");
        if ready.status == 503 {
            assert!(
                ready.body.starts_with("not ready: poller: Backoff"),
                "{}",
                ready.body
            );
            break;
        }
        assert!(Instant::now() < deadline, "always ready: {ready:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http.get("/healthz").status, 200, "alive all the same");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
