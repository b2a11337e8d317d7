//! The web console of the real binary, against the ChirpStack simulator (`opcgw demo`): Basic
//! and session sign-in, live values as storage has them, history downsampled in storage,
//! commands with an idempotency key and their states on the event stream, a bounded stop with
//! a stream open, sessions across a restart of the web actor, a taken port retried.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use opcgw::control::{ControlClient, Request};
use opcgw::model::{Sample, SampleOrigin, Timestamp, Value as Sampled};
use serde_json::{json, Value};

use crate::support::{Daemon, Workdir, MINIMAL_CONFIG, TEST_PASSWORD};
use crate::web_client::WebClient;

pub const USER: &str = "opcua-user";
pub(crate) const DEVICE: &str = "5100000100000001";

pub fn demo_config() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml"))
        .expect("read config/demo.toml")
}

/// `opcgw demo` (simulator on a free port, web console on the workdir's web port), once the
/// console listens.
pub fn console_daemon(workdir: &Workdir, extra_env: &[(&str, String)]) -> Daemon {
    let mut env = vec![(
        "OPCGW_CHIRPSTACK__SERVER_ADDRESS",
        format!("http://127.0.0.1:{}", crate::support::free_port()),
    )];
    env.extend(extra_env.iter().cloned());
    let daemon = Daemon::start_with(workdir, "demo", &env);
    daemon.wait_for_events("web_server_started", 1, Duration::from_secs(30));
    daemon
}

