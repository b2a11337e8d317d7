//! The gateway's node manager: the address space of DESIGN §7 in the async-opcua in-memory
//! store, with HistoryRead from storage (real continuation points) and command writes that
//! return Good only once the command is durably queued.
//!
//! Values are pushed in by the OPC UA actor ([`GatewayNodeManager::publish`]); a Read never
//! touches the database.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock as StdRwLock};
use std::time::Duration;

use async_trait::async_trait;
use opcua::core_namespace::events::BaseModelChangeEventType;
use opcua::nodes::{AccessLevel, BaseEventType, Event, NodeType, ObjectBuilder, VariableBuilder};
use opcua::server::address_space::AddressSpace as UaSpace;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{InMemoryNodeManager, InMemoryNodeManagerImpl};
use opcua::server::node_manager::{HistoryNode, RequestContext, ServerContext, WriteNode};
use opcua::server::{ContinuationPoint, SubscriptionCache};
use opcua::sync::RwLock;
use opcua::types::{
    AttributeId, ByteString, DataTypeId, DataValue, DateTime, EUInformation, ExtensionObject,
    HistoryData, LocalizedText, NodeId, NumericRange, ObjectId, QualifiedName,
    ReadRawModifiedDetails, ReferenceTypeId, StatusCode, StatusCodeInfoType, StatusCodeValueType,
    TimestampsToReturn, UAString, VariableTypeId, Variant,
};
use tracing::{debug, info, warn};

use crate::config::{AppConfig, CommandConfig, MetricType};
use crate::model::{Quality, SampleOrigin, Timestamp, Value};
use crate::opcua::address_space::{
    AddressSpace, AddressSpaceChanges, NodeKind, NodeSpec, GATEWAY_FOLDER,
};
use crate::opcua::values::LiveUpdate;
use crate::security::sanitize_for_log;
use crate::storage::{CommandRecord, HistoryPage, HistoryQuery, HistoryRow, NewCommand, ResumeKey};

/// The node manager type the server runs.
pub type GatewayNodeManager = InMemoryNodeManager<GatewayNodes>;

/// The gateway namespace URI: `<application_uri>:gateway`. It cannot be `application_uri`
/// itself, which async-opcua's diagnostics node manager owns as namespace 1.
pub fn namespace_uri(application_uri: &str) -> String {
    format!("{application_uri}:gateway")
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the rest of the gateway could not answer the OPC UA server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// Storage is restarting or did not answer in time.
    Unavailable(String),
    /// The metric has no stored value yet.
    UnknownSeries,
    /// The request was refused (for example an invalid query).
    Rejected(String),
}

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
    pub const HEALTH: &str = "Health";
}

struct Model {
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
                    crate::opcua::address_space::metric_node_id(
                        &device.device_id,
                        &command.command_name,
                    ),
                    (device.device_id.clone(), command.clone()),
                );
            }
        }
        Self {
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
) -> opcua::server::node_manager::memory::InMemoryNodeManagerBuilder<
    impl FnOnce(ServerContext, &mut UaSpace) -> GatewayNodes,
