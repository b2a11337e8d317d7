//! The gateway's node manager: the address space of docs/opcua.md served from a compact model
//! of its own ([`space`]), with HistoryRead from storage (real continuation points) and command
//! writes that return Good only once the command is durably queued.
//!
//! Values are pushed in by the OPC UA actor ([`GatewayNodesHandle::publish`]); a Read never
//! touches the database.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock as StdRwLock};
use std::time::Duration;

use ua::server::node_manager::ServerContext;
use ua::server::SubscriptionCache;
use ua::sync::RwLock;
use ua::types::{DataTypeId, DataValue, DateTime, StatusCode, UAString, Variant};

use crate::commands::NewCommand;
use crate::config::{AppConfig, CommandConfig, MetricType};
use crate::model::{Quality, Timestamp, Value};
use crate::naming;
use crate::opcua::address_space::AddressSpace;
use crate::opcua::values::LiveUpdate;
use crate::storage::{CommandRecord, HistoryPage, HistoryQuery, ProcessedPage, ProcessedQuery};

mod at_time;
mod backend_error;
mod handle;
mod history;
mod manager;
mod processed;
#[cfg(test)]
mod registration_tests;
mod space;
mod write;

pub use backend_error::BackendError;
pub use handle::GatewayNodesHandle;
pub use processed::aggregate_function;
pub use write::command_status_text;

/// The node manager type the server runs.
pub type GatewayNodeManager = GatewayNodes;

/// The gateway namespace URI: `<application_uri>:gateway`. It cannot be `application_uri`
/// itself, which async-opcua's diagnostics node manager owns as namespace 1.
pub fn namespace_uri(application_uri: &str) -> String {
    format!("{application_uri}:gateway")
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the OPC UA server asks of the rest of the gateway (the storage actor, in the binary).
pub trait GatewayBackend: Send + Sync + 'static {
    fn history(&self, query: HistoryQuery) -> BoxFuture<'_, Result<HistoryPage, BackendError>>;
    /// Part 13 aggregates of one series over one page of processing intervals.
    fn processed(
        &self,
        query: ProcessedQuery,
    ) -> BoxFuture<'_, Result<ProcessedPage, BackendError>>;
    /// Queue a command durably; resolves once it is stored.
    fn enqueue_command(
        &self,
        command: NewCommand,
    ) -> BoxFuture<'_, Result<CommandRecord, BackendError>>;
}

/// Settings of the node manager that come from `[opcua]`.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub namespace_uri: String,
    /// Rows per HistoryRead call and node (`max_history_data_results_per_node`).
    pub history_page: usize,
    /// How long a Write waits for the command to be stored.
    pub write_timeout: Duration,
    /// Bytes a HistoryRead response may take (a share of `max_message_size`).
    pub max_response_bytes: usize,
    /// Command nodes one Write request may queue (`max_command_writes_per_request`).
    pub max_command_writes_per_request: usize,
}

/// The most rows a HistoryRead call returns per node, whatever the configuration says: the
/// server's array limit is set from it at start.
pub const MAX_HISTORY_PAGE_ROWS: usize = 100_000;

/// The members of the `Gateway` folder.
pub mod gateway_vars {
    pub const LAST_POLL: &str = "LastPollTimestamp";
    pub const UPSTREAM_STATE: &str = "UpstreamState";
    pub const UPSTREAM_ERROR: &str = "UpstreamLastError";
    pub const GOOD: &str = "GoodValues";
    pub const UNCERTAIN: &str = "UncertainValues";
    pub const BAD: &str = "BadValues";
    pub const WAITING: &str = "WaitingValues";
    /// A folder with one String variable per actor (`Gateway/Health/<role>`).
    pub const HEALTH: &str = crate::naming::HEALTH_FOLDER;
}

