//! What the OPC UA actor does to the running address space: publish values, keep the
//! `Gateway` folder and command `Status` current, apply reloaded topologies live.

mod topology;

use std::sync::Arc;
use std::time::Duration;

use ua::server::SubscriptionCache;
use ua::types::{AttributeId, DataValue, DateTime, UAString, Variant};

use super::space::{gateway_value, Served};
use super::{data_value_of, GatewayNodeManager, GatewayNodes, MAX_HISTORY_PAGE_ROWS};
use crate::naming;
use crate::opcua::values::LiveUpdate;

/// Stores values by identifier and notifies subscribers, skipping identifiers that are not
/// (or no longer) variables of the address space.
pub(super) fn store_and_notify(
    nodes: &GatewayNodes,
    values: impl IntoIterator<Item = (String, DataValue)>,
) {
    let mut served = nodes.served.write();
    let mut changed = Vec::new();
    for (id, value) in values {
        if served.set_value(&id, value) {
            changed.push(id);
        }
    }
    notify_current(&served, &nodes.subscriptions, &changed);
}

/// Tells the subscribers of `ids` their current values.
pub(super) fn notify_current(served: &Served, subscriptions: &SubscriptionCache, ids: &[String]) {
    let node_ids: Vec<ua::types::NodeId> = ids
        .iter()
        .map(|id| ua::types::NodeId::new(served.namespace(), id.as_str()))
        .collect();
    subscriptions.maybe_notify(
        node_ids.iter().map(|id| (id, AttributeId::Value)),
        |node_id, attribute_id, index_range, _data_encoding| {
            let node = served.lookup(node_id)?;
            match attribute_id {
                AttributeId::Value => Some(Served::value_attribute(node, index_range)),
                _ => None,
            }
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
        Self { manager }
    }

    fn nodes(&self) -> &GatewayNodes {
        &self.manager
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
        store_and_notify(
            self.nodes(),
            updates.iter().map(|u| (u.node.clone(), data_value_of(u))),
        );
    }

    /// Sets `Gateway/<name>` (Good, stamped now); `Variant::Empty` means "not yet"
    /// (BadWaitingForInitialData).
    pub fn set_gateway_values(&self, values: Vec<(&str, Variant)>) {
        let now = DateTime::now();
        store_and_notify(
            self.nodes(),
            values
                .into_iter()
                .map(|(name, value)| (naming::gateway_node_id(name), gateway_value(value, now))),
        );
    }

    /// Sets `Gateway/Health/<role>` for each actor, creating the variables the first time.
    pub fn set_health(&self, health: &[(String, String)]) {
        let nodes = self.nodes();
        let now = DateTime::now();
        {
            let mut model = nodes.model.write().unwrap_or_else(|e| e.into_inner());
            let missing: Vec<&String> = health
                .iter()
                .map(|(role, _)| role)
                .filter(|role| !model.health_roles.contains(role))
                .collect();
            if !missing.is_empty() {
                let mut served = nodes.served.write();
                for role in missing {
                    served.add_health(role, now);
                    model.health_roles.push(role.clone());
                }
            }
        }
        store_and_notify(
            nodes,
            health.iter().map(|(role, text)| {
                (
                    naming::health_node_id(role),
                    DataValue::new_at(UAString::from(text.as_str()), now),
                )
            }),
        );
    }

    /// Sets the `Status` child of a command variable.
    pub fn set_command_status(&self, device_id: &str, command: &str, text: &str) {
        store_and_notify(
            self.nodes(),
            [(
                naming::command_status_node_id(device_id, command),
                DataValue::new_now(UAString::from(text)),
            )],
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
