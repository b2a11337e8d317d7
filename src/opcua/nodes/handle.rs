//! What the OPC UA actor does to the running address space: publish values, keep the
//! `Gateway` folder and command `Status` current, apply reloaded topologies live.

mod topology;

use std::sync::Arc;
use std::time::Duration;

use ua::server::SubscriptionCache;
use ua::types::{AttributeId, DataValue, DateTime, UAString, Variant};

use super::space::{gateway_value, Node, Served};
use super::{data_value_of, GatewayNodeManager, GatewayNodes, MAX_HISTORY_PAGE_ROWS};
use crate::naming;
use crate::opcua::values::LiveUpdate;

/// Stores values by identifier and notifies subscribers, skipping identifiers that are not
/// (or no longer) variables of the address space.
pub(super) fn store_and_notify<S: AsRef<str>>(
    nodes: &GatewayNodes,
    values: impl IntoIterator<Item = (S, DataValue)>,
) {
    let mut served = nodes.served.write();
    let changed: Vec<u32> = (values.into_iter())
        .filter_map(|(id, value)| served.set_value(id.as_ref(), value))
        .collect();
    let served = &*served;
    notify_nodes(
        served,
        &nodes.subscriptions,
        changed.into_iter().map(|index| served.node(index)),
    );
}

/// Tells the subscribers of `ids` their current values.
pub(super) fn notify_current(served: &Served, subscriptions: &SubscriptionCache, ids: &[String]) {
    notify_nodes(
        served,
        subscriptions,
        ids.iter().filter_map(|id| served.get(id)),
    );
}

/// Tells the subscribers of each node its current value. The subscriptions are looked up by
/// the node's identifier as it is (no NodeId built per node): during a catch-up every sample
/// passes here, most of them for variables no one monitors.
pub(super) fn notify_nodes<'a>(
    served: &'a Served,
    subscriptions: &SubscriptionCache,
    nodes: impl Iterator<Item = &'a Node>,
) {
    let namespace = served.namespace();
    let mut notifier = subscriptions.data_notifier();
    for node in nodes {
        let Some(mut batch) = notifier.notify_for((namespace, &*node.id), AttributeId::Value)
        else {
            continue;
        };
        for (handle, entry) in batch.entries() {
            batch.data_value_to_item(Served::value_attribute(node, &entry.index_range), handle);
        }
    }
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

    /// Tests: `hook` runs whenever monitored items have their initial values and are not yet
    /// registered with their subscriptions.
    #[cfg(test)]
    pub fn after_initial_values(&self, hook: impl Fn() + Send + Sync + 'static) {
        *self.nodes().after_initial_values.lock().unwrap() = Some(Box::new(hook));
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
            updates.iter().map(|u| (u.node.as_str(), data_value_of(u))),
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
