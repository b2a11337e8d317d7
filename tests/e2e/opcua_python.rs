//! The same read / subscribe / history checks with an independent client: the Python `asyncua`
//! package (installed by `make test` into `.venv`), driving tests/python/opcua_client.py.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use opcgw::config::MetricType;
use opcgw::model::Timestamp;
use opcgw::storage::Store;
use serde_json::Value as Json;

use crate::opcua::{int_series, Gateway, PASSWORD};
use crate::poller::simulator;

pub(crate) fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The Python with `asyncua`: `$OPCGW_PYTHON`, or the venv `make test` creates.
pub(crate) fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("OPCGW_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = workspace().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with asyncua: run `make test` (it creates .venv with tests/python/requirements.txt) or set OPCGW_PYTHON"
    );
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_asyncua_client_reads_subscribes_pages_history_and_reads_aggregates() {
    let sim = simulator(|c| {
        c.devices_per_application = 1;
        c.uplink_interval = Duration::from_millis(300);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.stale_threshold_seconds = 2;
    config.opcua.bad_threshold_seconds = 4;
    let device = config.applications[0].devices[0].clone();
    let gauge = device
        .metrics
        .iter()
        .find(|m| m.metric_type == MetricType::Float && m.metric_name != "battery_mv")
        .expect("a Float uplink metric")
        .metric_name
        .clone();
    let counter = device
        .metrics
        .iter()
        .find(|m| m.metric_type == MetricType::Int)
        .expect("an Int metric")
        .metric_name
        .clone();
    // 25,000 rows of history on a metric of a device the simulator does not know, so no
    // live value adds to them: stored before start, 10 s apart, ending a day ago.
    let history_device = "70a0000000000001";
    let mut history_config = config.clone();
    history_config.applications[0]
        .devices
        .push(opcgw::config::DeviceConfig {
            device_name: "Archive".into(),
            device_id: history_device.into(),
            stale_threshold_seconds: None,
            metrics: vec![opcgw::config::MetricConfig {
                metric_name: counter.clone(),
                chirpstack_metric_name: counter.clone(),
                metric_type: MetricType::Int,
                metric_unit: None,
            }],
            commands: vec![],
        });
    const ROWS: i64 = 25_000;
    let start = Timestamp::now().saturating_sub(Duration::from_secs(86_400 + 10 * ROWS as u64));
    {
        let mut store = Store::open(&config.storage.database_path).unwrap();
        store
            .append(&int_series(history_device, &counter, start, ROWS))
            .unwrap();
    }
    let gw = Gateway::start(history_config, dir).await;
    // The server is up once a client gets in.
    gw.client().await.close().await;

    let metric_id = format!("{}/{gauge}", device.device_id);
    let history_id = format!("{history_device}/{counter}");
    let mut child = Command::new(python())
        .arg(workspace().join("tests/python/opcua_client.py"))
        .args([
            gw.port.to_string(),
            PASSWORD.to_string(),
            metric_id.clone(),
            history_id,
            ROWS.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python client");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut steps: Vec<Json> = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(90), rx.recv())
            .await
            .expect("the Python client stalled")
            .unwrap_or_else(|| panic!("the Python client ended early; steps so far: {steps:#?}"));
        if let Some(what) = line.strip_prefix("WAIT ") {
            match what {
                "outage" => sim.start_outage().await,
                "recovery" => sim.end_outage().await.unwrap(),
                other => panic!("unknown request {other}"),
            }
            writeln!(stdin, "GO").unwrap();
            stdin.flush().unwrap();
            continue;
        }
        let step: Json = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        let done = step["step"] == "done";
        steps.push(step);
        if done {
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the Python client failed: {steps:#?}");
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {steps:#?}"))
            .clone()
    };

    assert_eq!(step("wrong_password")["refused"], true, "{steps:#?}");
    let anonymous = step("anonymous");
    assert_eq!(anonymous["refused"], true, "{anonymous}");
    let cleartext = step("cleartext_password");
    assert_eq!(cleartext["refused"], true, "{cleartext}");
    assert!(
        cleartext["error"]
            .as_str()
            .unwrap_or("")
            .contains("IdentityTokenInvalid"),
        "{cleartext}"
    );
    assert!(
        !crate::logs::text().contains(PASSWORD),
        "the password reached the log"
    );
    assert_eq!(step("namespace")["index"], 2);
    let browse = step("browse");
    assert_eq!(browse["found"], browse["expected"], "{browse}");
    let read = step("read");
    assert_eq!(read["status"], "Good", "{read}");
    assert!(
        read["value"].is_number() && read["source"].is_string() && read["server"].is_string(),
        "{read}"
    );
    assert_eq!(step("values")["ok"], true, "{:#}", step("values"));
    assert_eq!(step("stale")["ok"], true, "{:#}", step("stale"));
    assert_eq!(step("recovered")["ok"], true, "{:#}", step("recovered"));
    let history = step("history");
    assert_eq!(history["rows"], ROWS, "{history}");
    assert_eq!(history["in_order"], true);
    assert_eq!(history["values_are_sequence"], true);
    let page = step("history_page");
    assert_eq!(page["rows"], 10_000, "{page}");
    assert_eq!(page["continuation"], true);
    // Hourly aggregates of rows 10 s apart valued 0, 1, 2, ...: hour h holds 360h..360h+359.
    let processed = step("processed");
    let average = &processed["average"];
    assert_eq!(average["status"], "Good", "{processed}");
    assert_eq!(average["values"], serde_json::json!([179.5, 539.5, 899.5]));
    assert_eq!(
        average["types"],
        serde_json::json!(["Double", "Double", "Double"])
    );
    assert_eq!(average["calculated"], serde_json::json!([true, true, true]));
    assert_eq!(average["hours"], serde_json::json!([0.0, 1.0, 2.0]));
    let maximum = &processed["maximum"];
    assert_eq!(
        maximum["values"],
        serde_json::json!([359, 719, 1079]),
        "{processed}"
    );
    assert_eq!(
        maximum["types"],
        serde_json::json!(["Int64", "Int64", "Int64"])
    );
    gw.stop().await;
}
