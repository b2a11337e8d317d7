//! A value published while a client's monitored items are being created reaches them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ua::client::{ClientBuilder, DataChangeCallback, IdentityToken};
use ua::crypto::SecurityPolicy;
use ua::types::{
    MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters,
    ReadValueId, StatusCode, TimestampsToReturn, Variant,
};

use super::{BackendError, BoxFuture, GatewayBackend};
use crate::commands::NewCommand;
use crate::config::{AppConfig, ApplicationConfig, DeviceConfig, MetricConfig, MetricType, Secret};
use crate::model::{Quality, Timestamp, Value};
use crate::opcua::server::start_on;
use crate::opcua::values::LiveUpdate;
use crate::storage::{CommandRecord, HistoryPage, HistoryQuery, ProcessedPage, ProcessedQuery};

const PASSWORD: &str = "registration-test-pw-7c1e";

/// No history and no commands here: this test only publishes values.
struct NoStorage;

impl GatewayBackend for NoStorage {
    fn history(&self, _: HistoryQuery) -> BoxFuture<'_, Result<HistoryPage, BackendError>> {
        Box::pin(async { Err(BackendError::Unavailable("no storage in this test".into())) })
    }

    fn processed(&self, _: ProcessedQuery) -> BoxFuture<'_, Result<ProcessedPage, BackendError>> {
        Box::pin(async { Err(BackendError::Unavailable("no storage in this test".into())) })
    }

    fn enqueue_command(&self, _: NewCommand) -> BoxFuture<'_, Result<CommandRecord, BackendError>> {
        Box::pin(async { Err(BackendError::Unavailable("no storage in this test".into())) })
    }
}

fn config(dir: &std::path::Path, port: u16) -> AppConfig {
    let mut config = AppConfig::default();
    config.opcua.host_ip_address = "127.0.0.1".into();
    config.opcua.host_port = port;
    config.opcua.pki_dir = dir.join("pki");
    config.opcua.create_sample_keypair = true;
    config.opcua.user_password = Secret::new(PASSWORD);
    config.applications = vec![ApplicationConfig {
        application_name: "Water".into(),
        application_id: "app-1".into(),
        discover: false,
        templates: Default::default(),
        devices: vec![DeviceConfig {
            device_name: "Tank".into(),
            device_id: "0000000000000001".into(),
            stale_threshold_seconds: None,
            metrics: vec![MetricConfig {
                metric_name: "Level".into(),
                chirpstack_metric_name: "level".into(),
                metric_type: MetricType::Float,
                metric_unit: None,
            }],
            commands: Vec::new(),
        }],
    }];
    config
}

fn level(value: f64) -> LiveUpdate {
    let now = Timestamp::now();
    LiveUpdate {
        node: "0000000000000001/Level".into(),
        value: Some(Value::Float(value)),
        quality: Quality::Good,
        source_time: now,
        server_time: now,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_published_while_monitored_items_are_created_reaches_them() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = Arc::new(config(dir.path(), port));
    let server = start_on(&config, Arc::new(NoStorage), Some(listener))
        .await
        .expect("the server starts");
    assert!(server.nodes.wait_ready(Duration::from_secs(10)).await);
    server.nodes.publish(&[level(1.0)]);
    // The value changes after the node manager read 1.0 as the items' initial value and
    // before the server registered them.
    let nodes = server.nodes.clone();
    server
        .nodes
        .after_initial_values(move || nodes.publish(&[level(2.0)]));

    let mut client = ClientBuilder::new()
        .application_name("opcgw-registration-test")
        .application_uri("urn:opcgw:registration-test")
        .pki_dir(dir.path().join("client-pki"))
        .create_sample_keypair(true)
        .trust_server_certs(true)
        .session_retry_limit(0)
        .client()
        .unwrap();
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    let (session, event_loop) = client
        .connect_to_matching_endpoint(
            (
                url.as_str(),
                SecurityPolicy::None.to_uri(),
                MessageSecurityMode::None,
            ),
            IdentityToken::new_user_name("opcua-user", PASSWORD),
        )
        .await
        .expect("a session");
    let event_loop = event_loop.spawn();
    session.wait_for_connection().await;

    let seen: Arc<Mutex<Vec<Variant>>> = Arc::default();
    let sink = seen.clone();
    let callback = DataChangeCallback::new(move |value, _| {
        sink.lock().unwrap().extend(value.value);
    });
    let subscription = session
        .create_subscription(Duration::from_millis(100), 30, 10, 0, 0, true, callback)
        .await
        .unwrap();
    let node = server.nodes.namespace_index();
    let item = MonitoredItemCreateRequest {
        item_to_monitor: ReadValueId {
            node_id: ua::types::NodeId::new(node, "0000000000000001/Level"),
            attribute_id: ua::types::AttributeId::Value as u32,
            ..Default::default()
        },
        monitoring_mode: MonitoringMode::Reporting,
        requested_parameters: MonitoringParameters {
            queue_size: 1,
            discard_oldest: true,
            ..Default::default()
        },
    };
    let created = session
        .create_monitored_items(subscription, TimestampsToReturn::Both, vec![item])
        .await
        .unwrap();
    assert_eq!(created[0].result.status_code, StatusCode::Good);

    // The client's item ends on 2.0, the value the server has, without another change.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().last() != Some(&Variant::Double(2.0)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the item never saw the value published while it was created: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = session.disconnect().await;
    event_loop.abort();
    server.stop();
}