> {
    let config = config.clone();
    opcua::server::node_manager::memory::InMemoryNodeManagerBuilder::new(
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

/// The status code of a quality (DESIGN §5; docs/opcua.md).
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

/// A written Variant as a command value of `command_type`, strictly (no lossy conversion).
fn command_value(command_type: MetricType, variant: &Variant) -> Option<Value> {
    match (command_type, variant) {
        (MetricType::Float, Variant::Double(v)) => Some(Value::Float(*v)),
        (MetricType::Float, Variant::Float(v)) => Some(Value::Float(f64::from(*v))),
        (MetricType::Int, Variant::SByte(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::Byte(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::Int16(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::UInt16(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::Int32(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::UInt32(v)) => Some(Value::Int(i64::from(*v))),
        (MetricType::Int, Variant::Int64(v)) => Some(Value::Int(*v)),
        (MetricType::Int, Variant::UInt64(v)) => i64::try_from(*v).ok().map(Value::Int),
        (MetricType::Bool, Variant::Boolean(v)) => Some(Value::Bool(*v)),
        (MetricType::String, Variant::String(v)) => Some(Value::String(v.as_ref().to_string())),
        _ => None,
    }
}

fn in_range(command: &CommandConfig, value: &Value) -> bool {
    let x = match value {
        Value::Float(v) => *v,
        Value::Int(v) => *v as f64,
        _ => return true,
    };
    !x.is_nan()
        && command.command_min.is_none_or(|min| x >= min)
        && command.command_max.is_none_or(|max| x <= max)
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
            opcua::types::Identifier::String(s) => Some(s.as_ref()),
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
        let units_id = self.node_id(&format!("{spec_id}/EngineeringUnits"));
        let info = EUInformation {
            namespace_uri: UAString::null(),
            unit_id: -1,
            display_name: LocalizedText::new("", unit),
            description: LocalizedText::new("", unit),
        };
        VariableBuilder::new(
            &units_id,
            QualifiedName::new(0, "EngineeringUnits"),
            "EngineeringUnits",
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
                &format!("{GATEWAY_FOLDER}/{name}"),
                name,
                ty,
                value,
            );
        }
        let health = self.node_id(&format!("{GATEWAY_FOLDER}/{}", gateway_vars::HEALTH));
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
        // The response must fit the message size: each node gets its share of it.
        let byte_budget = self.settings.max_response_bytes / nodes.len().max(1);
        for node in nodes.iter_mut() {
            let status = self
                .history_node(details, node, timestamps_to_return, byte_budget)
                .await;
            node.set_status(status);
        }
        Ok(())
    }

    async fn write(
        &self,
        context: &RequestContext,
        _address_space: &RwLock<UaSpace>,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        let user = context.user_token().0.clone();
        // Validate everything first, without holding any lock across an await.
        let mut pending: Vec<(usize, NodeId, Variant, NewCommand)> = Vec::new();
        {
            let model = self.model.read().unwrap_or_else(|e| e.into_inner());
            for (index, write) in nodes_to_write.iter_mut().enumerate() {
                match self.validate_write(&model, write, &user) {
                    Ok((node, variant, command)) => pending.push((index, node, variant, command)),
                    Err(status) => write.set_status(status),
                }
            }
        }
        for (index, node, variant, command) in pending {
            let label = format!("{}/{}", command.device_id, command.command_name);
            let result = tokio::time::timeout(
                self.settings.write_timeout,
                self.backend.enqueue_command(command),
            )
            .await;
            let status = match result {
                Ok(Ok(record)) => {
                    info!(
                        event = "opcua_command_written",
                        user = %sanitize_for_log(&user, 64),
                        command = %label,
                        id = record.id,
                        "command queued from an OPC UA write"
                    );
                    self.publish_command_written(&node, variant, &record);
                    StatusCode::Good
                }
                Ok(Err(error)) => {
                    warn!(event = "opcua_command_rejected", command = %label, error = ?error, "an OPC UA write could not be queued");
                    match error {
                        BackendError::Unavailable(_) => StatusCode::BadResourceUnavailable,
                        _ => StatusCode::BadInternalError,
                    }
                }
                Err(_) => {
                    warn!(event = "opcua_command_rejected", command = %label, error = "storage did not answer in time", "an OPC UA write could not be queued");
                    StatusCode::BadTimeout
                }
            };
            if let Some(write) = nodes_to_write.get_mut(index) {
                write.set_status(status);
            }
        }
        Ok(())
    }
}

/// Where a HistoryRead continues on the next call (kept per session by the library).
#[derive(Debug, Clone)]
struct HistoryCursor {
    node: NodeId,
    device_id: String,
    metric: String,
    start: Timestamp,
    end: Timestamp,
    reverse: bool,
    resume: Option<ResumeKey>,
    /// EndTime, when given with StartTime: where the far bounding value is looked for.
    end_bound: Option<Timestamp>,
    /// Every raw row was returned; only the far bounding value is left.
    far_bound_only: bool,
    /// Only one of StartTime / EndTime given: the values still owed of numValuesPerNode
    /// (Part 11 §6.5.3.2: that many are returned, then the read is complete).
    remaining: Option<usize>,
}

/// Far enough back for any device time a client can name (OPC UA time starts in 1601).
const TIME_MIN: Timestamp = Timestamp(i64::MIN / 20);
const TIME_MAX: Timestamp = Timestamp(i64::MAX / 20);

/// What a DataValue of history costs on the wire, roughly (encoding mask, variant, status,
/// source timestamp), so a response fits the negotiated message size.
fn encoded_bytes(value: &DataValue) -> usize {
    let variant = match &value.value {
        Some(Variant::String(s)) => 5 + s.as_ref().len(),
        Some(Variant::Boolean(_)) => 2,
        Some(_) => 9,
        None => 0,
    };
    1 + variant + 4 + 8 + 2
}

/// [`encoded_bytes`] of a stored row, without building its DataValue.
fn row_bytes(row: &HistoryRow) -> usize {
    let variant = match &row.value {
        Value::String(s) => 5 + s.len(),
        Value::Bool(_) => 2,
        Value::Float(_) | Value::Int(_) => 9,
    };
    1 + variant + 4 + 8 + 2
}

impl GatewayNodes {
    async fn history_node(
        &self,
        details: &ReadRawModifiedDetails,
        node: &mut HistoryNode,
        timestamps: TimestampsToReturn,
        byte_budget: usize,
    ) -> StatusCode {
        if details.is_read_modified {
            return StatusCode::BadHistoryOperationUnsupported;
        }
        match timestamps {
            // Only device (source) times are stored.
            TimestampsToReturn::Server => return StatusCode::BadTimestampNotSupported,
            TimestampsToReturn::Neither | TimestampsToReturn::Invalid => {
                return StatusCode::BadTimestampsToReturnInvalid
            }
            _ => {}
        }
        let cursor = match node
            .continuation_point()
            .and_then(|c| c.get::<HistoryCursor>())
        {
            Some(cursor) if &cursor.node == node.node_id() => cursor.clone(),
            Some(_) => return StatusCode::BadContinuationPointInvalid,
            None => match self.new_cursor(details, node.node_id()) {
                Ok(cursor) => cursor,
                Err(status) => return status,
            },
        };
        let cap = self.history_page.load(std::sync::atomic::Ordering::Relaxed);
        let mut page = match details.num_values_per_node {
            0 => cap,
            n => (n as usize).min(cap),
        };
        if let Some(remaining) = cursor.remaining {
            page = page.min(remaining);
        }
        let first_call = node.continuation_point().is_none();
        let start_bound = first_call && details.return_bounds;
        let (values, next) = match self
            .history_page(
                cursor,
                start_bound,
                details.return_bounds,
                page.max(1),
                byte_budget,
            )
            .await
        {
            Ok(out) => out,
            Err(status) => return status,
        };
        let empty = values.is_empty();
        node.set_result(HistoryData {
            data_values: Some(values),
        });
        node.set_next_continuation_point(next.map(|c| ContinuationPoint::new(Box::new(c))));
        if empty {
            StatusCode::GoodNoData
        } else {
            StatusCode::Good
        }
    }

    fn new_cursor(
        &self,
        details: &ReadRawModifiedDetails,
        node: &NodeId,
    ) -> Result<HistoryCursor, StatusCode> {
        let Some(id) = self.string_id(node) else {
            return Err(StatusCode::BadNodeIdUnknown);
        };
        let (device_id, metric) = {
            let model = self.model.read().unwrap_or_else(|e| e.into_inner());
            match model.space.get(id).map(|s| &s.kind) {
                Some(NodeKind::Metric {
                    device_id, metric, ..
                }) => (device_id.clone(), metric.clone()),
                Some(_) => return Err(StatusCode::BadHistoryOperationUnsupported),
                None => {
                    tracing::trace!(event = "opcua_history_unknown_node", node = %node);
                    return Err(StatusCode::BadNodeIdUnknown);
                }
            }
        };
        let start = gateway_time(&details.start_time);
        let end = gateway_time(&details.end_time);
        let one = Duration::from_micros(1);
        let wanted = details.num_values_per_node as usize;
        // Part 11 §6.4.3.2: StartTime > EndTime reads backwards; only one time given needs
        // numValuesPerNode and reads that many forwards from StartTime or backwards from
        // EndTime; StartTime = EndTime asks for the value at that instant.
        let (lo, hi, reverse, far, remaining) = match (start, end) {
            (None, None) => return Err(StatusCode::BadHistoryOperationInvalid),
            (Some(_), None) | (None, Some(_)) if wanted == 0 => {
                return Err(StatusCode::BadHistoryOperationInvalid)
            }
            (Some(s), None) => (s, TIME_MAX, false, None, Some(wanted)),
            (None, Some(e)) => (TIME_MIN, e.saturating_add(one), true, None, Some(wanted)),
            (Some(s), Some(e)) if s == e => (s, s.saturating_add(one), false, None, None),
            (Some(s), Some(e)) if s < e => (s, e, false, Some(e), None),
            (Some(s), Some(e)) => (
                e.saturating_add(one),
                s.saturating_add(one),
                true,
                Some(e),
                None,
            ),
        };
        Ok(HistoryCursor {
            node: node.clone(),
            device_id,
            metric,
            start: lo,
            end: hi,
            reverse,
            resume: None,
            end_bound: far,
            far_bound_only: false,
            remaining,
        })
    }

    fn query(
        &self,
        cursor: &HistoryCursor,
        start: Timestamp,
        end: Timestamp,
        limit: usize,
        reverse: bool,
        resume: Option<ResumeKey>,
    ) -> HistoryQuery {
        HistoryQuery {
            device_id: cursor.device_id.clone(),
            metric: cursor.metric.clone(),
            start,
            end,
            limit,
            reverse,
            resume,
        }
    }

    async fn fetch(&self, query: HistoryQuery) -> Result<HistoryPage, StatusCode> {
        if query.start >= query.end {
            return Ok(HistoryPage::default());
        }
        match self.backend.history(query).await {
            Ok(page) => Ok(page),
            Err(BackendError::UnknownSeries) => Ok(HistoryPage::default()),
            Err(BackendError::Unavailable(why)) => {
                debug!(event = "opcua_history_unavailable", error = %why);
                Err(StatusCode::BadResourceUnavailable)
            }
            Err(BackendError::Rejected(why)) => {
                debug!(event = "opcua_history_rejected", error = %why);
                Err(StatusCode::BadHistoryOperationInvalid)
            }
        }
    }

    /// The value at `at` or the nearest one beyond it in direction `later` (with its time),
    /// or a BadBoundNotFound placeholder.
    async fn bound(
        &self,
        cursor: &HistoryCursor,
        at: Timestamp,
        later: bool,
    ) -> Result<(DataValue, Option<Timestamp>), StatusCode> {
        let one = Duration::from_micros(1);
        let query = if later {
            self.query(cursor, at, TIME_MAX, 1, false, None)
        } else {
            self.query(cursor, TIME_MIN, at.saturating_add(one), 1, true, None)
        };
        let page = self.fetch(query).await?;
        Ok(match page.rows.first() {
            Some(row) => (history_value(row), Some(row.time)),
            None => (
                DataValue {
                    value: None,
                    status: Some(StatusCode::BadBoundNotFound),
                    source_timestamp: Some(ua_time(at)),
                    source_picoseconds: None,
                    server_timestamp: None,
                    server_picoseconds: None,
                },
                None,
            ),
        })
    }

    async fn history_page(
        &self,
        mut cursor: HistoryCursor,
        start_bound: bool,
        bounds: bool,
        page: usize,
        byte_budget: usize,
    ) -> Result<(Vec<DataValue>, Option<HistoryCursor>), StatusCode> {
        let mut out = Vec::with_capacity(page.min(1024));
        if cursor.far_bound_only {
            if let Some(far) = cursor.end_bound {
                out.push(self.bound(&cursor, far, !cursor.reverse).await?.0);
            }
            return Ok((out, None));
        }
        let one = Duration::from_micros(1);
        if start_bound {
            // Forward: the value at StartTime or just before; backward: at StartTime or after.
            let (at, later) = if cursor.reverse {
                (cursor.end.saturating_sub(one), true)
            } else {
                (cursor.start, false)
            };
            let (bound, time) = self.bound(&cursor, at, later).await?;
            // A value exactly at StartTime is the bound and the first raw row: return it once.
            if time != Some(at) {
                out.push(bound);
            }
        }
        let mut budget = page.saturating_sub(out.len()).max(1);
        let bytes_used: usize = out.iter().map(encoded_bytes).sum();
        let bytes_left = byte_budget.saturating_sub(bytes_used);
        let fetched = loop {
            let query = self.query(
                &cursor,
                cursor.start,
                cursor.end,
                budget,
                cursor.reverse,
                cursor.resume,
            );
            let fetched = self.fetch(query).await?;
            // Too many bytes for the response: ask again for the rows that fit (the resume
            // key then points right after them).
            let mut total = 0;
            let fit = fetched
                .rows
                .iter()
                .take_while(|row| {
                    total += row_bytes(row);
                    total <= bytes_left
                })
                .count()
                .max(1);
            if fit >= fetched.rows.len() {
                break fetched;
            }
            budget = fit;
        };
        out.extend(fetched.rows.iter().map(history_value));
        cursor.resume = fetched.resume;
        if let Some(remaining) = cursor.remaining.as_mut() {
            *remaining = remaining.saturating_sub(fetched.rows.len());
            if *remaining == 0 {
                return Ok((out, None));
            }
        }
        if cursor.resume.is_some() {
            return Ok((out, Some(cursor)));
        }
        if let (true, Some(far)) = (bounds, cursor.end_bound) {
            if out.len() >= page {
                // No room left in this call: the far bound comes alone with the next one.
                cursor.far_bound_only = true;
                return Ok((out, Some(cursor)));
            }
            out.push(self.bound(&cursor, far, !cursor.reverse).await?.0);
        }
        Ok((out, None))
    }
}

fn history_value(row: &HistoryRow) -> DataValue {
    let status = match row.origin {
        SampleOrigin::Aggregate => StatusCode::Good
            .set_info_type(StatusCodeInfoType::DataValue)
            .set_value_type(StatusCodeValueType::Calculated),
        _ => StatusCode::Good,
    };
    DataValue {
        value: Some(variant_of(&row.value)),
        status: Some(status),
        source_timestamp: Some(ua_time(row.time)),
        source_picoseconds: None,
        server_timestamp: None,
        server_picoseconds: None,
    }
}

/// Stores values and notifies subscribers, skipping NodeIds that are not (or no longer) in the
/// address space instead of stopping at the first one as `InMemoryNodeManager::set_values`
/// does.
fn store_and_notify(
    space: &RwLock<UaSpace>,
    subscriptions: &SubscriptionCache,
    values: Vec<(NodeId, DataValue)>,
) {
    let mut space = space.write();
    let mut changed = Vec::with_capacity(values.len());
    for (id, value) in values {
        if let Some(NodeType::Variable(v)) = space.find_mut(&id) {
            v.set_data_value(value);
            changed.push(id);
        }
    }
    subscriptions.maybe_notify(
        changed.iter().map(|id| (id, AttributeId::Value)),
        |node_id, attribute_id, index_range, data_encoding| {
            space.find(node_id)?.as_node().get_attribute(
                TimestampsToReturn::Both,
                attribute_id,
                index_range,
                data_encoding,
            )
        },
    );
}

impl GatewayNodes {
    fn validate_write(
        &self,
        model: &Model,
        write: &WriteNode,
        user: &str,
    ) -> Result<(NodeId, Variant, NewCommand), StatusCode> {
        let request = write.value();
        let Some(id) = self.string_id(&request.node_id) else {
            return Err(StatusCode::BadNodeIdUnknown);
        };
        let Some((device_id, command)) = model.commands.get(id) else {
            return Err(
                if model.space.get(id).is_some() || id.starts_with(GATEWAY_FOLDER) {
                    StatusCode::BadNotWritable
                } else {
                    StatusCode::BadNodeIdUnknown
                },
            );
        };
        if request.attribute_id != AttributeId::Value {
            return Err(StatusCode::BadNotWritable);
        }
        if !matches!(request.index_range, NumericRange::None) {
            return Err(StatusCode::BadWriteNotSupported);
        }
        let Some(variant) = request.value.value.as_ref() else {
            return Err(StatusCode::BadTypeMismatch);
        };
        let Some(value) = command_value(command.command_type, variant) else {
            return Err(StatusCode::BadTypeMismatch);
        };
        if !in_range(command, &value) {
            return Err(StatusCode::BadOutOfRange);
        }
        let payload =
            crate::chirpstack::payload::encode_command(command, &value).map_err(|why| {
                debug!(event = "opcua_command_invalid", command = %id, error = %why);
                StatusCode::BadOutOfRange
            })?;
        Ok((
            request.node_id.clone(),
            variant_of(&value),
            NewCommand {
                device_id: device_id.clone(),
                command_name: command.command_name.clone(),
                f_port: u32::from(command.command_port),
                confirmed: command.command_confirmed,
                payload,
                requested_by: format!("opcua:{}", sanitize_for_log(user, 64)),
            },
        ))
    }

    /// The written value becomes the variable's value; its `Status` child says "queued".
    fn publish_command_written(&self, node: &NodeId, value: Variant, record: &CommandRecord) {
        let Some(manager) = self.manager() else {
            return;
        };
        let now = DateTime::now();
        let status_id = self.node_id(&crate::opcua::address_space::command_status_node_id(
            &record.device_id,
            &record.command_name,
        ));
        store_and_notify(
            manager.address_space(),
            &self.subscriptions,
            vec![
                (node.clone(), DataValue::new_at(value, now)),
                (
                    status_id,
                    DataValue::new_at(
                        command_status_text(record.id, record.state.as_str(), None),
                        now,
                    ),
                ),
            ],
        );
    }

    fn manager(&self) -> Option<Arc<GatewayNodeManager>> {
        self.manager.get().and_then(|weak| weak.upgrade())
    }
}

/// The text of a command's `Status` variable.
pub fn command_status_text(id: u64, state: &str, detail: Option<&str>) -> String {
    match detail {
        Some(detail) if !detail.is_empty() => format!("#{id} {state}: {detail}"),
        _ => format!("#{id} {state}"),
    }
}

/// What the OPC UA actor does to the running address space.
#[derive(Clone)]
pub struct GatewayNodesHandle {
    manager: Arc<GatewayNodeManager>,
}

impl GatewayNodesHandle {
    pub fn new(manager: Arc<GatewayNodeManager>) -> Self {
        let _ = manager.inner().manager.set(Arc::downgrade(&manager));
        Self { manager }
    }

    fn nodes(&self) -> &GatewayNodes {
        self.manager.inner()
    }

    pub fn namespace_index(&self) -> u16 {
        self.nodes().namespace_index
    }

    /// Rows per HistoryRead call and node from now on (clamped to what the server's array
    /// limit, fixed at start, can carry).
    pub fn set_history_page(&self, rows: usize) {
        let rows = rows.clamp(1, MAX_HISTORY_PAGE_ROWS);
        self.nodes()
            .history_page
            .store(rows, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until the server built the address space; false on timeout.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut ready = self.nodes().ready.subscribe();
        tokio::time::timeout(timeout, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Publishes live values (unknown or removed metrics are skipped).
    pub fn publish(&self, updates: &[LiveUpdate]) {
        if updates.is_empty() {
            return;
        }
        let nodes = self.nodes();
        let values = updates
            .iter()
            .map(|u| (nodes.node_id(&u.node), data_value_of(u)))
            .collect();
        store_and_notify(self.manager.address_space(), &nodes.subscriptions, values);
    }

    /// Sets `Gateway/<name>` (Good, stamped now); `Variant::Empty` means "not yet"
    /// (BadWaitingForInitialData).
    pub fn set_gateway_values(&self, values: Vec<(&str, Variant)>) {
        let nodes = self.nodes();
        let now = DateTime::now();
        let values = values
            .into_iter()
            .map(|(name, value)| {
                let status = if matches!(value, Variant::Empty) {
                    StatusCode::BadWaitingForInitialData
                } else {
                    StatusCode::Good
                };
                (
                    nodes.node_id(&format!("{GATEWAY_FOLDER}/{name}")),
                    DataValue::new_at_status(value, now, status),
                )
            })
            .collect();
        store_and_notify(self.manager.address_space(), &nodes.subscriptions, values);
    }

    /// Sets `Gateway/Health/<role>` for each actor, creating the variables the first time.
    pub fn set_health(&self, health: &[(String, String)]) {
        let nodes = self.nodes();
        {
            let mut model = nodes.model.write().unwrap_or_else(|e| e.into_inner());
            let missing: Vec<&String> = health
                .iter()
                .map(|(role, _)| role)
                .filter(|role| !model.health_roles.contains(role))
                .collect();
            if !missing.is_empty() {
                let mut space = self.manager.address_space().write();
                let folder = nodes.node_id(&format!("{GATEWAY_FOLDER}/{}", gateway_vars::HEALTH));
                for role in missing {
                    let id = format!("{GATEWAY_FOLDER}/{}/{role}", gateway_vars::HEALTH);
                    nodes.insert_gateway_var(
                        &mut space,
                        &folder,
                        &id,
                        role,
                        DataTypeId::String,
                        Variant::from(""),
                    );
                    model.health_roles.push(role.clone());
                }
            }
        }
        let now = DateTime::now();
        let values = health
            .iter()
            .map(|(role, text)| {
                (
                    nodes.node_id(&format!("{GATEWAY_FOLDER}/{}/{role}", gateway_vars::HEALTH)),
                    DataValue::new_at(UAString::from(text.as_str()), now),
                )
            })
            .collect();
        store_and_notify(self.manager.address_space(), &nodes.subscriptions, values);
    }

    /// Sets the `Status` child of a command variable.
    pub fn set_command_status(&self, device_id: &str, command: &str, text: &str) {
        let nodes = self.nodes();
        let id = nodes.node_id(&crate::opcua::address_space::command_status_node_id(
            device_id, command,
        ));
        store_and_notify(
            self.manager.address_space(),
            &nodes.subscriptions,
            vec![(id, DataValue::new_now(UAString::from(text)))],
        );
    }

    /// The command that a `(device, command)` pair names, if configured.
    pub fn has_command(&self, device_id: &str, command: &str) -> bool {
        let model = self.nodes().model.read().unwrap_or_else(|e| e.into_inner());
        model
            .commands
            .contains_key(&crate::opcua::address_space::metric_node_id(
                device_id, command,
            ))
    }

    /// Applies a reloaded topology live: removed nodes go (their subscribers first see
    /// BadNodeIdUnknown), new ones appear, renamed ones change in place. Clients are told with
    /// a BaseModelChangeEvent on the Server object.
    pub fn apply_topology(&self, config: &AppConfig) -> AddressSpaceChanges {
        let nodes = self.nodes();
        let next = Model::new(config);
        let changes = {
            let mut model = nodes.model.write().unwrap_or_else(|e| e.into_inner());
            let changes = model.space.changes(&next.space);
            if !changes.is_empty() {
                // Subscribers of removed variables learn it before the node goes.
                let now = DateTime::now();
                let gone: Vec<(NodeId, DataValue)> = changes
                    .remove
                    .iter()
                    .map(|id| {
                        (
                            nodes.node_id(id),
                            DataValue::new_at_status(
                                Variant::Empty,
                                now,
                                StatusCode::BadNodeIdUnknown,
                            ),
                        )
                    })
                    .collect();
                store_and_notify(self.manager.address_space(), &nodes.subscriptions, gone);
                let mut space = self.manager.address_space().write();
                for id in &changes.remove {
                    let node = nodes.node_id(id);
                    let _ = space.delete(&nodes.node_id(&format!("{id}/EngineeringUnits")), true);
                    let _ = space.delete(&node, true);
                }
                for spec in &changes.update {
                    let node = nodes.node_id(&spec.id);
                    if let Some(found) = space.find_mut(&node) {
                        let found = found.as_mut_node();
                        let _ = found.set_attribute(
                            AttributeId::BrowseName,
                            Variant::from(QualifiedName::new(
                                nodes.namespace_index,
                                spec.browse_name.as_str(),
                            )),
                        );
                        found.set_display_name(LocalizedText::new("", &spec.browse_name));
                    }
                    // Unit, type or range changes: rebuild the variable's properties in place.
                    if let NodeKind::Metric {
                        metric_type, unit, ..
                    } = &spec.kind
                    {
                        if let Some(NodeType::Variable(v)) = space.find_mut(&node) {
                            v.set_data_type(data_type(*metric_type));
                        }
                        let units = nodes.node_id(&format!("{}/EngineeringUnits", spec.id));
                        let _ = space.delete(&units, true);
                        if let Some(unit) = unit {
                            nodes.insert_units(&mut space, &node, &spec.id, unit);
                        }
                    }
                    if let NodeKind::Command { command_type, .. } = &spec.kind {
                        let new_type: NodeId = data_type(*command_type).into();
                        let changed = matches!(
                            space.find(&node),
                            Some(NodeType::Variable(v)) if v.data_type() != new_type
                        );
                        if changed {
                            // The last written value is of the old type: forget it.
                            if let Some(NodeType::Variable(v)) = space.find_mut(&node) {
                                v.set_data_type(new_type);
                            }
                            GatewayNodes::set_waiting(&mut space, &node);
                        }
                    }
                }
                for spec in &changes.add {
                    nodes.insert_spec(&mut space, spec);
                }
                // A node replaced because it moved (a device to another application) lost
                // the references to its children, which did not change: link them again.
                let added: HashSet<&str> = changes.add.iter().map(|s| s.id.as_str()).collect();
                let replaced: HashSet<&str> = changes
                    .remove
                    .iter()
                    .map(String::as_str)
                    .filter(|id| added.contains(id))
                    .collect();
                for child in next.space.nodes_parents_first() {
                    let Some(parent) = child.parent.as_deref() else {
                        continue;
                    };
                    if replaced.contains(parent) && !added.contains(child.id.as_str()) {
                        let reference = match child.kind {
                            NodeKind::CommandStatus { .. } => ReferenceTypeId::HasComponent,
                            _ => ReferenceTypeId::Organizes,
                        };
                        space.insert_reference(
                            &nodes.node_id(parent),
                            &nodes.node_id(&child.id),
                            reference,
                        );
                    }
                }
                // Monitored items outlive their node: a re-added variable's subscribers get
                // its current value (waiting for data) instead of staying on BadNodeIdUnknown.
                let added_ids: Vec<NodeId> =
                    changes.add.iter().map(|s| nodes.node_id(&s.id)).collect();
                nodes.subscriptions.maybe_notify(
                    added_ids.iter().map(|id| (id, AttributeId::Value)),
                    |node_id, attribute_id, index_range, data_encoding| {
                        space.find(node_id)?.as_node().get_attribute(
                            TimestampsToReturn::Both,
                            attribute_id,
                            index_range,
                            data_encoding,
                        )
                    },
                );
            }
            model.space = next.space;
            model.commands = next.commands;
            changes
        };
        if !changes.is_empty() {
            let event = BaseModelChangeEventType {
                base: BaseEventType::new_now(
                    opcua::types::ObjectTypeId::BaseModelChangeEventType,
                    ByteString::from(random_event_id()),
                    "address space changed by a configuration reload",
                )
                .set_source_node(ObjectId::Server.into())
                .set_source_name(UAString::from("Server")),
            };
            let server: NodeId = ObjectId::Server.into();
            nodes
                .subscriptions
                .notify_events([(&event as &dyn Event, &server)].into_iter());
        }
        changes
    }
}

fn random_event_id() -> Vec<u8> {
    use rand::RngCore;
    let mut id = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(ty: MetricType, min: Option<f64>, max: Option<f64>) -> CommandConfig {
        CommandConfig {
            command_name: "setpoint".into(),
            command_id: 1,
            command_confirmed: false,
            command_port: 10,
            command_type: ty,
            command_min: min,
            command_max: max,
        }
    }

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
    fn written_values_are_taken_strictly_by_command_type() {
        use MetricType::*;
        assert_eq!(
            command_value(Int, &Variant::Int32(-3)),
            Some(Value::Int(-3))
        );
        assert_eq!(command_value(Int, &Variant::UInt64(7)), Some(Value::Int(7)));
        assert_eq!(command_value(Int, &Variant::UInt64(u64::MAX)), None);
        assert_eq!(command_value(Int, &Variant::Double(1.0)), None);
        assert_eq!(command_value(Int, &Variant::from("1")), None);
        assert_eq!(
            command_value(Float, &Variant::Float(1.5)),
            Some(Value::Float(1.5))
        );
        assert_eq!(command_value(Float, &Variant::Int64(1)), None);
        assert_eq!(
            command_value(Bool, &Variant::Boolean(true)),
            Some(Value::Bool(true))
        );
        assert_eq!(command_value(Bool, &Variant::Int64(1)), None);
        assert_eq!(
            command_value(String, &Variant::from("on")),
            Some(Value::String("on".into()))
        );
        assert_eq!(command_value(String, &Variant::Empty), None);
    }

    #[test]
    fn ranges_bound_numbers_and_refuse_nan() {
        let c = command(MetricType::Float, Some(0.0), Some(10.0));
        assert!(in_range(&c, &Value::Float(0.0)) && in_range(&c, &Value::Float(10.0)));
        assert!(!in_range(&c, &Value::Float(-0.1)) && !in_range(&c, &Value::Float(10.1)));
        assert!(!in_range(&c, &Value::Float(f64::NAN)));
        let open = command(MetricType::Int, None, Some(5.0));
        assert!(in_range(&open, &Value::Int(i64::MIN)) && !in_range(&open, &Value::Int(6)));
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