struct Model {
    /// The topology the address space was built from: command writes are prepared against it
    /// and a reload is compared with it. Shared with the rest of the gateway, not copied (at
    /// 10,000 devices a copy is ~12 MB).
    config: Arc<AppConfig>,
    commands: HashMap<String, (String, CommandConfig)>,
    health_roles: Vec<String>,
}

impl Model {
    fn new(config: &Arc<AppConfig>) -> Self {
        let mut commands = HashMap::new();
        for device in config.applications.iter().flat_map(|a| &a.devices) {
            for command in &device.commands {
                commands.insert(
                    naming::command_node_id(&device.device_id, &command.command_name),
                    (device.device_id.clone(), command.clone()),
                );
            }
        }
        Self {
            config: Arc::clone(config),
            commands,
            health_roles: Vec::new(),
        }
    }
}

/// The gateway's node manager.
pub struct GatewayNodes {
    settings: NodeSettings,
    namespace_index: u16,
    backend: Arc<dyn GatewayBackend>,
    /// Lock order: `model`, then `served`; never held across an await.
    model: StdRwLock<Model>,
    served: RwLock<space::Served>,
    initial_applications: usize,
    subscriptions: Arc<SubscriptionCache>,
    /// Rows per HistoryRead call and node (hot: follows reloads).
    history_page: std::sync::atomic::AtomicUsize,
    /// Becomes true once the server initialised the node manager.
    ready: tokio::sync::watch::Sender<bool>,
    /// Tests: runs when `create_monitored_items` has read the initial values, before the
    /// server registers the items (the moment a published value used to miss them).
    #[cfg(test)]
    after_initial_values: std::sync::Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

#[cfg(test)]
impl GatewayNodes {
    fn run_after_initial_values(&self) {
        if let Some(hook) = &*self.after_initial_values.lock().unwrap() {
            hook();
        }
    }
}

/// Builds the node manager for a server (pass to `ServerBuilder::with_node_manager`).
pub fn node_manager_builder(
    settings: NodeSettings,
    config: &Arc<AppConfig>,
    backend: Arc<dyn GatewayBackend>,
) -> impl FnOnce(ServerContext) -> GatewayNodes {
    let config = Arc::clone(config);
    move |context: ServerContext| {
        let namespace_index = context
            .type_tree
            .write()
            .namespaces_mut()
            .add_namespace(&settings.namespace_uri);
        let served = space::Served::build(
            namespace_index,
            &AddressSpace::from_config(&config),
            &[],
            None,
        );
        GatewayNodes {
            model: StdRwLock::new(Model::new(&config)),
            served: RwLock::new(served),
            initial_applications: config.applications.len(),
            namespace_index,
            backend,
            subscriptions: context.subscriptions.clone(),
            ready: tokio::sync::watch::Sender::new(false),
            history_page: std::sync::atomic::AtomicUsize::new(settings.history_page),
            settings,
            #[cfg(test)]
            after_initial_values: std::sync::Mutex::new(None),
        }
    }
}

fn data_type(metric_type: MetricType) -> DataTypeId {
    match metric_type {
        MetricType::Float => DataTypeId::Double,
        MetricType::Int => DataTypeId::Int64,
        MetricType::Bool => DataTypeId::Boolean,
        MetricType::String => DataTypeId::String,
    }
}

/// The metric type a variable's data type stands for ([`data_type`] the other way).
fn metric_type_of(data_type: DataTypeId) -> Option<MetricType> {
    [
        MetricType::Float,
        MetricType::Int,
        MetricType::Bool,
        MetricType::String,
    ]
    .into_iter()
    .find(|t| self::data_type(*t) == data_type)
}

/// 100 ns ticks from 1601-01-01 (OPC UA's epoch) to 1970-01-01.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

/// OPC UA time (100 ns ticks since 1601) of a gateway timestamp (µs since 1970).
pub fn ua_time(t: Timestamp) -> DateTime {
    DateTime::from(
        t.0.saturating_mul(10)
            .saturating_add(UNIX_EPOCH_TICKS)
            .max(0),
    )
}

/// A gateway timestamp from OPC UA time; `None` for the null (unspecified) time.
pub fn gateway_time(t: &DateTime) -> Option<Timestamp> {
    if t.is_null() {
        return None;
    }
    let ticks = t.checked_ticks();
    Some(Timestamp((ticks.saturating_sub(UNIX_EPOCH_TICKS)) / 10))
}

pub fn variant_of(value: &Value) -> Variant {
    match value {
        Value::Float(v) => Variant::Double(*v),
        Value::Int(v) => Variant::Int64(*v),
        Value::Bool(v) => Variant::Boolean(*v),
        Value::String(v) => Variant::String(UAString::from(v.as_str())),
    }
}

/// The status code of a quality (docs/opcua.md, "Values, quality and timestamps").
pub fn status_of(quality: Quality) -> StatusCode {
    match quality {
        Quality::Good => StatusCode::Good,
        Quality::Uncertain => StatusCode::UncertainLastUsableValue,
        Quality::Bad => StatusCode::BadNoCommunication,
        Quality::WaitingForInitialData => StatusCode::BadWaitingForInitialData,
    }
}

/// The DataValue published for a live update.
pub fn data_value_of(update: &LiveUpdate) -> DataValue {
    DataValue {
        value: Some(update.value.as_ref().map_or(Variant::Empty, variant_of)),
        status: Some(status_of(update.quality)),
        source_timestamp: Some(ua_time(update.source_time)),
        source_picoseconds: None,
        server_timestamp: Some(ua_time(update.server_time)),
        server_picoseconds: None,
    }
}

impl GatewayNodes {
    pub fn namespace_index(&self) -> u16 {
        self.namespace_index
    }

