//! The OPC UA server against the running actor tree and the simulator, with a real client
//! over TCP (async-opcua here; the Python `asyncua` package in `opcua_python.rs`).

use std::sync::Arc;
use std::time::Duration;

use opcgw::chirpstack::simulator::{SimulatorConfig, SimulatorHandle};
use opcgw::config::{AppConfig, ConfigDiff, MetricType, Secret};
use opcgw::model::{Sample, SampleOrigin, Timestamp, Value};
use opcgw::opcua::nodes::{gateway_time, ua_time};
use opcgw::storage::Store;
use opcgw_actors::messages::StorageMsg;
use opcgw_actors::messages::{Common, ConfigUpdate, OpcUaMsg};
use opcgw_actors::storage_client::StorageClient;
use opcgw_actors::supervisor::{ChildState, SupervisorMsg};
use opcgw_actors::tree::{Tree, TreeOptions};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    AttributeId, ByteString, DataTypeId, DateTime, MessageSecurityMode, NodeId, ObjectId,
    StatusCode, Variant,
};

use crate::poller::{gateway_config, simulator};
use crate::support::{free_port, install_pki};
use crate::ua::{self, connect, connect_none, history_action, wait_for, Ua, USER};

pub const PASSWORD: &str = "opcua-test-password-5d1e";

/// A gateway tree with its OPC UA server on a free port, a test key pair, a database in
/// `dir`, and the simulator's world as configuration.
pub struct Gateway {
    pub tree: Tree,
    pub port: u16,
    /// Holds the database and PKI until the test ends.
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub fn config_for(sim: &SimulatorHandle, dir: &std::path::Path) -> AppConfig {
        let port = free_port();
        install_pki(&dir.join("pki"));
        gateway_config(sim, |c| {
            c.storage.database_path = dir.join("opcgw.redb");
            c.supervisor.backoff_initial_ms = 50;
            c.supervisor.backoff_max_ms = 200;
            c.control.enabled = false;
            c.storage.retention_days = 30;
            c.opcua.host_ip_address = "127.0.0.1".into();
            c.opcua.host_port = port;
            c.opcua.pki_dir = dir.join("pki");
            c.opcua.user_password = Secret::new(PASSWORD);
        })
    }

    pub async fn start(config: AppConfig, dir: tempfile::TempDir) -> Self {
        crate::logs::capture();
        let port = config.opcua.host_port;
        let tree = Tree::start(Arc::new(config), TreeOptions::default())
            .await
            .expect("tree starts");
        Self {
            tree,
            port,
            _dir: dir,
        }
    }

    pub async fn client(&self) -> Ua {
        connect_none(self.port, PASSWORD).await
    }

    pub async fn stop(self) {
        self.tree.handle.shutdown(Duration::from_secs(5)).await;
    }
}

async fn fast_simulator(tweak: impl FnOnce(&mut SimulatorConfig)) -> SimulatorHandle {
    simulator(|c| {
        c.uplink_interval = Duration::from_millis(300);
        tweak(c);
    })
    .await
}

