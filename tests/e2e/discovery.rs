//! Discovery with the real binary: an application with `discover = true` and no devices
//! listed is served from ChirpStack's device profiles; devices added and deleted in ChirpStack
//! follow (`ctl discover`, SIGHUP) under both `on_device_removed` settings; what the file
//! writes wins; an outage, even across a restart, keeps the known devices.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use opcgw::chirpstack::simulator::{Simulator, SimulatorConfig, SimulatorHandle};
use opcgw::control::{ControlClient, Request};
use serde_json::Value;
use ua::types::{StatusCode, Variant};

use crate::support::{Daemon, Workdir, TEST_PASSWORD, TEST_TOKEN};
use crate::ua_client::{connect_none, wait_for, Ua};

const WAIT: Duration = Duration::from_secs(20);

async fn simulator(devices: usize) -> SimulatorHandle {
    Simulator::start(
        SimulatorConfig {
            api_token: TEST_TOKEN.into(),
            applications: 1,
            devices_per_application: devices,
            uplink_interval: Duration::from_millis(300),
            event_history: 0,
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("simulator starts")
}

/// A configuration discovering the simulator's application; `extra` goes into its table (a
/// written device, for one).
fn config(sim: &SimulatorHandle, removal: &str, extra: &str) -> String {
    let app = &sim.world().applications[0];
    format!(
        r#"
[chirpstack]
server_address = "{url}"
tenant_id = "{tenant}"
polling_frequency = 1
request_timeout_seconds = 3
delay = 1
discovery_interval_seconds = 3600
on_device_removed = "{removal}"

[opcua]
host_ip_address = "127.0.0.1"
host_port = 4840
stale_threshold_seconds = 2
bad_threshold_seconds = 4

[[application]]
application_name = "Fleet"
application_id = "{app_id}"
discover = true
{extra}
"#,
        url = sim.url(),
        tenant = sim.world().tenant_id,
        app_id = app.id,
    )
}

async fn ctl(workdir: &Workdir) -> ControlClient {
    let token = std::fs::read_to_string(workdir.path().join("run/control.token")).unwrap();
    ControlClient::connect(
        &workdir.path().join("run/opcgw.sock"),
        token.trim(),
        Duration::from_secs(10),
    )
    .await
    .expect("control socket")
}

async fn ask(client: &mut ControlClient, request: Request) -> Value {
    let response = client.request(&request).await.expect("response");
    assert!(response.ok, "{request:?}: {:?}", response.error);
    response.result.unwrap_or(Value::Null)
}

/// `ctl devices` as (device_id, origin).
async fn devices(client: &mut ControlClient) -> Vec<(String, String)> {
    let listed = ask(client, Request::Devices).await;
    let mut out: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device_id"].as_str().unwrap().to_string(),
                d["origin"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Waits until `id` reads with `status`; the value read then.
async fn wait_status(ua: &Ua, id: &str, status: StatusCode, within: Duration) -> Option<Variant> {
    let deadline = Instant::now() + within;
    loop {
        let read = ua.read(id).await;
        if read.status() == status {
            return read.value;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never read {status}: last {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn eui(sim: &SimulatorHandle, d: usize) -> String {
    sim.world().applications[0].devices[d].dev_eui.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_discovering_application_serves_its_devices_and_follows_chirpstack() {
    let sim = simulator(3).await;
    let (first, second, third) = (eui(&sim, 0), eui(&sim, 1), eui(&sim, 2));
    // The third device is added in ChirpStack while the gateway runs.
    assert!(sim.delete_device(&third));
    // The file writes the first device, reading valve_open (a STRING measurement in
    // ChirpStack) as a Bool named Valve: the file wins over what discovery finds.
    let written = format!(
        r#"
  [[application.device]]
  device_name = "Boiler"
  device_id = "{first}"

    [[application.device.read_metric]]
    metric_name = "Valve"
    chirpstack_metric_name = "valve_open"
    metric_type = "Bool"
"#
    );
    let workdir = Workdir::new(&config(&sim, "keep", &written));
    let mut daemon = Daemon::start(&workdir, &[]);
    let found = daemon.wait_for_events("discovery_succeeded", 1, WAIT);
    assert!(found[0].contains("listed=2"), "{found:?}");
    let skipped = daemon.events("discovery_measurement_skipped");
    assert!(
        skipped.len() == 1 && skipped[0].contains("key=\"debug_info\""),
        "the UNKNOWN measurement is skipped, once: {skipped:?}"
    );

    let ua = connect_none(workdir.opcua_port(), TEST_PASSWORD).await;
    // The discovered device: every measurement with its type, values from its uplinks.
    type IsTyped = fn(&Variant) -> bool;
    let expected_types: [(&str, IsTyped); 4] = [
        ("temperature", |v| matches!(v, Variant::Double(_))),
        ("counter", |v| matches!(v, Variant::Int64(_))),
        (
            "valve_open",
            |v| matches!(v, Variant::String(s) if ["true", "false"].contains(&s.as_ref())),
        ),
        ("mode", |v| matches!(v, Variant::String(_))),
    ];
    for (metric, is_typed) in expected_types {
        let id = format!("{second}/{metric}");
        let value = wait_status(&ua, &id, StatusCode::Good, WAIT).await.unwrap();
        assert!(is_typed(&value), "{id}: {value:?}");
    }
    // The values are the uplinks' (the device's time says which uplink).
    for metric in ["temperature", "counter", "mode"] {
        let read = ua.read(&format!("{second}/{metric}")).await;
        let at = opcgw::opcua::nodes::gateway_time(&read.source_timestamp.unwrap()).unwrap();
        let expected = sim.expected_value(&second, metric, at).unwrap();
        assert_eq!(
            read.value,
            Some(opcgw::opcua::nodes::variant_of(&expected)),
            "{metric} at {at:?}"
        );
    }
    assert_eq!(
        ua.read(&format!("{second}/debug_info")).await.status(),
        StatusCode::BadNodeIdUnknown
    );
    // The written device: its name and its typed metric; discovery adds what it lacks.
    let valve = wait_status(&ua, &format!("{first}/Valve"), StatusCode::Good, WAIT)
        .await
        .unwrap();
    assert!(matches!(valve, Variant::Boolean(_)), "{valve:?}");
    wait_status(&ua, &format!("{first}/temperature"), StatusCode::Good, WAIT).await;
    assert_eq!(
        ua.read(&format!("{first}/valve_open")).await.status(),
        StatusCode::BadNodeIdUnknown,
        "a measurement the file reads is not added twice"
    );
    let app_node = ua.id(&sim.world().applications[0].id);
    let names: Vec<String> = ua
        .children(&app_node)
        .await
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert!(names.contains(&"Boiler".to_string()), "{names:?}");
    assert!(
        names.contains(&sim.world().applications[0].devices[1].name),
        "ChirpStack's name: {names:?}"
    );
    let mut control = ctl(&workdir).await;
    assert_eq!(
        devices(&mut control).await,
        [
            (first.clone(), "configured".to_string()),
            (second.clone(), "discovered".to_string())
        ]
    );

    // A device added in ChirpStack appears after `ctl discover`, in the same session.
    let kept = ua
        .subscribe(&[ua.id(&format!("{first}/counter"))], false)
        .await;
    assert!(sim.add_device(&third));
    let outcome = ask(&mut control, Request::Discover).await;
    assert_eq!(outcome["outcome"], "succeeded", "{outcome}");
    assert_eq!(
        outcome["added_devices"],
        serde_json::json!([third]),
        "{outcome}"
    );
    wait_status(&ua, &format!("{third}/counter"), StatusCode::Good, WAIT).await;
    let count = kept.lock().unwrap().len();
    wait_for(&kept, WAIT, "the session's subscription goes on", |seen| {
        seen.len() > count
    })
    .await;
    // Nothing new: no change, no new generation.
    let again = ask(&mut control, Request::Discover).await;
    assert_eq!(again["added_devices"], serde_json::json!([]), "{again}");
    assert_eq!(again["generation"], outcome["generation"], "{again}");

    // Deleted in ChirpStack, kept: still served, its values ageing to Bad.
    assert!(sim.delete_device(&second));
    let outcome = ask(&mut control, Request::Discover).await;
    assert_eq!(outcome["gone"], 1, "{outcome}");
    assert_eq!(
        outcome["removed_devices"],
        serde_json::json!([]),
        "{outcome}"
    );
    wait_status(
        &ua,
        &format!("{second}/temperature"),
        StatusCode::BadNoCommunication,
        WAIT,
    )
    .await;

    // on_device_removed = "remove" and SIGHUP (which discovers again): gone from OPC UA.
    workdir.write_config(&config(&sim, "remove", &written));
    daemon.signal(Signal::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while ua.read(&format!("{second}/temperature")).await.status() != StatusCode::BadNodeIdUnknown {
        assert!(Instant::now() < deadline, "the deleted device stays served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        devices(&mut control).await,
        [
            (first.clone(), "configured".to_string()),
            (third.clone(), "discovered".to_string())
        ]
    );
    assert!(daemon.events("discovery_succeeded").len() >= 5);
    ua.close().await;
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(
        !daemon.lines().join("\n").contains(TEST_TOKEN),
        "the API token reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_keeps_the_discovered_devices_even_across_a_restart() {
    let sim = simulator(2).await;
    let workdir = Workdir::new(&config(&sim, "keep", ""));
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("discovery_succeeded", 1, WAIT);
    let mut control = ctl(&workdir).await;
    let known = devices(&mut control).await;
    assert_eq!(known.len(), 2, "{known:?}");

    sim.start_outage().await;
    let outcome = ask(&mut control, Request::Discover).await;
    assert_eq!(outcome["outcome"], "failed", "{outcome}");
    assert_eq!(
        devices(&mut control).await,
        known,
        "never an empty topology"
    );

    // A restart while ChirpStack is still down serves every known device from the start.
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("discovery_failed", 1, WAIT);
    let mut control = ctl(&workdir).await;
    assert_eq!(devices(&mut control).await, known);
    let ua = connect_none(workdir.opcua_port(), TEST_PASSWORD).await;
    let id = format!("{}/temperature", known[0].0);
    assert_ne!(ua.read(&id).await.status(), StatusCode::BadNodeIdUnknown);

    // ChirpStack back: the periodic retry (5 s after the failure) or an explicit one succeeds
    // (a retry that started just before the outage ended answers `failed` once more).
    sim.end_outage().await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let outcome = ask(&mut control, Request::Discover).await;
        if outcome["outcome"] == "succeeded" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no discovery after the outage: {outcome}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_status(&ua, &id, StatusCode::Good, WAIT).await;
    ua.close().await;
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
