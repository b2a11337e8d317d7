//! The gateway's address space as data: one folder per application, one per device, one
//! variable per metric and per command, plus the `Gateway` folder — each with the stable
//! NodeId documented in docs/opcua.md (namespace 2, string identifiers):
//!
//! | node | NodeId | browse name |
//! |---|---|---|
//! | application folder | `s=<application_id>` | `application_name` |
//! | device folder | `s=<device_id>` | `device_name` |
//! | metric variable | `s=<device_id>/<metric_name>` | `metric_name` |
//! | command variable | `s=<device_id>/<command_name>` | `command_name` |
//! | command status | `s=<device_id>/<command_name>/Status` | `Status` |
//!
//! NodeIds never depend on display names, so renaming a device keeps every NodeId a SCADA
//! project stored. [`AddressSpace::changes`] turns a topology reload into the nodes to add,
//! remove and rename, applied live by the OPC UA actor.

use std::collections::BTreeMap;

use crate::config::{AppConfig, MetricType};
use crate::naming::{command_node_id, command_status_node_id, metric_node_id, COMMAND_STATUS};

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Folder,
    /// A metric: read-only, historized.
    Metric {
        metric_type: MetricType,
        unit: Option<String>,
        device_id: String,
        metric: String,
    },
    /// A command: writable; a write queues a downlink.
    Command {
        command_type: MetricType,
        device_id: String,
        command: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// The last state of a command (read-only string).
    CommandStatus {
        device_id: String,
        command: String,
    },
}

/// One node: its identifier, parent and browse name.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// The string identifier in namespace 2.
    pub id: String,
    /// `None` for nodes directly under `Objects`.
    pub parent: Option<String>,
    pub browse_name: String,
    pub kind: NodeKind,
}

/// Every gateway node, by identifier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressSpace {
    nodes: BTreeMap<String, NodeSpec>,
}

/// What a topology change does to a live address space. Removals are listed children first,
/// additions parents first, so applying them in order never leaves an orphan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressSpaceChanges {
    pub remove: Vec<String>,
    pub add: Vec<NodeSpec>,
    /// Same NodeId, new browse name (or unit, type or range): updated in place, so clients'
    /// monitored items on it keep working.
    pub update: Vec<NodeSpec>,
}

impl AddressSpaceChanges {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty() && self.update.is_empty()
    }
}

impl AddressSpace {
    pub fn from_config(config: &AppConfig) -> Self {
        let mut space = Self::default();
        let mut add = |spec: NodeSpec| {
            space.nodes.insert(spec.id.clone(), spec);
        };
        for app in &config.applications {
            add(NodeSpec {
                id: app.application_id.clone(),
                parent: None,
                browse_name: app.application_name.clone(),
                kind: NodeKind::Folder,
            });
            for device in &app.devices {
                add(NodeSpec {
                    id: device.device_id.clone(),
                    parent: Some(app.application_id.clone()),
                    browse_name: device.device_name.clone(),
                    kind: NodeKind::Folder,
                });
                for metric in &device.metrics {
                    add(NodeSpec {
                        id: metric_node_id(&device.device_id, &metric.metric_name),
                        parent: Some(device.device_id.clone()),
                        browse_name: metric.metric_name.clone(),
                        kind: NodeKind::Metric {
                            metric_type: metric.metric_type,
                            unit: metric.metric_unit.clone(),
                            device_id: device.device_id.clone(),
                            metric: metric.metric_name.clone(),
                        },
                    });
                }
                for command in &device.commands {
                    let id = command_node_id(&device.device_id, &command.command_name);
                    add(NodeSpec {
                        id: id.clone(),
                        parent: Some(device.device_id.clone()),
                        browse_name: command.command_name.clone(),
                        kind: NodeKind::Command {
                            command_type: command.command_type,
                            device_id: device.device_id.clone(),
                            command: command.command_name.clone(),
                            min: command.command_min,
                            max: command.command_max,
                        },
                    });
                    add(NodeSpec {
                        id: command_status_node_id(&device.device_id, &command.command_name),
                        parent: Some(id),
                        browse_name: COMMAND_STATUS.into(),
                        kind: NodeKind::CommandStatus {
                            device_id: device.device_id.clone(),
                            command: command.command_name.clone(),
                        },
                    });
                }
            }
        }
        space
    }