/// Waits until every metric of the world reads Good.
async fn wait_all_good(ua: &Ua, ids: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut bad = Vec::new();
        for id in ids {
            let dv = ua.read(id).await;
            if dv.status() != StatusCode::Good {
                bad.push(format!("{id}: {}", dv.status()));
            }
        }
        if bad.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "values never all Good: {bad:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn metric_ids(config: &AppConfig) -> Vec<String> {
    config
        .applications
        .iter()
        .flat_map(|a| &a.devices)
        .flat_map(|d| {
            d.metrics
                .iter()
                .map(move |m| format!("{}/{}", d.device_id, m.metric_name))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browse_finds_every_node_and_reads_give_device_values_and_timestamps() {
    let sim = simulator(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    assert_eq!(ua.ns, 2, "the gateway namespace is ns=2");

    // Browse: Objects -> applications -> devices -> metrics and commands, by browse name.
    let objects = ua.children(&ObjectId::ObjectsFolder.into()).await;
    for app in &config.applications {
        let (_, app_node) = objects
            .iter()
            .find(|(name, _)| name == &app.application_name)
            .unwrap_or_else(|| panic!("application {} not under Objects", app.application_name));
        assert_eq!(app_node, &ua.id(&app.application_id));
        let devices = ua.children(app_node).await;
        for device in &app.devices {
            let (_, device_node) = devices
                .iter()
                .find(|(name, _)| name == &device.device_name)
                .unwrap_or_else(|| panic!("device {} not found", device.device_name));
            assert_eq!(device_node, &ua.id(&device.device_id));
            let members = ua.children(device_node).await;
            for metric in &device.metrics {
                let id = format!("{}/{}", device.device_id, metric.metric_name);
                assert!(
                    members
                        .iter()
                        .any(|(name, node)| name == &metric.metric_name && node == &ua.id(&id)),
                    "metric {id} not browsable; members {members:?}"
                );
                // DataType per metric_type, historizing, engineering units when configured.
                let data_type = ua.read_node(&ua.id(&id), AttributeId::DataType).await;
                let expected: NodeId = match metric.metric_type {
                    MetricType::Float => DataTypeId::Double.into(),
                    MetricType::Int => DataTypeId::Int64.into(),
                    MetricType::Bool => DataTypeId::Boolean.into(),
                    MetricType::String => DataTypeId::String.into(),
                };
                assert_eq!(data_type.value, Some(Variant::from(expected)), "{id}");
                let historizing = ua.read_node(&ua.id(&id), AttributeId::Historizing).await;
                assert_eq!(historizing.value, Some(Variant::Boolean(true)));
                let units = ua.children(&ua.id(&id)).await;
                assert_eq!(
                    units.iter().any(|(name, _)| name == "EngineeringUnits"),
                    metric.metric_unit.is_some(),
                    "{id}: {units:?}"
                );
            }
            for command in &device.commands {
                assert!(members
                    .iter()
                    .any(|(name, _)| name == &command.command_name));
            }
        }
    }
    assert!(objects.iter().any(|(name, _)| name == "Gateway"));

    // Read: Good, the simulator's uplink value at the device timestamp. One uplink per
    // device (no others: the interval is an hour), then every stored latest value is it.
    let ids = metric_ids(&config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while sim.open_streams() < sim.world().device_count() {
        assert!(tokio::time::Instant::now() < deadline, "streams not open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for device in sim.world().devices() {
        sim.emit_uplink_now(&device.dev_eui);
    }
    let storage = StorageClient::new(
        gw.tree.handle.lookup::<StorageMsg>("storage").await,
        Duration::from_secs(2),
    );
    // (battery_mv is not in uplinks: ChirpStack's aggregates are its only source.)
    let latest = loop {
        let latest = storage.latest(None).await.unwrap_or_default();
        let uplinked = |device: &str| {
            latest
                .iter()
                .any(|l| l.device_id == device && l.origin == SampleOrigin::Uplink)
        };
        if latest.len() == ids.len() && sim.world().devices().all(|d| uplinked(&d.dev_eui)) {
            break latest;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "uplinks not stored: {latest:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait_all_good(&ua, &ids).await;
    let names: std::collections::HashMap<String, String> = config
        .applications
        .iter()
        .flat_map(|a| &a.devices)
        .flat_map(|d| {
            d.metrics.iter().map(move |m| {
                (
                    format!("{}/{}", d.device_id, m.metric_name),
                    m.chirpstack_metric_name.clone(),
                )
            })
        })
        .collect();
    for stored in &latest {
        let id = format!("{}/{}", stored.device_id, stored.metric);
        let dv = ua.read(&id).await;
        let source = dv.source_timestamp.as_ref().and_then(gateway_time);
        assert_eq!(
            source,
            Some(stored.source_time),
            "{id}: SourceTimestamp is the device time"
        );
        let server = dv.server_timestamp.as_ref().and_then(gateway_time).unwrap();
        assert_eq!(
            server, stored.received_time,
            "{id}: ServerTimestamp is the gateway time"
        );
        if stored.origin != SampleOrigin::Uplink {
            assert_eq!(
                dv.value,
                Some(opcgw::opcua::nodes::variant_of(&stored.value)),
                "{id}"
            );
            continue;
        }
        let expected = sim
            .expected_value(&stored.device_id, &names[&id], stored.source_time)
            .unwrap_or_else(|| panic!("simulator has no value for {id}"));
        assert_eq!(
            dv.value,
            Some(opcgw::opcua::nodes::variant_of(&expected)),
            "{id}"
        );
    }

    // The Gateway folder.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let gateway = |name: &str| format!("Gateway/{name}");
    let last_poll = ua.read(&gateway("LastPollTimestamp")).await;
    assert_eq!(last_poll.status(), StatusCode::Good);
    assert!(matches!(last_poll.value, Some(Variant::DateTime(_))));
    assert_eq!(
        ua.read(&gateway("UpstreamState")).await.value,
        Some(Variant::from("connected"))
    );
    assert_eq!(
        ua.read(&gateway("GoodValues")).await.value,
        Some(Variant::UInt32(ids.len() as u32))
    );
    let health = ua.children(&ua.id("Gateway/Health")).await;
    for role in ["storage", "opcua", "poller", "web", "control", "reload"] {
        assert!(
            health.iter().any(|(name, _)| name == role),
            "{role} health missing: {health:?}"
        );
    }
    let opcua_health = ua.read("Gateway/Health/opcua").await;
    assert_eq!(opcua_health.value, Some(Variant::from("running")));
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_see_new_values_then_staleness_then_recovery_with_and_without_a_filter() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.stale_threshold_seconds = 2;
    config.opcua.bad_threshold_seconds = 4;
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    // The gauge changes at every uplink.
    let id = metric_ids(&config)
        .into_iter()
        .find(|id| {
            config.applications[0].devices[0]
                .metrics
                .iter()
                .any(|m| id.ends_with(&m.metric_name) && m.metric_type == MetricType::Float)
        })
        .unwrap();
    wait_all_good(&ua, std::slice::from_ref(&id)).await;
    let filtered = ua.subscribe(&[ua.id(&id)], true).await;
    let unfiltered = ua.subscribe(&[ua.id(&id)], false).await;
    for log in [&filtered, &unfiltered] {
        wait_for(
            log,
            Duration::from_secs(10),
            "three Good value changes",
            |seen| {
                seen.iter()
                    .filter(|(_, dv)| dv.status() == StatusCode::Good)
                    .count()
                    >= 3
            },
        )
        .await;
    }

    // Outage: no new values; the last one turns Uncertain, then Bad — notified to both.
    sim.start_outage().await;
    for log in [&filtered, &unfiltered] {
        wait_for(log, Duration::from_secs(15), "Uncertain then Bad", |seen| {
            let statuses: Vec<StatusCode> = seen.iter().map(|(_, dv)| dv.status()).collect();
            let uncertain = statuses
                .iter()
                .position(|s| *s == StatusCode::UncertainLastUsableValue);
            let bad = statuses
                .iter()
                .rposition(|s| *s == StatusCode::BadNoCommunication);
            matches!((uncertain, bad), (Some(u), Some(b)) if u < b)
        })
        .await;
        let seen = log.lock().unwrap().clone();
        let last_good = seen
            .iter()
            .rev()
            .find(|(_, dv)| dv.status() == StatusCode::Good)
            .unwrap();
        let stale = seen
            .iter()
            .find(|(_, dv)| dv.status() == StatusCode::UncertainLastUsableValue)
            .unwrap();
        // The stale notification carries the last value, stamped when it went stale.
        assert_eq!(stale.1.value, last_good.1.value);
        assert!(stale.1.source_timestamp.unwrap() > last_good.1.source_timestamp.unwrap());
    }
    let read = ua.read(&id).await;
    assert_eq!(read.status(), StatusCode::BadNoCommunication);

    // Recovery: Good again.
    sim.end_outage().await.unwrap();
    for log in [&filtered, &unfiltered] {
        wait_for(
            log,
            Duration::from_secs(20),
            "Good after recovery",
            |seen| {
                let bad = seen
                    .iter()
                    .rposition(|(_, dv)| dv.status() == StatusCode::BadNoCommunication);
                let good = seen
                    .iter()
                    .rposition(|(_, dv)| dv.status() == StatusCode::Good);
                matches!((bad, good), (Some(b), Some(g)) if g > b)
            },
        )
        .await;
    }
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_accepts_the_password_and_refuses_a_wrong_one_with_an_audit_event() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.endpoints = opcgw::config::OPCUA_ENDPOINT_IDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    config.opcua.max_connections = 50;
    // The test client's certificate is not in pki/trusted.
    config.opcua.trust_client_cert = true;
    let gw = Gateway::start(config.clone(), dir).await;
    // Wait for the server.
    gw.client().await.close().await;
    let before = crate::logs::events("opcua_auth_failed", "").len();
    let wrong = "not-the-password-0000";
    for id in opcgw::config::OPCUA_ENDPOINT_IDS {
        let (policy, mode) = opcgw::opcua::server::endpoint_security(id).unwrap();
        let ok = connect(gw.port, policy, mode, USER, PASSWORD).await;
        assert!(ok.is_ok(), "{id}: right password refused: {:?}", ok.err());
        ok.unwrap().close().await;
        let refused = connect(gw.port, policy, mode, USER, wrong).await;
        let status = refused
            .err()
            .unwrap_or_else(|| panic!("{id}: wrong password accepted"));
        assert!(
            matches!(
                status,
                StatusCode::BadUserAccessDenied | StatusCode::BadIdentityTokenRejected
            ),
            "{id}: {status}"
        );
        let intruder = connect(gw.port, policy, mode, "mallory\nadmin", PASSWORD).await;
        assert!(intruder.is_err(), "{id}: wrong user accepted");
    }
    let events = crate::logs::events("opcua_auth_failed", "");
    let new = &events[before..];
    assert!(
        new.len() >= 2 * opcgw::config::OPCUA_ENDPOINT_IDS.len(),
        "one audit event per refusal: {new:#?}"
    );
    assert!(new
        .iter()
        .any(|e| e.contains("password_mismatch") && e.contains(USER)));
    assert!(new
        .iter()
        .any(|e| e.contains("user_mismatch") && e.contains("mallory\\nadmin")));
    let text = crate::logs::text();
    assert!(
        !text.contains(wrong) && !text.contains(PASSWORD),
        "a password reached the log"
    );

    // The None endpoint advertises an encrypted password policy.
    let endpoints = ua::endpoints(gw.port).await;
    let none = endpoints
        .iter()
        .find(|e| e.security_mode == MessageSecurityMode::None)
        .expect("None endpoint");
    let token = none
        .user_identity_tokens
        .as_ref()
        .unwrap()
        .iter()
        .find(|t| t.token_type == opcua::types::UserTokenType::UserName)
        .expect("user name token policy");
    assert_eq!(
        token.security_policy_uri.as_ref(),
        SecurityPolicy::Basic256Sha256.to_uri()
    );
    assert!(
        !none
            .user_identity_tokens
            .as_ref()
            .unwrap()
            .iter()
            .any(|t| t.token_type == opcua::types::UserTokenType::Anonymous),
        "anonymous is off by default"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_limit_refuses_one_more_session() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.max_connections = 2;
    config.opcua.max_subscriptions_per_session = 1;
    config.opcua.max_monitored_items_per_sub = 2;
    let ids = metric_ids(&config);
    let gw = Gateway::start(config, dir).await;
    let first = gw.client().await;
    // Subscriptions per session and monitored items per subscription are capped too.
    let nodes: Vec<NodeId> = ids.iter().take(3).map(|id| first.id(id)).collect();
    let items = first.try_subscribe(&nodes).await;
    assert!(
        matches!(
            items.as_deref(),
            Err(&StatusCode::BadTooManyMonitoredItems)
                | Ok([
                    StatusCode::Good,
                    StatusCode::Good,
                    StatusCode::BadTooManyMonitoredItems
                ])
        ),
        "{items:?}"
    );
    assert_eq!(
        first.try_subscribe(&nodes[..1]).await,
        Err(StatusCode::BadTooManySubscriptions)
    );
    let second = gw.client().await;
    let third = connect(
        gw.port,
        SecurityPolicy::None,
        MessageSecurityMode::None,
        USER,
        PASSWORD,
    )
    .await;
    assert_eq!(third.err(), Some(StatusCode::BadTooManySessions));
    assert!(
        crate::logs::text().contains("event=\"opcua_limits_configured\"")
            || crate::logs::text().contains("opcua_limits_configured")
    );
    first.close().await;
    // A freed slot is usable again.
    let again = gw.client().await;
    again.close().await;
    second.close().await;
    gw.stop().await;
}

/// Samples of one Int series, one per 10 s.
pub fn int_series(device: &str, metric: &str, start: Timestamp, count: i64) -> Vec<Sample> {
    (0..count)
        .map(|i| Sample {
            device_id: device.into(),
            metric: metric.into(),
            value: Value::Int(i),
            source_time: Timestamp(start.0 + i * 10_000_000),
            received_time: Timestamp(start.0 + i * 10_000_000),
            origin: SampleOrigin::Uplink,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_read_pages_a_large_window_with_continuation_points() {
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let device = &config.applications[0].devices[0];
    let metric = device
        .metrics
        .iter()
        .find(|m| m.metric_type == MetricType::Int)
        .expect("an Int metric");
    let (device_id, metric_name) = (device.device_id.clone(), metric.metric_name.clone());
    // 60,000 rows a week ago (10 s apart: ~7 days), stored before the gateway starts.
    let start = Timestamp::now().saturating_sub(Duration::from_secs(8 * 86_400));
    const ROWS: i64 = 60_000;
    {
        let mut store = Store::open(&config.storage.database_path).unwrap();
        for chunk in int_series(&device_id, &metric_name, start, ROWS).chunks(10_000) {
            store.append(chunk).unwrap();
        }
    }
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let node = ua.id(&format!("{device_id}/{metric_name}"));
    let window_end = Timestamp(start.0 + ROWS * 10_000_000);

    // Forward, 10,000 per call: six calls, every row once, in order.
    let action = history_action(ua_time(start), ua_time(window_end), 10_000, false);
    let mut continuation = ByteString::null();
    let mut rows = Vec::new();
    let mut calls = 0;
    loop {
        let (status, values, next) = ua.history(&node, &action, continuation).await;
        assert!(status.is_good(), "call {calls}: {status}");
        assert!(values.len() <= 10_000);
        rows.extend(values);
        calls += 1;
        if next.is_null_or_empty() {
            break;
        }
        continuation = next;
        assert!(calls < 20, "continuation never ends");
    }
    assert_eq!(calls, 6);
    assert_eq!(rows.len(), ROWS as usize);
    for (i, dv) in rows.iter().enumerate() {
        assert_eq!(dv.value, Some(Variant::Int64(i as i64)), "row {i}");
        assert_eq!(
            dv.source_timestamp.as_ref().and_then(gateway_time),
            Some(Timestamp(start.0 + i as i64 * 10_000_000))
        );
    }

    // StartTime > EndTime reads backwards (Part 11 §6.4.3.2), StartTime included.
    let last = Timestamp(start.0 + (ROWS - 1) * 10_000_000);
    let backwards = history_action(ua_time(last), ua_time(start), 5, false);
    let (status, values, next) = ua.history(&node, &backwards, ByteString::null()).await;
    assert!(status.is_good());
    assert!(!next.is_null_or_empty());
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    let expected: Vec<Variant> = (ROWS - 5..ROWS).rev().map(Variant::Int64).collect();
    assert_eq!(got, expected);

    // Bounds: the value at or before StartTime, and at or after EndTime.
    let mid = Timestamp(start.0 + 100 * 10_000_000 + 5_000_000); // between rows 100 and 101
    let mid_end = Timestamp(start.0 + 105 * 10_000_000 + 5_000_000);
    let bounded = history_action(ua_time(mid), ua_time(mid_end), 0, true);
    let (status, values, _) = ua.history(&node, &bounded, ByteString::null()).await;
    assert!(status.is_good());
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    let expected: Vec<Variant> = (100..=106).map(Variant::Int64).collect();
    assert_eq!(got, expected);

    // Only StartTime with numValuesPerNode: that many forward from it, and the read is
    // complete (no continuation point); only EndTime: backwards.
    let start_only = history_action(ua_time(mid), DateTime::null(), 3, false);
    let (_, values, next) = ua.history(&node, &start_only, ByteString::null()).await;
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    assert_eq!(got, (101..=103).map(Variant::Int64).collect::<Vec<_>>());
    assert!(next.is_null_or_empty(), "a start-only read is complete");
    let end_only = history_action(DateTime::null(), ua_time(mid), 2, false);
    let (_, values, next) = ua.history(&node, &end_only, ByteString::null()).await;
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    assert_eq!(got, vec![Variant::Int64(100), Variant::Int64(99)]);
    assert!(next.is_null_or_empty());

    // StartTime = EndTime: the value at that instant, once, even with bounds.
    let row_100 = Timestamp(start.0 + 100 * 10_000_000);
    let instant = history_action(ua_time(row_100), ua_time(row_100), 0, true);
    let (_, values, _) = ua.history(&node, &instant, ByteString::null()).await;
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    assert_eq!(got, vec![Variant::Int64(100)]);

    // A window starting before 1970: no bound before it (BadBoundNotFound), then the rows.
    let early = history_action(
        DateTime::ymd(1960, 1, 1),
        ua_time(Timestamp(start.0 + 3 * 10_000_000)),
        0,
        true,
    );
    let (status, values, _) = ua.history(&node, &early, ByteString::null()).await;
    assert!(status.is_good(), "{status}");
    assert_eq!(values[0].status(), StatusCode::BadBoundNotFound);
    let got: Vec<Variant> = values[1..]
        .iter()
        .filter_map(|dv| dv.value.clone())
        .collect();
    assert_eq!(got, (0..=3).map(Variant::Int64).collect::<Vec<_>>());

    // Several nodes in one call share the message size: every node gets rows and a
    // continuation point, instead of a response too large to send.
    let all = history_action(ua_time(start), ua_time(window_end), 0, false);
    let results = ua
        .history_many(&[node.clone(), node.clone(), node.clone()], &all)
        .await
        .expect("a response that fits");
    for (status, rows, more) in &results {
        assert!(status.is_good() && *rows > 1_000 && *more, "{results:?}");
    }

    // Errors: no time at all, an unknown node, an empty window.
    let (status, _, _) = ua
        .history(
            &node,
            &history_action(DateTime::null(), DateTime::null(), 10, false),
            ByteString::null(),
        )
        .await;
    assert_eq!(status, StatusCode::BadHistoryOperationInvalid);
    let (status, _, _) = ua
        .history(&ua.id("no-such/metric"), &action, ByteString::null())
        .await;
    assert_eq!(status, StatusCode::BadNodeIdUnknown);
    let future = Timestamp::now().saturating_add(Duration::from_secs(86_400));
    let empty = history_action(
        ua_time(future),
        ua_time(future.saturating_add(Duration::from_secs(60))),
        0,
        false,
    );
    let (status, values, _) = ua.history(&node, &empty, ByteString::null()).await;
    assert_eq!((status, values.len()), (StatusCode::GoodNoData, 0));
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_to_a_command_node_is_queued_durably_and_reaches_the_simulator() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let device = &config.applications[0].devices[0];
    let command = &device.commands[0];
    let node = ua.id(&format!("{}/{}", device.device_id, command.command_name));
    let status_node = format!("{}/{}/Status", device.device_id, command.command_name);

    assert_eq!(ua.write(&node, Variant::Int64(42)).await, StatusCode::Good);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let downlinks = sim.downlinks();
        if let Some(d) = downlinks.iter().find(|d| d.dev_eui == device.device_id) {
            assert_eq!(d.f_port, u32::from(command.command_port));
            assert_eq!(d.confirmed, command.command_confirmed);
            assert_eq!(d.data, vec![42]);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no downlink at the simulator"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The written value reads back; the Status child follows the command to acknowledged.
    assert_eq!(
        ua.read_node(&node, AttributeId::Value).await.value,
        Some(Variant::Int64(42))
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = ua.read(&status_node).await;
        if let Some(Variant::String(text)) = &status.value {
            if text.as_ref().contains("acknowledged") {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never acknowledged: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Refusals: wrong type, out of range, not writable, unknown.
    let before = sim.downlinks().len();
    assert_eq!(
        ua.write(&node, Variant::from("42")).await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(
        ua.write(&node, Variant::Double(4.0)).await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(
        ua.write(&node, Variant::Int64(101)).await,
        StatusCode::BadOutOfRange
    );
    assert_eq!(
        ua.write(&node, Variant::Int32(-1)).await,
        StatusCode::BadOutOfRange
    );
    let metric = ua.id(&format!(
        "{}/{}",
        device.device_id, device.metrics[0].metric_name
    ));
    assert_eq!(
        ua.write(&metric, Variant::Double(1.0)).await,
        StatusCode::BadNotWritable
    );
    assert_eq!(
        ua.write(&ua.id("nope/nothing"), Variant::Int64(1)).await,
        StatusCode::BadNodeIdUnknown
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sim.downlinks().len(),
        before,
        "a refused write sent a downlink"
    );
    assert!(crate::logs::text().contains("opcua_command_written"));
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topology_change_is_visible_to_a_connected_client_without_reconnecting() {
    let sim = fast_simulator(|c| {
        c.applications = 2;
        c.devices_per_application = 2;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    // Start with one device; the reload adds the second, removes a metric of the first and
    // renames it.
    let mut small = config.clone();
    small.applications[0].devices.truncate(1);
    let gw = Gateway::start(small.clone(), dir).await;
    let ua = gw.client().await;
    let first = small.applications[0].devices[0].clone();
    let kept = format!("{}/{}", first.device_id, first.metrics[0].metric_name);
    let removed = format!("{}/{}", first.device_id, first.metrics[1].metric_name);
    let added_device = config.applications[0].devices[1].clone();
    wait_all_good(&ua, &[kept.clone(), removed.clone()]).await;
    let kept_log = ua.subscribe(&[ua.id(&kept)], false).await;
    let removed_log = ua.subscribe(&[ua.id(&removed)], false).await;
    assert!(ua
        .children(&ua.id(&small.applications[0].application_id))
        .await
        .iter()
        .all(|(name, _)| name != &added_device.device_name));

    let events = ua.subscribe_server_events().await;
    let mut next = config.clone();
    next.applications[0].devices[0].metrics.remove(1);
    next.applications[0].devices[0].device_name = "Renamed".into();
    let update = ConfigUpdate {
        diff: Arc::new(ConfigDiff::between(&small, &next)),
        config: Arc::new(next.clone()),
        generation: 1,
    };
    gw.tree
        .handle
        .supervisor
        .cast(SupervisorMsg::Broadcast(update))
        .unwrap();

    // The same session sees the new device, the rename, and the removed metric gone.
    let app = ua.id(&next.applications[0].application_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let devices = ua.children(&app).await;
        let has_new = devices.iter().any(|(name, node)| {
            name == &added_device.device_name && node == &ua.id(&added_device.device_id)
        });
        let renamed = devices.iter().any(|(name, _)| name == "Renamed");
        if has_new && renamed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "topology not applied: {devices:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let members = ua.children(&ua.id(&first.device_id)).await;
    assert!(members
        .iter()
        .all(|(name, _)| name != &first.metrics[1].metric_name));
    assert_eq!(
        ua.read(&removed).await.status(),
        StatusCode::BadNodeIdUnknown
    );
    wait_for(
        &removed_log,
        Duration::from_secs(5),
        "removal notified",
        |seen| {
            seen.iter()
                .any(|(_, dv)| dv.status() == StatusCode::BadNodeIdUnknown)
        },
    )
    .await;
    // Clients that watch the Server object hear of the change.
    let model_change: NodeId = opcua::types::ObjectTypeId::BaseModelChangeEventType.into();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !events
        .lock()
        .unwrap()
        .contains(&Variant::from(model_change.clone()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no model change event: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Values of the new device arrive; the untouched subscription keeps delivering.
    let new_metric = format!(
        "{}/{}",
        added_device.device_id, added_device.metrics[0].metric_name
    );
    wait_all_good(&ua, &[new_metric]).await;
    let count = kept_log.lock().unwrap().len();
    wait_for(
        &kept_log,
        Duration::from_secs(10),
        "the kept metric still notifies",
        |seen| seen.len() > count,
    )
    .await;

    // Moving a device to another application keeps its metrics browsable under it.
    let mut moved = next.clone();
    let device = moved.applications[0].devices.remove(1);
    moved.applications[1].devices.push(device.clone());
    let update = ConfigUpdate {
        diff: Arc::new(ConfigDiff::between(&next, &moved)),
        config: Arc::new(moved.clone()),
        generation: 2,
    };
    gw.tree
        .handle
        .supervisor
        .cast(SupervisorMsg::Broadcast(update))
        .unwrap();
    let target = ua.id(&moved.applications[1].application_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let devices = ua.children(&target).await;
        if devices
            .iter()
            .any(|(_, node)| node == &ua.id(&device.device_id))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "device not moved: {devices:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ua
        .children(&ua.id(&moved.applications[0].application_id))
        .await
        .iter()
        .all(|(_, node)| node != &ua.id(&device.device_id)));
    let members = ua.children(&ua.id(&device.device_id)).await;
    for metric in &device.metrics {
        assert!(
            members.iter().any(|(name, _)| name == &metric.metric_name),
            "{} not browsable after the move: {members:?}",
            metric.metric_name
        );
    }
    let command = format!("{}/{}", device.device_id, device.commands[0].command_name);
    assert!(ua
        .children(&ua.id(&command))
        .await
        .iter()
        .any(|(name, _)| name == "Status"));
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_opcua_actor_is_restarted_and_clients_reconnect_to_current_values() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let ids = metric_ids(&config);
    wait_all_good(&ua, &ids).await;
    // A command acknowledged before the crash.
    let device = &config.applications[0].devices[0];
    let command = format!("{}/{}", device.device_id, device.commands[0].command_name);
    assert_eq!(
        ua.write(&ua.id(&command), Variant::Int64(7)).await,
        StatusCode::Good
    );
    let status_id = format!("{command}/Status");
    let acknowledged = |dv: &opcua::types::DataValue| matches!(&dv.value, Some(Variant::String(s)) if s.as_ref().contains(" acknowledged"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !acknowledged(&ua.read(&status_id).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "command not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let poller_restarts = |status: &opcgw_actors::supervisor::TreeStatus| {
        (
            status.child("poller").unwrap().restarts,
            status.child("storage").unwrap().restarts,
        )
    };
    let before = gw.tree.handle.status().await.unwrap();

    let actor = gw
        .tree
        .handle
        .lookup::<OpcUaMsg>("opcua")
        .await
        .expect("opcua actor");
    actor
        .cast(OpcUaMsg::Common(Common::InjectPanic("test".into())))
        .unwrap();
    // Restarted with backoff; the poller and storage never stopped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = gw.tree.handle.status().await.unwrap();
        let opcua = status.child("opcua").unwrap();
        if opcua.restarts >= 1 && opcua.state == ChildState::Running {
            assert_eq!(poller_restarts(&status), poller_restarts(&before));
            assert_eq!(status.child("poller").unwrap().state, ChildState::Running);
            assert_eq!(status.child("storage").unwrap().state, ChildState::Running);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "opcua not restarted: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ua.close().await;
    // A new session sees current values at once (refilled from storage), and they keep moving.
    let ua = gw.client().await;
    for id in &ids {
        let dv = ua.read(id).await;
        assert_eq!(dv.status(), StatusCode::Good, "{id} after restart");
    }
    // The command's last state is shown again (refilled from storage).
    let status = ua.read(&status_id).await;
    assert!(acknowledged(&status), "{status:?}");
    let first = ua.read(&ids[0]).await.source_timestamp;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ua.read(&ids[0]).await.source_timestamp == first {
        assert!(
            tokio::time::Instant::now() < deadline,
            "values stopped after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anonymous_sessions_and_clear_passwords_only_when_the_operator_allows_them() {
    use opcua::client::IdentityToken;
    use opcua::types::UserTokenType;
    let none = (SecurityPolicy::None, MessageSecurityMode::None);
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;

    // Defaults: anonymous refused (and audited), the password policy encrypts.
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config, dir).await;
    gw.client().await.close().await;
    // (async-opcua's client does not even try: no anonymous policy is advertised. The Python
    // client, which tries anyway, is refused by the server: opcua_python.rs.)
    let refused = ua::connect_as(gw.port, none.0, none.1, IdentityToken::new_anonymous()).await;
    assert!(refused.is_err(), "an anonymous session was accepted");
    let endpoints = ua::endpoints(gw.port).await;
    assert!(endpoints.iter().all(|e| e
        .user_identity_tokens
        .iter()
        .flatten()
        .all(|t| t.token_type != UserTokenType::Anonymous)));
    gw.stop().await;

    // Allowed: anonymous gets in; the None endpoint takes the password in clear.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.allow_anonymous = true;
    config.opcua.allow_cleartext_password = true;
    let gw = Gateway::start(config, dir).await;
    gw.client().await.close().await;
    let anonymous = ua::connect_as(gw.port, none.0, none.1, IdentityToken::new_anonymous())
        .await
        .expect("anonymous allowed");
    anonymous.close().await;
    let endpoints = ua::endpoints(gw.port).await;
    let tokens = endpoints
        .iter()
        .find(|e| e.security_mode == MessageSecurityMode::None)
        .and_then(|e| e.user_identity_tokens.clone())
        .unwrap();
    assert!(tokens
        .iter()
        .any(|t| t.token_type == UserTokenType::Anonymous));
    let user = tokens
        .iter()
        .find(|t| t.token_type == UserTokenType::UserName)
        .unwrap();
    assert!(
        user.security_policy_uri.is_null() || user.security_policy_uri.is_empty(),
        "{user:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_answers_good_only_once_the_command_is_stored() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    // Hold the database: storage cannot start, the rest of the gateway runs.
    let lock = Store::open(&config.storage.database_path).unwrap();
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let device = &config.applications[0].devices[0];
    let node = ua.id(&format!(
        "{}/{}",
        device.device_id, device.commands[0].command_name
    ));
    assert_eq!(
        ua.write(&node, Variant::Int64(5)).await,
        StatusCode::BadResourceUnavailable,
        "a write Good without storage would be lost"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sim.downlinks().is_empty());

    // Storage back: the same write goes through.
    drop(lock);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match ua.write(&node, Variant::Int64(5)).await {
            StatusCode::Good => break,
            StatusCode::BadResourceUnavailable => {}
            other => panic!("unexpected {other}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "storage never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.downlinks().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no downlink");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_notification_carries_a_real_device_time_whatever_sampling_interval_is_asked() {
    use opcgw::storage::HistoryQuery;
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let device = &config.applications[0].devices[0];
    let metric = device
        .metrics
        .iter()
        .find(|m| m.metric_type == MetricType::Int)
        .unwrap();
    let id = format!("{}/{}", device.device_id, metric.metric_name);
    wait_all_good(&ua, std::slice::from_ref(&id)).await;
    // -1 = "the publishing interval" (a common client default), and a slow 1 s.
    let publishing = ua.subscribe_sampled(&[ua.id(&id)], false, -1.0).await;
    let slow = ua.subscribe_sampled(&[ua.id(&id)], false, 1_000.0).await;
    for log in [&publishing, &slow] {
        wait_for(log, Duration::from_secs(10), "five notifications", |seen| {
            seen.len() >= 5
        })
        .await;
    }
    let storage = StorageClient::new(
        gw.tree.handle.lookup::<StorageMsg>("storage").await,
        Duration::from_secs(2),
    );
    let stored: std::collections::HashSet<Timestamp> = storage
        .history(HistoryQuery {
            device_id: device.device_id.clone(),
            metric: metric.metric_name.clone(),
            start: Timestamp(0),
            end: Timestamp::now().saturating_add(Duration::from_secs(60)),
            limit: 10_000,
            reverse: false,
            resume: None,
        })
        .await
        .unwrap()
        .rows
        .iter()
        .map(|r| r.time)
        .collect();
    for (name, log) in [("-1", &publishing), ("1000 ms", &slow)] {
        let seen = log.lock().unwrap().clone();
        let times: Vec<Timestamp> = seen
            .iter()
            .filter_map(|(_, dv)| dv.source_timestamp.as_ref().and_then(gateway_time))
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{name}: SourceTimestamps must move forward: {times:?}"
        );
        for t in &times {
            assert!(stored.contains(t), "{name}: {t:?} is not a device time");
        }
    }
    ua.close().await;
    gw.stop().await;
}
