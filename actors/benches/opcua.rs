//! OPC UA benchmark: the gateway tree serving 1,000 devices x 10 metrics from the simulator,
//! measured with a real client over loopback TCP (None endpoint). Prints:
//! - Read of 10,000 variables in one request (target <= 50 ms),
//! - value change at ChirpStack (an uplink) -> data-change notification (target <= 250 ms),
//! - HistoryRead raw of 7 days at 10 s (60,480 rows) (target <= 50 ms).
//!
//! Run with `make bench`; figures go to docs/performance.md.

mod common;

use common::{free_port, percentile};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opcgw::chirpstack::simulator::{Simulator, SimulatorConfig};
use opcgw::config::{AppConfig, MetricType, Secret};
use opcgw::model::{Sample, SampleOrigin, Timestamp, Value};
use opcgw::opcua::nodes::{gateway_time, ua_time};
use opcgw::storage::Store;
use opcgw_actors::tree::gateway::{Tree, TreeOptions};
use ua::client::{DataChangeCallback, HistoryReadAction};
use ua::types::{
    AttributeId, ByteString, DataChangeFilter, DataChangeTrigger, DeadbandType, ExtensionObject,
    HistoryData, HistoryReadValueId, MonitoredItemCreateRequest, MonitoringMode,
    MonitoringParameters, NodeId, NumericRange, QualifiedName, ReadRawModifiedDetails, ReadValueId,
    StatusCode, TimestampsToReturn,
};

/// A notification: the monitored node, when it arrived, its SourceTimestamp.
type Arrival = (NodeId, Timestamp, Option<Timestamp>);

