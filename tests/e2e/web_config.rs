//! Configuration editing through the console of the real binary: an application, a device with
//! metrics and a command created over HTTP show in the console and as OPC UA variables while an
//! OPC UA session stays up; a rename changes the browse name; a delete removes the nodes. A file
//! edited by hand is never overwritten: the edit answers 409 `ambient_drift` until the console
//! reloads it.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use ua::types::{AttributeId, NodeId, ObjectId, StatusCode, Variant};

use crate::support::{Daemon, Workdir, MINIMAL_CONFIG, TEST_PASSWORD};
use crate::ua_client::{connect_none, Ua};
use crate::web_client::WebClient;

const USER: &str = "opcua-user";
const DEVICE: &str = "00000000000000a2";

const WEB: &str = r#"
[web]
enabled = true
bind_address = "127.0.0.1"
port = 8080
"#;

fn config() -> String {
    // `[web]` before the application tree, as in config/config.example.toml.
    MINIMAL_CONFIG.replacen("[[application]]", &format!("{WEB}\n[[application]]"), 1)
}

/// The gateway, once the console can edit: the reload actor, which owns the file, starts last
/// (until then the configuration routes answer 503 `unavailable`).
fn start(workdir: &Workdir) -> Daemon {
    let daemon = Daemon::start(workdir, &[]);
    daemon.wait_for_events("web_server_started", 1, Duration::from_secs(30));
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    let client = WebClient::basic(workdir.web_port(), USER, TEST_PASSWORD);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client.get("/api/config");
        if answer.status == 200 {
            assert_eq!(answer.json()["editing"]["enabled"], true, "{answer:?}");
            return daemon;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(Instant::now() < deadline, "editing never became available");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn send(client: &WebClient, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let text = body.to_string();
    let answer = client.send(method, path, (method != "DELETE").then_some(text.as_str()));
    let json = if answer.body.is_empty() {
        Value::Null
    } else {
        answer.json()
    };
    (answer.status, json)
}

/// Polls the OPC UA children of `node` until `check` holds.
async fn browse_until(
    ua: &Ua,
    node: &NodeId,
    what: &str,
    check: impl Fn(&[(String, NodeId)]) -> bool,
) -> Vec<(String, NodeId)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let children = ua.children(node).await;
        if check(&children) {
            return children;
        }
        assert!(Instant::now() < deadline, "{what}: children {children:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(children: &[(String, NodeId)]) -> Vec<&str> {
    children.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_device_created_over_http_is_served_over_opc_ua_renamed_and_deleted_with_the_session_kept() {
    let workdir = Workdir::new(&config());
    let mut daemon = start(&workdir);
    let client = WebClient::sign_in(workdir.web_port(), USER, TEST_PASSWORD);
    let events = client.events();
    let generation = client.get_json("/api/applications")["generation"]
        .as_u64()
        .expect("a generation");

    let runtime = crate::support::client_runtime();
    runtime.block_on(async {
        let ua = connect_none(workdir.opcua_port(), TEST_PASSWORD).await;
        let objects: NodeId = ObjectId::ObjectsFolder.into();

        let (status, app) = send(
            &client,
            "POST",
            "/api/applications",
            &json!({"application_id": "app-2", "application_name": "Field"}),
        );
        assert_eq!(status, 201, "{app}");
        assert_eq!(app["class"], "topology");
        assert!(app["generation"].as_u64().unwrap() > generation, "{app}");
        events.wait_for("config", Duration::from_secs(10), |d| {
            d["generation"] == app["generation"]
        });

        let device = json!({
            "device_id": DEVICE,
            "device_name": "Probe",
            "read_metric": [
                {"metric_name": "Moisture", "chirpstack_metric_name": "moisture", "metric_type": "Float", "metric_unit": "%"},
                {"metric_name": "Battery", "chirpstack_metric_name": "battery", "metric_type": "Int"}
            ]
        });
        let (status, created) = send(&client, "POST", "/api/applications/app-2/devices", &device);
        assert_eq!(status, 201, "{created}");
        let command = json!({"command_name": "Interval", "command_id": 3, "command_port": 10,
            "command_type": "Int", "command_min": 1.0, "command_max": 3600.0});
        let (status, created) = send(
            &client,
            "POST",
            &format!("/api/applications/app-2/devices/{DEVICE}/commands"),
            &command,
        );
        assert_eq!(status, 201, "{created}");

        // The console lists the device at once (the answer waits until the edit is live).
        let devices = client.get_json("/api/devices");
        assert!(devices.to_string().contains(DEVICE), "{devices}");
        let detail = client.get_json(&format!("/api/applications/app-2/devices/{DEVICE}"));
        assert_eq!(detail["read_metric"].as_array().unwrap().len(), 2);
        assert_eq!(detail["command"][0]["command_name"], "Interval");

        // OPC UA: Objects/Field/Probe/{Moisture, Battery, Interval}, on the same session.
        let apps = browse_until(&ua, &objects, "the new application", |c| {
            names(c).contains(&"Field")
        })
        .await;
        let app_node = apps.iter().find(|(n, _)| n == "Field").unwrap().1.clone();
        assert_eq!(app_node, ua.id("app-2"));
        browse_until(&ua, &app_node, "the new device", |c| names(c) == ["Probe"]).await;
        let device_node = ua.id(DEVICE);
        let members = browse_until(&ua, &device_node, "its variables", |c| {
            let n = names(c);
            ["Moisture", "Battery", "Interval"].iter().all(|m| n.contains(m))
        })
        .await;
        assert!(members
            .iter()
            .any(|(n, id)| n == "Moisture" && *id == ua.id(&format!("{DEVICE}/Moisture"))));
        let moisture = ua.read(&format!("{DEVICE}/Moisture")).await;
        assert_eq!(moisture.status(), StatusCode::BadWaitingForInitialData);

        // Rename: same NodeId, new browse name.
        let update = json!({"device_name": "Probe North", "read_metric": device["read_metric"]});
        let (status, updated) = send(
            &client,
            "PUT",
            &format!("/api/applications/app-2/devices/{DEVICE}"),
            &update,
        );
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["command"][0]["command_name"], "Interval", "commands kept");
        browse_until(&ua, &app_node, "the renamed device", |c| {
            names(c) == ["Probe North"]
        })
        .await;
        let browse_name = ua.read_node(&device_node, AttributeId::BrowseName).await;
        assert!(
            matches!(&browse_name.value, Some(Variant::QualifiedName(q)) if q.name.as_ref() == "Probe North"),
            "{browse_name:?}"
        );

        // Delete: the nodes go; the session and the other variables stay.
        let (status, _) = send(
            &client,
            "DELETE",
            &format!("/api/applications/app-2/devices/{DEVICE}"),
            &Value::Null,
        );
        assert_eq!(status, 204);
        browse_until(&ua, &app_node, "the device gone", |c| c.is_empty()).await;
        let level = ua.read("0000000000000001/Level").await;
        assert_eq!(
            level.status(),
            StatusCode::BadWaitingForInitialData,
            "the session still serves the configured variables"
        );
        ua.close().await;
    });

    // Log lines reach the file through a non-blocking writer: wait for them rather than read
    // once (a loaded machine flushes later).
    let log_wait = Duration::from_secs(10);
    let created = daemon.wait_for_events("device_created", 1, log_wait);
    assert_eq!(created.len(), 1, "{created:?}");
    for field in [
        "source_ip=127.0.0.1",
        "user=opcua-user",
        "application_id=app-2",
        &format!("device_id={DEVICE}"),
        "generation=",
    ] {
        assert!(created[0].contains(field), "{field} in {created:?}");
    }
    for event in ["command_created", "device_updated", "device_deleted"] {
        assert_eq!(
            daemon.wait_for_events(event, 1, log_wait).len(),
            1,
            "{event}"
        );
    }
    let audit = client.get_json("/api/audit");
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for kind in [
        "application_created",
        "device_created",
        "command_created",
        "device_updated",
        "device_deleted",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    // The file holds the application (the device is gone again).
    let file = std::fs::read_to_string(&workdir.config).unwrap();
    assert!(file.contains("application_id = \"app-2\""), "{file}");
    assert!(!file.contains(DEVICE), "{file}");

    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn a_file_edited_by_hand_is_reloaded_before_the_console_edits_it() {
    let workdir = Workdir::new(&config());
    let mut daemon = start(&workdir);
    let client = WebClient::basic(workdir.web_port(), USER, TEST_PASSWORD);
    let app = json!({"application_id": "app-3", "application_name": "Orchard"});

    // Someone edits the file by hand (not reloaded yet).
    let by_hand = format!("{}\n# Added by hand: keep me.\n", config());
    workdir.write_config(&by_hand);
    let (status, refused) = send(&client, "POST", "/api/applications", &app);
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["reason"], "ambient_drift");
    assert_eq!(
        std::fs::read_to_string(&workdir.config).unwrap(),
        workdir.localize(&by_hand),
        "nothing written"
    );
    let rejected = daemon.wait_for_events("application_crud_rejected", 1, Duration::from_secs(10));
    assert!(
        rejected
            .iter()
            .any(|l| l.contains("application_id=app-3") && l.contains("reason=\"ambient_drift\"")),
        "{rejected:?}"
    );

    let (status, reloaded) = send(&client, "POST", "/api/config/reload", &json!({}));
    assert_eq!(status, 200, "{reloaded}");
    assert!(reloaded["generation"].as_u64().is_some(), "{reloaded}");
    // The log line may reach the log a moment after the answer.
    assert!(daemon
        .wait_for_events("config_reload_attempted", 1, Duration::from_secs(10))
        .iter()
        .any(|l| l.contains("trigger=\"web\"")));

    let (status, created) = send(&client, "POST", "/api/applications", &app);
    assert_eq!(status, 201, "{created}");
    let file = std::fs::read_to_string(&workdir.config).unwrap();
    assert!(file.contains("# Added by hand: keep me."), "{file}");
    assert!(file.contains("application_id = \"app-3\""), "{file}");

    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}