/// Polls `GET /api/devices` until `metric` of `device` has a value; returns that metric.
pub(crate) fn wait_for_value(client: &WebClient, device: &str, metric: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let devices = client.get_json("/api/devices");
        let found = devices["applications"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["devices"].as_array().cloned().unwrap_or_default())
            .find(|d| d["device_id"] == device)
            .and_then(|d| {
                d["metrics"]
                    .as_array()?
                    .iter()
                    .find(|m| m["metric_name"] == metric)
                    .cloned()
            })
            .unwrap_or(Value::Null);
        if !found["value"].is_null() {
            return found;
        }
        assert!(Instant::now() < deadline, "no value yet: {devices}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn scripts_use_basic_auth_and_get_a_challenge_without_it() {
    let workdir = Workdir::new(&demo_config());
    let daemon = console_daemon(&workdir, &[]);
    let started = daemon.events("web_server_started");
    assert!(
        started[0].contains(&format!("127.0.0.1:{}", workdir.web_port())),
        "the start line names the address: {started:?}"
    );
    let script = WebClient::basic(workdir.web_port(), USER, TEST_PASSWORD);
    let health = script.get("/api/health");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert_eq!(health.header("cache-control"), Some("no-store"));

    let anonymous = WebClient::anonymous(workdir.web_port()).get("/api/health");
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Basic realm=\"opcgw\"")
    );
    let wrong = WebClient::basic(workdir.web_port(), USER, "not-the-password").get("/api/status");
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(
        !daemon.lines().join("\n").contains(TEST_PASSWORD),
        "the password reached the log"
    );

    let status = script.get_json("/api/status");
    let roles: Vec<&str> = status["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .filter_map(|a| a["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["storage", "opcua", "poller", "web", "metrics", "control", "reload"],
        "{status}"
    );
    assert!(status["actors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["state"] == "running"));
    assert!(
        status["storage"]["bytes"].as_u64().unwrap_or(0) > 0,
        "{status}"
    );
}

/// The latest value of one metric as `opcgw ctl read` shows it: (value, source time in ms).
async fn ctl_read(workdir: &Workdir, device: &str, metric: &str) -> (Value, i64) {
    let token = std::fs::read_to_string(workdir.path().join("run/control.token"))
        .expect("the control token");
    let mut ctl = ControlClient::connect(
        &workdir.path().join("run/opcgw.sock"),
        token.trim(),
        Duration::from_secs(10),
    )
    .await
    .expect("connect to the control socket");
    let response = ctl
        .request(&Request::Read {
            device: device.into(),
            metric: Some(metric.into()),
        })
        .await
        .expect("ctl read");
    let read = response.result.expect("a read result");
    let time = read[0]["source_time"]
        .as_str()
        .and_then(Timestamp::parse_rfc3339)
        .expect("a source time");
    // ctl writes a value with its type: {"type": "Float", "value": 17.09}.
    (read[0]["value"]["value"].clone(), time.as_micros() / 1000)
}

#[test]
fn a_signed_in_browser_sees_the_simulators_values_as_storage_has_them_and_live() {
    let workdir = Workdir::new(&demo_config());
    let _daemon = console_daemon(&workdir, &[]);
    let browser = WebClient::sign_in(workdir.web_port(), USER, TEST_PASSWORD);
    let events = browser.events();
    assert_eq!(events.status, 200);
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert_eq!(events.header("x-accel-buffering"), Some("no"));
    assert_eq!(events.header("cache-control"), Some("no-store"));

    let shown = wait_for_value(&browser, DEVICE, "temperature");
    assert_eq!(shown["quality"], "good", "{shown}");
    let shown_time = Timestamp::parse_rfc3339(shown["timestamp"].as_str().unwrap())
        .unwrap()
        .as_micros()
        / 1000;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A new uplink may land between the two reads: the console's value is one of storage's.
    let stored_after = runtime.block_on(ctl_read(&workdir, DEVICE, "temperature"));
    let shown_again = wait_for_value(&browser, DEVICE, "temperature");
    assert!(
        (shown["value"] == stored_after.0 && shown_time == stored_after.1)
            || (shown_again["value"] == stored_after.0),
        "console {shown} / {shown_again} vs storage {stored_after:?}"
    );

    // A new uplink arrives on the open stream, with its value and quality.
    let live = events.wait_for("value", Duration::from_secs(20), |d| {
        d["device_id"] == DEVICE && d["metric"] == "temperature"
    });
    assert!(live["value"].is_number(), "{live}");
    assert_eq!(live["quality"], "good", "{live}");
    let one = browser.get_json(&format!("/api/devices/{DEVICE}"));
    assert_eq!(
        one["application_id"],
        "51a00000-0000-4000-8000-000000000001"
    );
    assert_eq!(
        browser.get("/api/devices/no-such-device").status,
        404,
        "an unknown device"
    );
}

/// Seven days of one metric at 10 s (60,480 rows), written before the gateway starts.
fn seed_week(workdir: &Workdir, device: &str, metric: &str, start: i64) {
    std::fs::create_dir_all(workdir.path().join("data")).unwrap();
    let mut store = opcgw::storage::Store::open(&workdir.path().join("data/demo.redb"))
        .expect("create the database");
    let rows: Vec<Sample> = (0..60_480i64)
        .map(|i| {
            let time = Timestamp::from_micros((start + i * 10) * 1_000_000);
            Sample {
                device_id: device.into(),
                metric: metric.into(),
                value: Sampled::Float((i % 100) as f64),
                source_time: time,
                received_time: time,
                origin: SampleOrigin::Uplink,
            }
        })
        .collect();
    for batch in rows.chunks(5_000) {
        store.append(batch).expect("append history");
    }
}

#[test]
fn a_weeks_history_comes_back_downsampled_in_storage_and_an_hour_raw() {
    let workdir = Workdir::new(&demo_config().replace("retention_days = 7", "retention_days = 30"));
    let device = "5100000200000003";
    let now = Timestamp::now().as_micros() / 1_000_000;
    let start = now - 7 * 86_400 - 3_600;
    seed_week(&workdir, device, "battery_mv", start);
    let _daemon = console_daemon(&workdir, &[]);
    let script = WebClient::basic(workdir.web_port(), USER, TEST_PASSWORD);
    let path = |from: i64, to: i64, max: usize| {
        format!(
            "/api/devices/{device}/metrics/battery_mv/history?from={from}&to={to}&max_points={max}"
        )
    };

    let week = script.get_json(&path(start, start + 7 * 86_400, 1_000));
    assert_eq!(week["downsampled"], true);
    let points = week["points"].as_array().expect("points");
    assert!(
        (900..=1_000).contains(&points.len()),
        "{} points",
        points.len()
    );
    let rows: u64 = points.iter().map(|p| p["n"].as_u64().unwrap()).sum();
    assert_eq!(rows, 60_480, "every row is in exactly one bucket");
    // The first bucket is [start, start + 604.8 s): rows 0..=60, values 0..=60.
    assert_eq!(points[0]["n"], 61, "{}", points[0]);
    assert_eq!(points[0]["min"], 0.0);
    assert_eq!(points[0]["max"], 60.0);
    assert_eq!(points[0]["avg"], 30.0);
    let (low, high) = points.iter().fold((f64::MAX, f64::MIN), |(l, h), p| {
        (
            l.min(p["min"].as_f64().unwrap()),
            h.max(p["max"].as_f64().unwrap()),
        )
    });
    assert_eq!((low, high), (0.0, 99.0));

    let hour = script.get_json(&path(start, start + 3_600, 1_000));
    assert_eq!(hour["downsampled"], false);
    let raw = hour["points"].as_array().unwrap();
    assert_eq!(raw.len(), 360);
    assert_eq!(raw[1]["v"], 1.0);
    assert_eq!(
        Timestamp::parse_rfc3339(raw[0]["t"].as_str().unwrap())
            .unwrap()
            .as_micros(),
        start * 1_000_000
    );
}

#[test]
fn a_command_posted_twice_with_one_key_is_one_command_whose_states_arrive_live() {
    let workdir = Workdir::new(&demo_config());
    let daemon = console_daemon(&workdir, &[]);
    let device = "5100000100000002";
    let browser = WebClient::sign_in(workdir.web_port(), USER, TEST_PASSWORD);
    let events = browser.events();
    let path = format!("/api/devices/{device}/commands/setpoint");
    let body = json!({"value": 42, "idempotency_key": "e2e-double-click-1"});
    let first = browser.post_json(&path, &body);
    let second = browser.post_json(&path, &body);
    assert_eq!(first.status, 202, "{first:?}");
    assert_eq!(second.status, 202, "{second:?}");
    let id = first.json()["id"].as_u64().expect("a command id");
    assert_eq!(
        second.json()["id"],
        id,
        "the same key answers the same command"
    );

    let out_of_range = browser.post_json(
        &path,
        &json!({"value": 500, "idempotency_key": "e2e-out-of-range"}),
    );
    assert_eq!(out_of_range.status, 422, "{out_of_range:?}");
    assert_eq!(out_of_range.json()["field"], "value");

    let acknowledged = events.wait_for("command", Duration::from_secs(30), |c| {
        c["id"] == id && c["state"] == "acknowledged"
    });
    assert_eq!(acknowledged["requested_by"], "web:opcua-user");
    assert_eq!(acknowledged["device_id"], device);

    let listed = browser.get_json(&format!("/api/commands?device={device}"));
    let commands = listed["commands"].as_array().expect("commands");
    assert_eq!(
        commands.len(),
        1,
        "one downlink for the double click: {listed}"
    );
    assert_eq!(commands[0]["id"], id);
    assert_eq!(
        daemon.events("command_queued").len(),
        1,
        "storage queued one command"
    );
}

#[test]
fn sigterm_with_an_open_event_stream_exits_within_the_shutdown_time() {
    let workdir = Workdir::new(&demo_config());
    let mut daemon = console_daemon(&workdir, &[]);
    let browser = WebClient::sign_in(workdir.web_port(), USER, TEST_PASSWORD);
    let events = browser.events();
    assert_eq!(events.status, 200);
    let script = WebClient::basic(workdir.web_port(), USER, TEST_PASSWORD);
    let other_stream = script.events();
    let asked = Instant::now();
    daemon.signal(Signal::SIGTERM);
    assert!(
        events.ends_within(Duration::from_secs(3)),
        "the event stream closes at shutdown"
    );
    assert!(other_stream.ends_within(Duration::from_secs(1)));
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", daemon.lines().join("\n"));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        asked.elapsed()
    );
    assert!(daemon.events("actor_stop_timeout").is_empty());
    assert_eq!(daemon.events("web_server_stopped").len(), 1);
}

