//! The gateway's node manager: the address space of docs/opcua.md in the async-opcua in-memory
//! store, with HistoryRead from storage (real continuation points) and command writes that
//! return Good only once the command is durably queued.
//!
//! Values are pushed in by the OPC UA actor ([`GatewayNodesHandle::publish`]); a Read never
//! touches the database.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock as StdRwLock};
use std::time::Duration;

use async_trait::async_trait;
use tracing::debug;
use ua::nodes::{AccessLevel, NodeType, ObjectBuilder, VariableBuilder};
use ua::server::address_space::AddressSpace as UaSpace;
use ua::server::diagnostics::NamespaceMetadata;
use ua::server::node_manager::memory::{InMemoryNodeManager, InMemoryNodeManagerImpl};
use ua::server::node_manager::{HistoryNode, RequestContext, ServerContext, WriteNode};
use ua::server::SubscriptionCache;
use ua::sync::RwLock;
use ua::types::{
    DataTypeId, DataValue, DateTime, EUInformation, ExtensionObject, LocalizedText, NodeId,
    ObjectId, QualifiedName, ReadRawModifiedDetails, StatusCode, TimestampsToReturn, UAString,
    VariableTypeId, Variant,
};

use crate::commands::NewCommand;
use crate::config::{AppConfig, CommandConfig, MetricType};
use crate::model::{Quality, Timestamp, Value};
use crate::naming::{self, GATEWAY_FOLDER};
use crate::opcua::address_space::{AddressSpace, NodeKind, NodeSpec};
use crate::opcua::values::LiveUpdate;
use crate::storage::{CommandRecord, HistoryPage, HistoryQuery};

mod backend_error;
mod handle;
mod history;
mod write;

pub use backend_error::BackendError;
pub use handle::GatewayNodesHandle;
pub use write::command_status_text;

/// The node manager type the server runs.
pub type GatewayNodeManager = InMemoryNodeManager<GatewayNodes>;

/// The gateway namespace URI: `<application_uri>:gateway`. It cannot be `application_uri`
/// itself, which async-opcua's diagnostics node manager owns as namespace 1.
pub fn namespace_uri(application_uri: &str) -> String {
    format!("{application_uri}:gateway")
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the OPC UA server asks of the rest of the gateway (the storage actor, in the binary).
pub trait GatewayBackend: Send + Sync + 'static {
    fn history(&self, query: HistoryQuery) -> BoxFuture<'_, Result<HistoryPage, BackendError>>;
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
    /// The topology the model was built from: command writes are prepared against it.
    config: AppConfig,
    space: AddressSpace,
    commands: HashMap<String, (String, CommandConfig)>,
    health_roles: Vec<String>,
}

impl Model {
    fn new(config: &AppConfig) -> Self {
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
            config: config.clone(),
            space: AddressSpace::from_config(config),
            commands,
            health_roles: Vec::new(),
        }
    }
}

/// The gateway's `InMemoryNodeManagerImpl`.
pub struct GatewayNodes {
    settings: NodeSettings,
    namespace_index: u16,
    backend: Arc<dyn GatewayBackend>,
    model: StdRwLock<Model>,
    initial: AppConfig,
    subscriptions: Arc<SubscriptionCache>,
    /// The manager that owns this implementation (set once the server is built).
    manager: std::sync::OnceLock<std::sync::Weak<GatewayNodeManager>>,
    /// Rows per HistoryRead call and node (hot: follows reloads).
    history_page: std::sync::atomic::AtomicUsize,
    /// Becomes true once `init` built the address space (values pushed before are lost).
    ready: tokio::sync::watch::Sender<bool>,
}

/// Builds the node manager for a server (pass to `ServerBuilder::with_node_manager`).
pub fn node_manager_builder(
    settings: NodeSettings,
    config: &AppConfig,
    backend: Arc<dyn GatewayBackend>,
) -> ua::server::node_manager::memory::InMemoryNodeManagerBuilder<
    impl FnOnce(ServerContext, &mut UaSpace) -> GatewayNodes,
> {
    let config = config.clone();
    ua::server::node_manager::memory::InMemoryNodeManagerBuilder::new(
        move |context: ServerContext, space: &mut UaSpace| {
            let namespace_index = context
                .type_tree
                .write()
                .namespaces_mut()
                .add_namespace(&settings.namespace_uri);
            space.add_namespace(&settings.namespace_uri, namespace_index);
            GatewayNodes {
                model: StdRwLock::new(Model::new(&config)),
                initial: config,
                namespace_index,
                backend,
                subscriptions: context.subscriptions.clone(),
                manager: std::sync::OnceLock::new(),
                ready: tokio::sync::watch::Sender::new(false),
                history_page: std::sync::atomic::AtomicUsize::new(settings.history_page),
                settings,
            }
        },
    )
}

