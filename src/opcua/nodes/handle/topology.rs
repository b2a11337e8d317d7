//! Applying a reloaded topology to the running address space.

use std::sync::Arc;

use ua::core_namespace::events::BaseModelChangeEventType;
use ua::nodes::{BaseEventType, Event};
use ua::types::{ByteString, DataValue, DateTime, NodeId, ObjectId, StatusCode, UAString, Variant};

use super::{notify_current, GatewayNodesHandle};
use crate::config::AppConfig;
use crate::opcua::address_space::{AddressSpace, AddressSpaceChanges, NodeKind};
use crate::opcua::nodes::space::{waiting, Kind, Served};
use crate::opcua::nodes::{GatewayNodes, Model};

impl GatewayNodesHandle {
    /// Applies a reloaded topology live: removed nodes go (their subscribers first see
    /// BadNodeIdUnknown), new ones appear, renamed ones change in place (values and monitored
    /// items kept). Clients are told with a BaseModelChangeEvent on the Server object.
    pub fn apply_topology(&self, config: &Arc<AppConfig>) -> AddressSpaceChanges {
        let nodes = self.nodes();
        let next = Model::new(config);
        let changes = {
            let mut model = nodes.model.write().unwrap_or_else(|e| e.into_inner());
            let before = AddressSpace::from_config(&model.config);
            let after = AddressSpace::from_config(config);
            let changes = before.changes(&after);
            if !changes.is_empty() {
                apply_changes(nodes, &changes, &after, &model.health_roles);
            }
            model.config = next.config;
            model.commands = next.commands;
            changes
        };
        if !changes.is_empty() {
            announce_model_change(nodes);
        }
        changes
    }
}

/// Rebuilds the served address space for `next`: values of the nodes that stay carry over,
/// except a command whose type changed (its last written value is of the old type).
fn apply_changes(
    nodes: &GatewayNodes,
    changes: &AddressSpaceChanges,
    next: &AddressSpace,
    health_roles: &[String],
) {
    let mut served = nodes.served.write();
    // Subscribers of removed variables learn it before the node goes.
    let now = DateTime::now();
    for id in &changes.remove {
        served.set_value(
            id,
            DataValue::new_at_status(Variant::Empty, now, StatusCode::BadNodeIdUnknown),
        );
    }
    notify_current(&served, &nodes.subscriptions, &changes.remove);
    // A replaced node (moved or of another kind) starts afresh.
    let mut rebuilt = Served::build(nodes.namespace_index, next, health_roles, Some(&served));
    for spec in &changes.add {
        reset(&mut rebuilt, &spec.id, now);
    }
    for spec in &changes.update {
        if let NodeKind::Command { .. } = spec.kind {
            let retyped = served
                .get(&spec.id)
                .zip(rebuilt.get(&spec.id))
                .is_some_and(|(old, new)| old.kind != new.kind);
            if retyped {
                reset(&mut rebuilt, &spec.id, now);
            }
        }
    }
    *served = rebuilt;
    // Monitored items outlive their node: a re-added variable's subscribers get its current
    // value (waiting for data) instead of staying on BadNodeIdUnknown.
    let added: Vec<String> = changes.add.iter().map(|s| s.id.clone()).collect();
    notify_current(&served, &nodes.subscriptions, &added);
}

/// A node's value as a new node has it.
fn reset(served: &mut Served, id: &str, now: DateTime) {
    let fresh = match served.get(id).map(|n| &n.kind) {
        Some(Kind::CommandStatus) => DataValue::new_at("none", now),
        Some(Kind::Folder | Kind::Units { .. }) | None => return,
        Some(_) => waiting(now),
    };
    served.set_value(id, fresh);
}

/// Tells clients the address space changed (a BaseModelChangeEvent on the Server object).
fn announce_model_change(nodes: &GatewayNodes) {
    let event = BaseModelChangeEventType {
        base: BaseEventType::new_now(
            ua::types::ObjectTypeId::BaseModelChangeEventType,
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

fn random_event_id() -> Vec<u8> {
    use rand::RngCore;
    let mut id = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}