    pub fn node_id(&self, id: &str) -> ua::types::NodeId {
        ua::types::NodeId::new(self.namespace_index, id.to_string())
    }

    fn string_id<'a>(&self, node: &'a ua::types::NodeId) -> Option<&'a str> {
        space::string_id(self.namespace_index, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_and_opc_ua_times_round_trip_and_the_null_time_is_unspecified() {
        for micros in [0, 1, 1_795_418_640_123_456, 4_102_444_800_000_000] {
            let t = Timestamp(micros);
            assert_eq!(gateway_time(&ua_time(t)), Some(t), "{micros}");
        }
        assert_eq!(gateway_time(&DateTime::null()), None);
        // Out-of-range times are clamped, never a panic.
        assert_eq!(ua_time(Timestamp(i64::MIN)).ticks(), 0);
        let _ = ua_time(Timestamp(i64::MAX));
    }

    #[test]
    fn metric_types_and_data_types_map_both_ways() {
        for t in [
            MetricType::Float,
            MetricType::Int,
            MetricType::Bool,
            MetricType::String,
        ] {
            assert_eq!(metric_type_of(data_type(t)), Some(t));
        }
        assert_eq!(metric_type_of(DataTypeId::Byte), None);
    }

    #[test]
    fn qualities_map_to_their_status_codes() {
        assert_eq!(status_of(Quality::Good), StatusCode::Good);
        assert_eq!(
            status_of(Quality::Uncertain),
            StatusCode::UncertainLastUsableValue
        );
        assert_eq!(status_of(Quality::Bad), StatusCode::BadNoCommunication);
        assert_eq!(
            status_of(Quality::WaitingForInitialData),
            StatusCode::BadWaitingForInitialData
        );
        let waiting = data_value_of(&LiveUpdate {
            node: "d/m".into(),
            value: None,
            quality: Quality::WaitingForInitialData,
            source_time: Timestamp(5),
            server_time: Timestamp(6),
        });
        assert_eq!(waiting.value, Some(Variant::Empty));
        assert_eq!(
            gateway_time(&waiting.server_timestamp.unwrap()),
            Some(Timestamp(6))
        );
    }
}
