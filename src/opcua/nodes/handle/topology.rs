//! Applying a reloaded topology to the running address space, one step per kind of change.

use std::collections::HashSet;

use ua::core_namespace::events::BaseModelChangeEventType;
use ua::nodes::{BaseEventType, Event, NodeType};
use ua::server::address_space::AddressSpace as UaSpace;
use ua::types::{
    AttributeId, ByteString, DataValue, DateTime, LocalizedText, NodeId, ObjectId, QualifiedName,
    ReferenceTypeId, StatusCode, UAString, Variant,
};

use super::{notify_current, store_and_notify, GatewayNodesHandle};
use crate::config::AppConfig;
use crate::naming;
use crate::opcua::address_space::{AddressSpace, AddressSpaceChanges, NodeKind, NodeSpec};
use crate::opcua::nodes::{data_type, GatewayNodes, Model};

impl GatewayNodesHandle {
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
                self.apply_changes(&changes, &next.space);
            }
            model.space = next.space;
            model.commands = next.commands;
            changes
        };
        if !changes.is_empty() {
            announce_model_change(nodes);
        }
        changes
    }

    /// Removes, updates and adds nodes; `next` is the address space being moved to.
    fn apply_changes(&self, changes: &AddressSpaceChanges, next: &AddressSpace) {
        let nodes = self.nodes();
        // Subscribers of removed variables learn it before the node goes.
        let now = DateTime::now();
        let gone: Vec<(NodeId, DataValue)> = changes
            .remove
            .iter()
            .map(|id| {
                (
                    nodes.node_id(id),
                    DataValue::new_at_status(Variant::Empty, now, StatusCode::BadNodeIdUnknown),
                )
            })
            .collect();
        store_and_notify(self.manager.address_space(), &nodes.subscriptions, gone);
        let mut space = self.manager.address_space().write();
        for id in &changes.remove {
            let node = nodes.node_id(id);
            let _ = space.delete(&nodes.node_id(&naming::engineering_units_node_id(id)), true);
            let _ = space.delete(&node, true);
        }
        for spec in &changes.update {
            update_in_place(nodes, &mut space, spec);
        }
        for spec in &changes.add {
            nodes.insert_spec(&mut space, spec);
        }
        relink_children_of_moved_nodes(nodes, &mut space, changes, next);
        // Monitored items outlive their node: a re-added variable's subscribers get
        // its current value (waiting for data) instead of staying on BadNodeIdUnknown.
        let added_ids: Vec<NodeId> = changes.add.iter().map(|s| nodes.node_id(&s.id)).collect();
        notify_current(&space, &nodes.subscriptions, &added_ids);
    }
}

/// A node that stays: new name, and for variables new unit, type or range.
fn update_in_place(nodes: &GatewayNodes, space: &mut UaSpace, spec: &NodeSpec) {
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
        let units = nodes.node_id(&naming::engineering_units_node_id(&spec.id));
        let _ = space.delete(&units, true);
        if let Some(unit) = unit {
            nodes.insert_units(space, &node, &spec.id, unit);
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
            GatewayNodes::set_waiting(space, &node);
        }
    }
}

/// A node replaced because it moved (a device to another application) lost the references to
/// its children, which did not change: link them again.
fn relink_children_of_moved_nodes(
    nodes: &GatewayNodes,
    space: &mut UaSpace,
    changes: &AddressSpaceChanges,
    next: &AddressSpace,
) {
    let added: HashSet<&str> = changes.add.iter().map(|s| s.id.as_str()).collect();
    let replaced: HashSet<&str> = changes
        .remove
        .iter()
        .map(String::as_str)
        .filter(|id| added.contains(id))
        .collect();
    for child in next.nodes_parents_first() {
        let Some(parent) = child.parent.as_deref() else {
            continue;
        };
        if replaced.contains(parent) && !added.contains(child.id.as_str()) {
            let reference = match child.kind {
                NodeKind::CommandStatus { .. } => ReferenceTypeId::HasComponent,
                _ => ReferenceTypeId::Organizes,
            };
            space.insert_reference(&nodes.node_id(parent), &nodes.node_id(&child.id), reference);
        }
    }
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
