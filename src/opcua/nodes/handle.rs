//! What the OPC UA actor does to the running address space: publish values, keep the
//! `Gateway` folder and command `Status` current, apply reloaded topologies live.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use opcua::core_namespace::events::BaseModelChangeEventType;
use opcua::nodes::{BaseEventType, Event, NodeType};
use opcua::server::address_space::AddressSpace as UaSpace;
use opcua::server::SubscriptionCache;
use opcua::sync::RwLock;
use opcua::types::{
    AttributeId, ByteString, DataTypeId, DataValue, DateTime, LocalizedText, NodeId, ObjectId,
    QualifiedName, ReferenceTypeId, StatusCode, TimestampsToReturn, UAString, Variant,
};

use super::{
    data_type, data_value_of, gateway_vars, GatewayNodeManager, GatewayNodes, Model,
    MAX_HISTORY_PAGE_ROWS,
};
use crate::config::AppConfig;
use crate::naming;
use crate::opcua::address_space::{AddressSpaceChanges, NodeKind};
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
                notify_current(&space, &nodes.subscriptions, &added_ids);
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
