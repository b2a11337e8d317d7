//! The OPC UA server against the running actor tree and the simulator, with a real client
//! over TCP (async-opcua here; the Python `asyncua` package in `opcua_python.rs`).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opcgw::chirpstack::simulator::{SimulatorConfig, SimulatorHandle};
use opcgw::config::{AppConfig, ConfigDiff, MetricType, Secret};
use opcgw::model::{Sample, SampleOrigin, Timestamp, Value};
use opcgw::opcua::nodes::{gateway_time, ua_time};
use opcgw::storage::Store;
use opcgw_actors::tree::gateway::{Tree, TreeOptions};
use opcgw_actors::tree::messages::StorageMsg;
use opcgw_actors::tree::messages::{Common, ConfigUpdate, OpcUaMsg};
use opcgw_actors::tree::storage_client::StorageClient;
use opcgw_actors::tree::supervisor::{ChildState, SupervisorMsg};
use ua::crypto::SecurityPolicy;
use ua::types::{
    AttributeId, ByteString, DataTypeId, DateTime, MessageSecurityMode, NodeId, ObjectId,
    StatusCode, Variant,
};

use crate::poller::{gateway_config, simulator};
use crate::support::install_pki;
use crate::ua_client::{self, connect, connect_none, history_action, wait_for, Ua, USER};

pub const PASSWORD: &str = "opcua-test-password-5d1e";

/// Listeners bound by [`Gateway::config_for`], by port, until [`Gateway::start`] serves them:
/// a test holds its port from the moment it is chosen, so no other test can take it.
static LISTENERS: Mutex<BTreeMap<u16, Arc<TcpListener>>> = Mutex::new(BTreeMap::new());

/// A gateway tree with its OPC UA server on a port of its own, a test key pair, a database in
/// `dir`, and the simulator's world as configuration.
pub struct Gateway {
    pub tree: Tree,
    pub port: u16,
    /// Holds the database and PKI until the test ends.
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub fn config_for(sim: &SimulatorHandle, dir: &std::path::Path) -> AppConfig {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an OPC UA listener");
        let port = listener.local_addr().expect("listener address").port();
        LISTENERS.lock().unwrap().insert(port, Arc::new(listener));
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
        let listener = LISTENERS.lock().unwrap().remove(&port);
        assert!(
            listener.is_some(),
            "start a config made by Gateway::config_for"
        );
        let options = TreeOptions {
            opcua_listener: listener,
            ..TreeOptions::default()
        };
        let tree = Tree::start(Arc::new(config), options)
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

    /// Hands `next` to every actor as a reload from `previous` would (classified diff).
    pub fn apply(&self, previous: &AppConfig, next: &AppConfig, generation: u64) {
        let update = ConfigUpdate {
            diff: Arc::new(ConfigDiff::between(previous, next)),
            config: Arc::new(next.clone()),
            generation,
        };
        self.tree
            .handle
            .supervisor
            .cast(SupervisorMsg::Broadcast(update))
            .expect("the supervisor takes the configuration");
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

mod browse;
mod commands;
mod history;
mod processed;
mod restart;
mod security;
mod subscriptions;
mod topology;
mod upstream;