fn data_type(metric_type: MetricType) -> DataTypeId {
    match metric_type {
        MetricType::Float => DataTypeId::Double,
        MetricType::Int => DataTypeId::Int64,
        MetricType::Bool => DataTypeId::Boolean,
        MetricType::String => DataTypeId::String,
    }
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

    pub fn node_id(&self, id: &str) -> NodeId {
        NodeId::new(self.namespace_index, id.to_string())
    }

    fn string_id<'a>(&self, node: &'a NodeId) -> Option<&'a str> {
        if node.namespace != self.namespace_index {
            return None;
        }
        match &node.identifier {
            ua::types::Identifier::String(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    fn insert_spec(&self, space: &mut UaSpace, spec: &NodeSpec) {
        let ns = self.namespace_index;
        let id = self.node_id(&spec.id);
        let parent = spec
            .parent
            .as_deref()
            .map_or_else(|| ObjectId::ObjectsFolder.into(), |p| self.node_id(p));
        let name = QualifiedName::new(ns, spec.browse_name.as_str());
        let display = spec.browse_name.as_str();
        match &spec.kind {
            NodeKind::Folder => {
                ObjectBuilder::new(&id, name, display)
                    .is_folder()
                    .organized_by(parent)
                    .insert(space);
            }
            NodeKind::Metric {
                metric_type, unit, ..
            } => {
                let access = AccessLevel::CURRENT_READ | AccessLevel::HISTORY_READ;
                VariableBuilder::new(&id, name, display)
                    .data_type(data_type(*metric_type))
                    .value_rank(-1)
                    .access_level(access)
                    .user_access_level(access)
                    .historizing(true)
                    .minimum_sampling_interval(0.0)
                    .has_type_definition(VariableTypeId::BaseDataVariableType)
                    .organized_by(parent)
                    .insert(space);
                Self::set_waiting(space, &id);
                if let Some(unit) = unit {
                    self.insert_units(space, &id, &spec.id, unit);
                }
            }
            NodeKind::Command { command_type, .. } => {
                let access = AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE;
                VariableBuilder::new(&id, name, display)
                    .data_type(data_type(*command_type))
                    .value_rank(-1)
                    .access_level(access)
                    .user_access_level(access)
                    .has_type_definition(VariableTypeId::BaseDataVariableType)
                    .organized_by(parent)
                    .insert(space);
                Self::set_waiting(space, &id);
            }
            NodeKind::CommandStatus { .. } => {
                VariableBuilder::new(&id, name, display)
                    .data_type(DataTypeId::String)
                    .value_rank(-1)
                    .access_level(AccessLevel::CURRENT_READ)
                    .user_access_level(AccessLevel::CURRENT_READ)
                    .has_type_definition(VariableTypeId::BaseDataVariableType)
                    .component_of(parent)
                    .insert(space);
                if let Some(NodeType::Variable(v)) = space.find_mut(&id) {
                    v.set_data_value(DataValue::new_now(UAString::from("none")));
                }
            }
        }
    }

    fn insert_units(&self, space: &mut UaSpace, id: &NodeId, spec_id: &str, unit: &str) {
        let units_id = self.node_id(&naming::engineering_units_node_id(spec_id));
        let info = EUInformation {
            namespace_uri: UAString::null(),
            unit_id: -1,
            display_name: LocalizedText::new("", unit),
            description: LocalizedText::new("", unit),
        };
        VariableBuilder::new(
            &units_id,
            QualifiedName::new(0, naming::ENGINEERING_UNITS),
            naming::ENGINEERING_UNITS,
        )
        .data_type(DataTypeId::EUInformation)
        .value_rank(-1)
        .access_level(AccessLevel::CURRENT_READ)
        .user_access_level(AccessLevel::CURRENT_READ)
        .value(ExtensionObject::from_message(info))
        .has_type_definition(VariableTypeId::PropertyType)
        .property_of(id.clone())
        .insert(space);
    }

    fn set_waiting(space: &mut UaSpace, id: &NodeId) {
        if let Some(NodeType::Variable(v)) = space.find_mut(id) {
            let now = DateTime::now();
            v.set_data_value(DataValue {
                value: Some(Variant::Empty),
                status: Some(StatusCode::BadWaitingForInitialData),
                source_timestamp: Some(now),
                source_picoseconds: None,
                server_timestamp: Some(now),
                server_picoseconds: None,
            });
        }
    }

    fn insert_gateway_folder(&self, space: &mut UaSpace) {
        let ns = self.namespace_index;
        let folder = self.node_id(GATEWAY_FOLDER);
        ObjectBuilder::new(
            &folder,
            QualifiedName::new(ns, GATEWAY_FOLDER),
            GATEWAY_FOLDER,
        )
        .is_folder()
        .organized_by(ObjectId::ObjectsFolder)
        .insert(space);
        let vars: [(&str, DataTypeId, Variant); 7] = [
            (
                gateway_vars::LAST_POLL,
                DataTypeId::DateTime,
                Variant::Empty,
            ),
            (
                gateway_vars::UPSTREAM_STATE,
                DataTypeId::String,
                Variant::from("starting"),
            ),
            (
                gateway_vars::UPSTREAM_ERROR,
                DataTypeId::String,
                Variant::from(""),
            ),
            (gateway_vars::GOOD, DataTypeId::UInt32, Variant::UInt32(0)),
            (
                gateway_vars::UNCERTAIN,
                DataTypeId::UInt32,
                Variant::UInt32(0),
            ),
            (gateway_vars::BAD, DataTypeId::UInt32, Variant::UInt32(0)),
            (
                gateway_vars::WAITING,
                DataTypeId::UInt32,
                Variant::UInt32(0),
            ),
        ];
        for (name, ty, value) in vars {
            self.insert_gateway_var(
                space,
                &folder,
                &naming::gateway_node_id(name),
                name,
                ty,
                value,
            );
        }
        let health = self.node_id(&naming::gateway_node_id(gateway_vars::HEALTH));
        ObjectBuilder::new(
            &health,
            QualifiedName::new(ns, gateway_vars::HEALTH),
            gateway_vars::HEALTH,
        )
        .is_folder()
        .organized_by(folder)
        .insert(space);
    }

    fn insert_gateway_var(
        &self,
        space: &mut UaSpace,
        parent: &NodeId,
        id: &str,
        name: &str,
        ty: DataTypeId,
        value: Variant,
    ) {
        let node = self.node_id(id);
        VariableBuilder::new(&node, QualifiedName::new(self.namespace_index, name), name)
            .data_type(ty)
            .value_rank(-1)
            .access_level(AccessLevel::CURRENT_READ)
            .user_access_level(AccessLevel::CURRENT_READ)
            .minimum_sampling_interval(0.0)
            .has_type_definition(VariableTypeId::BaseDataVariableType)
            .organized_by(parent.clone())
            .insert(space);
        if let Some(NodeType::Variable(v)) = space.find_mut(&node) {
            let status = if matches!(value, Variant::Empty) {
                StatusCode::BadWaitingForInitialData
            } else {
                StatusCode::Good
            };
            v.set_data_value(DataValue::new_now_status(value, status));
        }
    }
}

#[async_trait]
impl InMemoryNodeManagerImpl for GatewayNodes {
    async fn init(&self, space: &mut UaSpace, _context: ServerContext) {
        // The library holds the address-space lock here: build from the initial
        // configuration instead of taking the model lock (elsewhere the order is model, then
        // address space).
        let initial = AddressSpace::from_config(&self.initial);
        for spec in initial.nodes_parents_first() {
            self.insert_spec(space, spec);
        }
        self.insert_gateway_folder(space);
        self.ready.send_replace(true);
        debug!(
            event = "opcua_address_space_built",
            nodes = initial.len(),
            applications = self.initial.applications.len()
        );
    }

    fn name(&self) -> &str {
        "opcgw"
    }

    fn namespaces(&self) -> Vec<NamespaceMetadata> {
        vec![NamespaceMetadata {
            namespace_uri: self.settings.namespace_uri.clone(),
            namespace_index: self.namespace_index,
            ..Default::default()
        }]
    }

    async fn history_read_raw_modified(
        &self,
        _context: &RequestContext,
        details: &ReadRawModifiedDetails,
        nodes: &mut [&mut &mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.read_history(details, nodes, timestamps_to_return)
            .await;
        Ok(())
    }

    async fn write(
        &self,
        context: &RequestContext,
        _address_space: &RwLock<UaSpace>,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        self.write_commands(context, nodes_to_write).await;
        Ok(())
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
