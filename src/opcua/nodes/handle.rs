//! What the OPC UA actor does to the running address space: publish values, keep the
//! `Gateway` folder and command `Status` current, apply reloaded topologies live.

mod topology;

use std::sync::Arc;
use std::time::Duration;

use ua::nodes::NodeType;
use ua::server::address_space::AddressSpace as UaSpace;
use ua::server::SubscriptionCache;
use ua::sync::RwLock;
use ua::types::{
    AttributeId, DataTypeId, DataValue, DateTime, NodeId, StatusCode, TimestampsToReturn, UAString,
    Variant,
};

use super::{data_value_of, gateway_vars, GatewayNodeManager, GatewayNodes, MAX_HISTORY_PAGE_ROWS};
use crate::naming;
use crate::opcua::values::LiveUpdate;

/// Stores values and notifies subscribers, skipping NodeIds that are not (or no longer) in the
/// address space instead of stopping at the first one as `InMemoryNodeManager::set_values`
/// does.
pub(super) fn store_and_notify(
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
    notify_current(&space, subscriptions, &changed);
}

/// Tells the subscribers of `ids` their current values.
fn notify_current(space: &UaSpace, subscriptions: &SubscriptionCache, ids: &[NodeId]) {
    subscriptions.maybe_notify(
        ids.iter().map(|id| (id, AttributeId::Value)),
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
                    nodes.node_id(&naming::gateway_node_id(name)),
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
                let folder = nodes.node_id(&naming::gateway_node_id(gateway_vars::HEALTH));
                for role in missing {
                    let id = naming::health_node_id(role);
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
                    nodes.node_id(&naming::health_node_id(role)),
                    DataValue::new_at(UAString::from(text.as_str()), now),
                )
            })
            .collect();
        store_and_notify(self.manager.address_space(), &nodes.subscriptions, values);
    }

    /// Sets the `Status` child of a command variable.
    pub fn set_command_status(&self, device_id: &str, command: &str, text: &str) {
        let nodes = self.nodes();
        let id = nodes.node_id(&naming::command_status_node_id(device_id, command));
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
            .contains_key(&naming::command_node_id(device_id, command))
    }
}