    pub fn get(&self, id: &str) -> Option<&NodeSpec> {
        self.nodes.get(id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes in an order where every parent comes before its children.
    pub fn nodes_parents_first(&self) -> Vec<&NodeSpec> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let depth_of = |spec: &NodeSpec| {
            let mut depth = 0;
            let mut parent = spec.parent.as_ref();
            while let Some(p) = parent {
                depth += 1;
                parent = self.nodes.get(p).and_then(|n| n.parent.as_ref());
                if depth > 8 {
                    break; // the configuration allows at most 4 levels; never loop
                }
            }
            depth
        };
        let mut by_depth: Vec<(usize, &NodeSpec)> =
            self.nodes.values().map(|n| (depth_of(n), n)).collect();
        by_depth.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
        out.extend(by_depth.into_iter().map(|(_, n)| n));
        out
    }

    /// What turns `self` into `next`.
    pub fn changes(&self, next: &AddressSpace) -> AddressSpaceChanges {
        let mut changes = AddressSpaceChanges::default();
        for node in next.nodes_parents_first() {
            match self.nodes.get(&node.id) {
                None => changes.add.push(node.clone()),
                // A node that moved to another parent or changed kind is replaced.
                Some(old)
                    if old.parent != node.parent
                        || std::mem::discriminant(&old.kind)
                            != std::mem::discriminant(&node.kind) =>
                {
                    changes.remove.push(old.id.clone());
                    changes.add.push(node.clone());
                }
                Some(old) if old != node => changes.update.push(node.clone()),
                Some(_) => {}
            }
        }
        let mut removed: Vec<&NodeSpec> = self
            .nodes_parents_first()
            .into_iter()
            .filter(|n| !next.nodes.contains_key(&n.id))
            .collect();
        removed.reverse(); // children first
        changes
            .remove
            .splice(0..0, removed.into_iter().map(|n| n.id.clone()));
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApplicationConfig, CommandConfig, DeviceConfig, MetricConfig};

    fn config() -> AppConfig {
        let metric = |name: &str, ty| MetricConfig {
            metric_name: name.into(),
            chirpstack_metric_name: name.to_lowercase(),
            metric_type: ty,
            metric_unit: None,
        };
        AppConfig {
            applications: vec![ApplicationConfig {
                application_name: "Water".into(),
                application_id: "app-1".into(),
                discover: false,
                templates: Default::default(),
                devices: vec![
                    DeviceConfig {
                        device_name: "Tank".into(),
                        device_id: "dev-a".into(),
                        stale_threshold_seconds: None,
                        metrics: vec![
                            metric("Level", MetricType::Float),
                            metric("Moisture", MetricType::Float),
                        ],
                        commands: vec![CommandConfig {
                            command_name: "Valve".into(),
                            command_id: 1,
                            command_confirmed: true,
                            command_port: 10,
                            command_type: MetricType::Int,
                            command_min: Some(0.0),
                            command_max: Some(1.0),
                        }],
                    },
                    DeviceConfig {
                        device_name: "Field".into(),
                        device_id: "dev-b".into(),
                        stale_threshold_seconds: None,
                        metrics: vec![metric("Moisture", MetricType::Float)],
                        commands: vec![],
                    },
                ],
            }],
            ..AppConfig::default()
        }
    }

    #[test]
    fn node_ids_follow_the_contract_and_same_metric_names_do_not_collide() {
        let space = AddressSpace::from_config(&config());
        assert_eq!(space.get("app-1").unwrap().browse_name, "Water");
        assert_eq!(space.get("dev-a").unwrap().parent.as_deref(), Some("app-1"));
        assert!(space.get("dev-a/Moisture").is_some() && space.get("dev-b/Moisture").is_some());
        assert!(matches!(
            space.get("dev-a/Valve").unwrap().kind,
            NodeKind::Command { .. }
        ));
        assert_eq!(
            space.get("dev-a/Valve/Status").unwrap().parent.as_deref(),
            Some("dev-a/Valve")
        );
        let order: Vec<&str> = space
            .nodes_parents_first()
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert!(
            order.iter().position(|id| *id == "app-1") < order.iter().position(|id| *id == "dev-a")
        );
        assert!(
            order.iter().position(|id| *id == "dev-a")
                < order.iter().position(|id| *id == "dev-a/Level")
        );
    }

    #[test]
    fn a_topology_reload_becomes_adds_removes_and_in_place_renames() {
        let old_config = config();
        let mut new_config = old_config.clone();
        // Add a device, remove a metric, rename a device.
        new_config.applications[0].devices[0]
            .metrics
            .retain(|m| m.metric_name != "Moisture");
        new_config.applications[0].devices[1].device_name = "Meadow".into();
        let mut added = new_config.applications[0].devices[1].clone();
        added.device_id = "dev-c".into();
        added.device_name = "Orchard".into();
        new_config.applications[0].devices.push(added);
        let old = AddressSpace::from_config(&old_config);
        let new = AddressSpace::from_config(&new_config);
        let changes = old.changes(&new);
        assert_eq!(changes.remove, vec!["dev-a/Moisture"]);
        let added: Vec<&str> = changes.add.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(added, vec!["dev-c", "dev-c/Moisture"], "parents first");
        let updated: Vec<(&str, &str)> = changes
            .update
            .iter()
            .map(|n| (n.id.as_str(), n.browse_name.as_str()))
            .collect();
        assert_eq!(
            updated,
            vec![("dev-b", "Meadow")],
            "a rename keeps the NodeId"
        );
        assert!(old.changes(&old).is_empty());

        // Removing a whole device removes its children first.
        let mut smaller = old_config.clone();
        smaller.applications[0].devices.remove(0);
        let changes = old.changes(&AddressSpace::from_config(&smaller));
        let removed = &changes.remove;
        let pos = |id: &str| removed.iter().position(|r| r == id).unwrap();
        assert!(
            pos("dev-a/Valve/Status") < pos("dev-a/Valve") && pos("dev-a/Valve") < pos("dev-a")
        );
    }
}