#[test]
fn sessions_survive_a_restart_of_the_web_actor() {
    let workdir = Workdir::new(&demo_config());
    // The web actor panics 6 s after every start (debug builds): the supervisor restarts it.
    let daemon = console_daemon(&workdir, &[("OPCGW_FAULT_INJECT", "web@6000".into())]);
    let browser = WebClient::sign_in(workdir.web_port(), USER, TEST_PASSWORD);
    assert_eq!(browser.get("/api/session").status, 200);
    let events = browser.events();
    daemon.wait_for_events("web_server_started", 2, Duration::from_secs(20));
    assert!(
        events.ends_within(Duration::from_secs(2)),
        "the crashed server's streams end"
    );
    // The supervisor's line may reach the log file after the restarted server's own.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        let found = daemon
            .events("actor_started")
            .iter()
            .any(|l| l.contains("actor=\"web\"") && l.contains("restarts=1"));
        if found || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(restarted, "{}", daemon.lines().join("\n"));
    let session = browser.get("/api/session");
    assert_eq!(session.status, 200, "still signed in: {session:?}");
    assert_eq!(session.json()["user"], USER);
    assert_eq!(browser.get("/api/devices").status, 200);
}

#[test]
fn a_taken_web_port_is_retried_with_backoff_while_the_rest_runs() {
    let workdir = Workdir::new(&demo_config());
    let squatter =
        std::net::TcpListener::bind(("127.0.0.1", workdir.web_port())).expect("hold the web port");
    let daemon = Daemon::start_with(
        &workdir,
        "demo",
        &[(
            "OPCGW_CHIRPSTACK__SERVER_ADDRESS",
            format!("http://127.0.0.1:{}", crate::support::free_port()),
        )],
    );
    let failed = daemon.wait_for_events("actor_start_failed", 2, Duration::from_secs(20));
    assert!(
        failed.iter().all(|l| l.contains("actor=\"web\"")),
        "{failed:#?}"
    );
    assert!(failed[0].contains("cannot listen on"), "{}", failed[0]);
    let started: Vec<String> = daemon
        .events("actor_started")
        .iter()
        .filter_map(|l| crate::support::actor_of(l))
        .collect();
    for role in ["storage", "opcua", "poller", "control", "reload"] {
        assert!(
            started.iter().any(|r| r == role),
            "{role} runs: {started:?}"
        );
    }
    drop(squatter);
    daemon.wait_for_events("web_server_started", 1, Duration::from_secs(20));
    let script = WebClient::basic(workdir.web_port(), USER, TEST_PASSWORD);
    assert_eq!(script.get("/api/health").status, 200);
}

#[test]
fn a_disabled_console_listens_nowhere() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("web_console_disabled", 1, Duration::from_secs(20));
    daemon.wait_for_events("actor_started", 6, Duration::from_secs(20));
    assert!(daemon.events("web_server_started").is_empty());
}