const TOKEN: &str = "bench-token-6a1f3e";
const PASSWORD: &str = "bench-pw-5c8e1d7a";
const HISTORY_ROWS: i64 = 60_480;

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name}: median {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs)",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Simulator::start(
        SimulatorConfig {
            api_token: TOKEN.into(),
            applications: 10,
            devices_per_application: 100,
            metrics_per_device: 10,
            uplink_interval: Duration::from_secs(3_600),
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("simulator");
    let port = free_port();
    let mut config = AppConfig::default();
    config.chirpstack.server_address = sim.url();
    config.chirpstack.api_token = Secret::new(TOKEN);
    config.chirpstack.tenant_id = sim.world().tenant_id.clone();
    config.chirpstack.polling_frequency = 10;
    config.applications = sim.world().to_config();
    for device in config.applications.iter_mut().flat_map(|a| &mut a.devices) {
        device.metrics.truncate(10);
    }
    config.storage.database_path = dir.path().join("opcgw.redb");
    config.control.enabled = false;
    config.storage.retention_days = 30;
    config.opcua.host_ip_address = "127.0.0.1".into();
    config.opcua.host_port = port;
    config.opcua.pki_dir = dir.path().join("pki");
    config.opcua.create_sample_keypair = true;
    config.opcua.user_password = Secret::new(PASSWORD);
    config.opcua.max_message_size = 64 * 1024 * 1024;
    config.opcua.max_chunk_count = 4096;
    config.opcua.max_history_data_results_per_node = 100_000;
    config.opcua.max_monitored_items_per_sub = 10_000;
    let metric_ids: Vec<String> = config
        .applications
        .iter()
        .flat_map(|a| &a.devices)
        .flat_map(|d| {
            d.metrics
                .iter()
                .map(move |m| opcgw::naming::metric_node_id(&d.device_id, &m.metric_name))
        })
        .collect();
    println!(
        "world: {} devices, {} metric variables",
        sim.world().device_count(),
        metric_ids.len()
    );

    // Seven days at 10 s of one Int metric, stored before the gateway starts.
    let history_device = config.applications[0].devices[0].clone();
    let history_metric = history_device
        .metrics
        .iter()
        .find(|m| m.metric_type == MetricType::Int)
        .expect("an Int metric")
        .metric_name
        .clone();
    let history_start = Timestamp::now().saturating_sub(Duration::from_secs(8 * 86_400));
    {
        let mut store = Store::open(&config.storage.database_path).expect("store");
        let rows: Vec<Sample> = (0..HISTORY_ROWS)
            .map(|i| Sample {
                device_id: history_device.device_id.as_str().into(),
                metric: history_metric.as_str().into(),
                value: Value::Int(i),
                source_time: Timestamp(history_start.0 + i * 10_000_000),
                received_time: Timestamp(history_start.0 + i * 10_000_000),
                origin: SampleOrigin::Uplink,
            })
            .collect();
        for chunk in rows.chunks(10_000) {
            store.append(chunk).expect("append");
        }
    }

    let tree = Tree::start(Arc::new(config.clone()), TreeOptions::default())
        .await
        .expect("tree");
    let (session, _event_loop) = common::opcua_session(
        port,
        PASSWORD,
        &dir.path().join("client-pki"),
        64 * 1024 * 1024,
        4096,
    )
    .await;
    let ns = 2u16;

    // Values for every device: one uplink each.
    while sim.open_streams() < sim.world().device_count() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for device in sim.world().devices() {
        sim.emit_uplink_now(&device.dev_eui);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. Read of 10,000 variables in one request.
    let to_read: Vec<ReadValueId> = metric_ids
        .iter()
        .take(10_000)
        .map(|id| ReadValueId {
            node_id: NodeId::new(ns, id.clone()),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        })
        .collect();
    let mut times = Vec::new();
    let mut good = 0;
    for run in 0..40 {
        let started = Instant::now();
        let values = session
            .read(&to_read, TimestampsToReturn::Both, 0.0)
            .await
            .expect("read");
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(values.len(), to_read.len());
        good = values
            .iter()
            .filter(|v| v.status() == StatusCode::Good)
            .count();
        if run >= 5 {
            times.push(elapsed);
        }
    }
    println!(
        "read: {} variables per request, {good} of them Good",
        to_read.len()
    );
    summary("OPC UA Read of 10,000 variables", times);

    // 2. Uplink at the simulator -> data-change notification.
    let first_float = |d: &opcgw::config::DeviceConfig| {
        d.metrics
            .iter()
            .find(|m| m.metric_type == MetricType::Float && m.metric_name != "battery_mv")
            .map(|m| opcgw::naming::metric_node_id(&d.device_id, &m.metric_name))
    };
    let watched: Vec<(String, String)> = config
        .applications
        .iter()
        .flat_map(|a| &a.devices)
        .take(100)
        .filter_map(|d| first_float(d).map(|id| (d.device_id.clone(), id)))
        .collect();
    let arrivals: Arc<Mutex<Vec<Arrival>>> = Arc::default();
    let sink = arrivals.clone();
    let subscription = session
        .create_subscription(
            Duration::from_millis(50),
            100,
            10,
            0,
            0,
            true,
            DataChangeCallback::new(move |dv, item| {
                let source = dv.source_timestamp.as_ref().and_then(gateway_time);
                sink.lock().unwrap().push((
                    item.item_to_monitor().node_id.clone(),
                    Timestamp::now(),
                    source,
                ));
            }),
        )
        .await
        .expect("subscription");
    let requests = watched
        .iter()
        .enumerate()
        .map(|(i, (_, id))| MonitoredItemCreateRequest {
            item_to_monitor: ReadValueId {
                node_id: NodeId::new(ns, id.clone()),
                attribute_id: AttributeId::Value as u32,
                ..Default::default()
            },
            monitoring_mode: MonitoringMode::Reporting,
            requested_parameters: MonitoringParameters {
                client_handle: i as u32,
                sampling_interval: 0.0,
                // Every new sample counts, even one that repeats the last value.
                filter: ExtensionObject::from_message(DataChangeFilter {
                    trigger: DataChangeTrigger::StatusValueTimestamp,
                    deadband_type: DeadbandType::None as u32,
                    deadband_value: 0.0,
                }),
                queue_size: 10,
                discard_oldest: true,
            },
        })
        .collect();
    session
        .create_monitored_items(subscription, TimestampsToReturn::Both, requests)
        .await
        .expect("monitored items");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::new();
    for (device, id) in &watched {
        let node = NodeId::new(ns, id.clone());
        arrivals.lock().unwrap().clear();
        let emitted = Timestamp::now();
        sim.emit_uplink_now(device);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = arrivals
                .lock()
                .unwrap()
                .iter()
                .find(|(item, _, source)| item == &node && source.is_some_and(|s| s >= emitted))
                .map(|(_, at, _)| *at);
            if let Some(at) = got {
                latencies.push((at.0 - emitted.0) as f64 / 1e3);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no notification for {device} (emitted {emitted:?}): {:?}",
                arrivals.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    summary(
        "uplink at ChirpStack -> OPC UA data-change notification (publishing interval 50 ms)",
        latencies,
    );

    // 3. HistoryRead raw, 7 days at 10 s.
    let node = NodeId::new(ns, format!("{}/{history_metric}", history_device.device_id));
    let window_end = Timestamp(history_start.0 + HISTORY_ROWS * 10_000_000);
    let action = HistoryReadAction::ReadRawModifiedDetails(ReadRawModifiedDetails {
        is_read_modified: false,
        start_time: ua_time(history_start),
        end_time: ua_time(window_end),
        num_values_per_node: 0,
        return_bounds: false,
    });
    let mut times = Vec::new();
    for run in 0..25 {
        let started = Instant::now();
        let result = session
            .history_read(
                action.clone(),
                TimestampsToReturn::Both,
                false,
                &[HistoryReadValueId {
                    node_id: node.clone(),
                    index_range: NumericRange::None,
                    data_encoding: QualifiedName::null(),
                    continuation_point: ByteString::null(),
                }],
            )
            .await
            .expect("history read");
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        let rows = result[0]
            .history_data
            .clone()
            .into_inner_as::<HistoryData>()
            .and_then(|d| d.data_values)
            .map_or(0, |v| v.len());
        assert_eq!(rows as i64, HISTORY_ROWS, "{}", result[0].status_code);
        if run >= 5 {
            times.push(elapsed);
        }
    }
    summary(
        "HistoryRead raw, 7 days at 10 s (60,480 rows, one call)",
        times,
    );

    let _ = tokio::time::timeout(Duration::from_secs(3), session.disconnect()).await;
    tree.handle.shutdown(Duration::from_secs(5)).await;
}
