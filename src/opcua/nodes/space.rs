//! The address space the gateway serves, kept compact: one small record per node (its
//! identifier, browse name, parent, children and current value) instead of async-opcua's
//! generic node objects with forward and inverse reference sets (about 2.7 KB per node).
//!
//! References are implied by the tree: a folder `Organizes` its children (the top folders are
//! organized by the standard `Objects` folder), a command `HasComponent` its `Status`, a metric
//! `HasProperty` its `EngineeringUnits`, and every node `HasTypeDefinition` its standard type.
//! Attribute reads build the standard node object of one node on demand
//! ([`Served::materialize`]), so every attribute answers exactly as a stored node would.

use std::borrow::Cow;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use ua::nodes::{AccessLevel, NodeType, ObjectBuilder, VariableBuilder};
use ua::types::{
    DataTypeId, DataValue, DateTime, EUInformation, ExtensionObject, LocalizedText, NodeClass,
    NodeId, NumericRange, ObjectTypeId, QualifiedName, ReferenceTypeId, StatusCode, UAString,
    VariableTypeId, Variant,
};

use super::{data_type, gateway_vars};
use crate::naming::{self, GATEWAY_FOLDER};
use crate::opcua::address_space::{AddressSpace, NodeKind};

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Folder,
    /// A metric variable: read-only, historized; its device is the identifier up to the first
    /// separator.
    Metric {
        data_type: DataTypeId,
    },
    /// The `EngineeringUnits` property of a metric.
    Units {
        unit: Box<str>,
    },
    /// A command variable: writable.
    Command {
        data_type: DataTypeId,
    },
    /// The `Status` string of a command.
    CommandStatus,
    /// A read-only member of the `Gateway` folder (or of `Gateway/Health`).
    Gateway {
        data_type: DataTypeId,
    },
}

/// One node of the served address space (144 bytes and its identifier: at 10,000 devices x
/// 11 metrics the space holds 160,000 of them).
#[derive(Debug)]
pub(super) struct Node {
    pub id: Box<str>,
    /// [`NONE`]: organized by the standard `Objects` folder.
    parent: u32,
    /// `None`: the identifier's last segment (a metric's name, `EngineeringUnits`), not
    /// stored twice.
    name: Option<Box<str>>,
    pub kind: Kind,
    /// The children in the order they were added: the first and last ([`NONE`] without any)
    /// and each child's next sibling, instead of a vector on the heap per parent.
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
    /// The current value (variables only). A units property keeps only its timestamps here:
    /// its `EUInformation` is built from [`Kind::Units`] when read.
    value: DataValue,
}

impl Node {
    /// The access level (and user access level, the same here) of a variable; `None` for a
    /// folder.
    pub fn access_level(&self) -> Option<AccessLevel> {
        let read = AccessLevel::CURRENT_READ;
        match self.kind {
            Kind::Folder => None,
            Kind::Metric { .. } => Some(read | AccessLevel::HISTORY_READ),
            Kind::Command { .. } => Some(read | AccessLevel::CURRENT_WRITE),
            Kind::CommandStatus | Kind::Units { .. } | Kind::Gateway { .. } => Some(read),
        }
    }

    pub fn node_class(&self) -> NodeClass {
        match self.kind {
            Kind::Folder => NodeClass::Object,
            _ => NodeClass::Variable,
        }
    }

    /// The parent's position; `None`: organized by the standard `Objects` folder.
    pub fn parent(&self) -> Option<u32> {
        (self.parent != NONE).then_some(self.parent)
    }

    /// The reference from the parent to this node.
    pub fn reference_from_parent(&self) -> ReferenceTypeId {
        match self.kind {
            Kind::CommandStatus => ReferenceTypeId::HasComponent,
            Kind::Units { .. } => ReferenceTypeId::HasProperty,
            _ => ReferenceTypeId::Organizes,
        }
    }

    pub fn type_definition(&self) -> NodeId {
        match self.kind {
            Kind::Folder => ObjectTypeId::FolderType.into(),
            Kind::Units { .. } => VariableTypeId::PropertyType.into(),
            _ => VariableTypeId::BaseDataVariableType.into(),
        }
    }

    /// The browse name's text (and display name).
    pub fn name(&self) -> &str {
        match &self.name {
            Some(name) => name,
            None => last_segment(&self.id),
        }
    }

    /// The browse name's namespace: the standard property name is in namespace 0.
    pub fn browse_name(&self, namespace: u16) -> QualifiedName {
        let namespace = match self.kind {
            Kind::Units { .. } => 0,
            _ => namespace,
        };
        QualifiedName::new(namespace, self.name())
    }

    pub fn display_name(&self) -> LocalizedText {
        LocalizedText::new("", self.name())
    }

    /// The current value and its timestamps (a null value for a folder).
    pub fn value(&self) -> Cow<'_, DataValue> {
        match &self.kind {
            Kind::Units { unit } => Cow::Owned(DataValue {
                value: Some(units_information(unit).into()),
                ..self.value.clone()
            }),
            _ => Cow::Borrowed(&self.value),
        }
    }

    /// `(device_id, metric)` of a metric variable.
    pub fn series(&self) -> Option<(&str, &str)> {
        match self.kind {
            Kind::Metric { .. } => self.id.split_once(naming::SEPARATOR),
            _ => None,
        }
    }
}

/// No node (a child or sibling link).
const NONE: u32 = u32::MAX;

/// What follows the identifier's last separator (all of it without one).
fn last_segment(id: &str) -> &str {
    id.rsplit(naming::SEPARATOR).next().unwrap_or(id)
}

/// The value of an `EngineeringUnits` property.
fn units_information(unit: &str) -> ExtensionObject {
    ExtensionObject::from_message(EUInformation {
        namespace_uri: UAString::null(),
        unit_id: -1,
        display_name: LocalizedText::new("", unit),
        description: LocalizedText::new("", unit),
    })
}

/// Room for the `Gateway` folder's own nodes when the served space is built.
const GATEWAY_NODES_ROOM: usize = 32;

/// The served address space.
#[derive(Debug, Default)]
pub(super) struct Served {
    namespace: u16,
    nodes: Vec<Node>,
    /// Positions in `nodes`, found by the node's identifier (4 bytes a node: the identifier
    /// is not stored a second time).
    index: HashTable<u32>,
    /// foldhash (hashbrown's default), seeded per process: every Read, Browse and sample looks
    /// a node up here, and SipHash was 5 % of the gateway's CPU in a Read of 10,000 variables.
    hasher: DefaultHashBuilder,
    /// The nodes the `Objects` folder organizes.
    roots: Vec<u32>,
}

/// The string identifier of a NodeId in the gateway's namespace `namespace`.
pub(super) fn string_id(namespace: u16, id: &NodeId) -> Option<&str> {
    if id.namespace != namespace {
        return None;
    }
    match &id.identifier {
        ua::types::Identifier::String(s) => Some(s.as_ref()),
        _ => None,
    }
}

/// A variable waiting for its first value.
pub(super) fn waiting(now: DateTime) -> DataValue {
    DataValue {
        value: Some(Variant::Empty),
        status: Some(StatusCode::BadWaitingForInitialData),
        source_timestamp: Some(now),
        source_picoseconds: None,
        server_timestamp: Some(now),
        server_picoseconds: None,
    }
}

/// What a units property keeps: only the timestamps (its `EUInformation` is built from the
/// unit when read, see [`Node::value`]).
fn units_stamps(now: DateTime) -> DataValue {
    DataValue {
        value: None,
        ..DataValue::new_at(Variant::Empty, now)
    }
}

/// The value of a `Gateway` member set to `value` (`Empty`: not known yet).
pub(super) fn gateway_value(value: Variant, now: DateTime) -> DataValue {
    let status = if matches!(value, Variant::Empty) {
        StatusCode::BadWaitingForInitialData
    } else {
        StatusCode::Good
    };
    DataValue::new_at_status(value, now, status)
}

/// The members of the `Gateway` folder with their types and first values.
fn gateway_members() -> [(&'static str, DataTypeId, Variant); 7] {
    [
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
    ]
}

impl Served {
    /// The gateway's nodes for `space`, the `Gateway` folder and the health variables of
    /// `health_roles`. Values of variables `previous` also has (same identifier, same kind of
    /// node) carry over; the others start as the server starts them.
    pub fn build(
        namespace: u16,
        space: &AddressSpace,
        health_roles: &[String],
        previous: Option<&Served>,
    ) -> Self {
        let now = DateTime::now();
        let specs = space.nodes_parents_first();
        // Room for every node at once: a metric with a unit adds its EngineeringUnits
        // property, and a vector that doubles past its capacity holds up to twice the nodes
        // (at 10,000 devices x 11 metrics, ~11 MB never used).
        let units = specs
            .iter()
            .filter(|spec| matches!(&spec.kind, NodeKind::Metric { unit: Some(_), .. }))
            .count();
        let capacity = specs.len() + units + GATEWAY_NODES_ROOM + health_roles.len();
        let mut served = Self {
            namespace,
            nodes: Vec::with_capacity(capacity),
            index: HashTable::with_capacity(capacity),
            hasher: DefaultHashBuilder::default(),
            roots: Vec::new(),
        };
        for spec in specs {
            let parent = spec.parent.as_deref().and_then(|p| served.find(p));
            let (kind, value) = match &spec.kind {
                NodeKind::Folder => (Kind::Folder, DataValue::null()),
                NodeKind::Metric { metric_type, .. } => (
                    Kind::Metric {
                        data_type: data_type(*metric_type),
                    },
                    waiting(now),
                ),
                NodeKind::Command { command_type, .. } => (
                    Kind::Command {
                        data_type: data_type(*command_type),
                    },
                    waiting(now),
                ),
                NodeKind::CommandStatus { .. } => {
                    (Kind::CommandStatus, DataValue::new_at("none", now))
                }
            };
            let index = served.push(&spec.id, parent, &spec.browse_name, kind, value);
            if let NodeKind::Metric {
                unit: Some(unit), ..
            } = &spec.kind
            {
                served.push(
                    &naming::engineering_units_node_id(&spec.id),
                    Some(index),
                    naming::ENGINEERING_UNITS,
                    Kind::Units {
                        unit: unit.as_str().into(),
                    },
                    units_stamps(now),
                );
            }
        }
        let folder = served.push(
            GATEWAY_FOLDER,
            None,
            GATEWAY_FOLDER,
            Kind::Folder,
            DataValue::null(),
        );
        for (name, data_type, value) in gateway_members() {
            served.push(
                &naming::gateway_node_id(name),
                Some(folder),
                name,
                Kind::Gateway { data_type },
                gateway_value(value, now),
            );
        }
        served.push(
            &naming::gateway_node_id(gateway_vars::HEALTH),
            Some(folder),
            gateway_vars::HEALTH,
            Kind::Folder,
            DataValue::null(),
        );
        for role in health_roles {
            served.add_health(role, now);
        }
        if let Some(previous) = previous {
            for node in &mut served.nodes {
                let Some(old) = previous.get(&node.id) else {
                    continue;
                };
                // A units property is rebuilt from its (maybe new) unit; a variable keeps
                // its value when it stays the same kind of node.
                let keep = !matches!(node.kind, Kind::Folder | Kind::Units { .. })
                    && std::mem::discriminant(&old.kind) == std::mem::discriminant(&node.kind);
                if keep {
                    node.value = old.value.clone();
                }
            }
        }
        served
    }

    /// Adds `Gateway/Health/<role>` (empty text) unless it exists.
    pub fn add_health(&mut self, role: &str, now: DateTime) {
        let id = naming::health_node_id(role);
        if self.find(&id).is_some() {
            return;
        }
        let folder = self.find(&naming::gateway_node_id(gateway_vars::HEALTH));
        self.push(
            &id,
            folder,
            role,
            Kind::Gateway {
                data_type: DataTypeId::String,
            },
            DataValue::new_at_status(Variant::from(""), now, StatusCode::Good),
        );
    }

    fn push(
        &mut self,
        id: &str,
        parent: Option<u32>,
        browse_name: &str,
        kind: Kind,
        value: DataValue,
    ) -> u32 {
        let index = self.nodes.len() as u32;
        let name = (browse_name != last_segment(id)).then(|| browse_name.into());
        self.nodes.push(Node {
            id: id.into(),
            parent: parent.unwrap_or(NONE),
            name,
            kind,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            value,
        });
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.index.insert_unique(hasher.hash_one(id), index, |&i| {
            hasher.hash_one(&*nodes[i as usize].id)
        });
        match parent {
            Some(parent) => {
                let parent = &mut self.nodes[parent as usize];
                match std::mem::replace(&mut parent.last_child, index) {
                    NONE => parent.first_child = index,
                    last => self.nodes[last as usize].next_sibling = index,
                }
            }
            None => self.roots.push(index),
        }
        index
    }

    pub fn namespace(&self) -> u16 {
        self.namespace
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn find(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        (self
            .index
            .find(hash, |&i| *self.nodes[i as usize].id == *id))
        .copied()
    }

    pub fn get(&self, id: &str) -> Option<&Node> {
        self.find(id).map(|i| &self.nodes[i as usize])
    }

    pub fn node(&self, index: u32) -> &Node {
        &self.nodes[index as usize]
    }

    /// The node a NodeId names, if it is one of ours.
    pub fn lookup(&self, id: &NodeId) -> Option<&Node> {
        self.string_id(id).and_then(|id| self.get(id))
    }

    pub fn string_id<'a>(&self, id: &'a NodeId) -> Option<&'a str> {
        string_id(self.namespace, id)
    }

    pub fn node_id(&self, node: &Node) -> NodeId {
        NodeId::new(self.namespace, String::from(&*node.id))
    }

    /// The children of `node`, in the order they were added.
    pub fn children<'a>(&'a self, node: &Node) -> impl Iterator<Item = &'a Node> + 'a {
        let mut next = node.first_child;
        std::iter::from_fn(move || {
            let child = self.nodes.get(next as usize)?;
            next = child.next_sibling;
            Some(child)
        })
    }

    /// The nodes the `Objects` folder organizes.
    pub fn roots(&self) -> &[u32] {
        &self.roots
    }

    /// Sets the value of a variable; its index, or None if `id` is not a variable here.
    pub fn set_value(&mut self, id: &str, value: DataValue) -> Option<u32> {
        let index = self.find(id)?;
        let node = &mut self.nodes[index as usize];
        if node.kind == Kind::Folder {
            return None;
        }
        node.value = value;
        Some(index)
    }

    /// The Value attribute as a stored variable gives it: the index range applied, both
    /// timestamps (a subscription gets both; a Read drops the ones not asked for).
    pub fn value_attribute(node: &Node, index_range: &NumericRange) -> DataValue {
        let stored = node.value();
        let mut result = DataValue {
            value: None,
            status: None,
            source_timestamp: stored.source_timestamp,
            source_picoseconds: stored.source_picoseconds,
            server_timestamp: stored.server_timestamp,
            server_picoseconds: stored.server_picoseconds,
        };
        if let Some(value) = &stored.value {
            match value.range_of(index_range) {
                Ok(value) => {
                    result.value = Some(value);
                    result.status = stored.status;
                }
                Err(status) => result.status = Some(status),
            }
        }
        result
    }

    /// The standard node object of `node`, built for one read: every attribute answers as a
    /// node stored in async-opcua's address space would.
    pub fn materialize(&self, node: &Node) -> NodeType {
        let id = self.node_id(node);
        let name = node.browse_name(self.namespace);
        let display = node.display_name();
        let variable = |data_type: DataTypeId, access: AccessLevel| {
            VariableBuilder::new(&id, name.clone(), display.clone())
                .data_type(data_type)
                .value_rank(-1)
                .access_level(access)
                .user_access_level(access)
        };
        let access = node.access_level().unwrap_or(AccessLevel::CURRENT_READ);
        let mut built = match &node.kind {
            Kind::Folder => {
                return NodeType::Object(Box::new(ObjectBuilder::new(&id, name, display).build()))
            }
            Kind::Metric { data_type } => variable(*data_type, access)
                .historizing(true)
                .minimum_sampling_interval(0.0)
                .build(),
            Kind::Command { data_type } => variable(*data_type, access).build(),
            Kind::CommandStatus => variable(DataTypeId::String, access).build(),
            Kind::Units { .. } => variable(DataTypeId::EUInformation, access).build(),
            Kind::Gateway { data_type } => variable(*data_type, access)
                .minimum_sampling_interval(0.0)
                .build(),
        };
        built.set_data_value(node.value().into_owned());
        NodeType::Variable(Box::new(built))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_stays_small_and_a_units_property_keeps_no_value_of_its_own() {
        // 160,000 nodes at 10,000 devices x 11 metrics: every 8 bytes here is 1.3 MB.
        assert!(std::mem::size_of::<Node>() <= 144);
        let mut served = Served::default();
        let now = DateTime::now();
        let metric = served.push(
            "dev/temp",
            None,
            "temp",
            Kind::Metric {
                data_type: DataTypeId::Double,
            },
            waiting(now),
        );
        let units = served.push(
            "dev/temp/EngineeringUnits",
            Some(metric),
            naming::ENGINEERING_UNITS,
            Kind::Units { unit: "°C".into() },
            units_stamps(now),
        );
        let (metric, units) = (served.node(metric), served.node(units));
        // Browse names read back from the identifier, not stored twice.
        assert!(metric.name.is_none() && units.name.is_none());
        assert_eq!(
            (metric.name(), units.name()),
            ("temp", naming::ENGINEERING_UNITS)
        );
        assert!(units.value.value.is_none());
        let expected: Variant = units_information("°C").into();
        assert_eq!(units.value().value, Some(expected));
        assert_eq!(units.value().source_timestamp, Some(now));
        assert_eq!(served.find("dev/temp/EngineeringUnits"), Some(1));
        assert_eq!(served.find("dev/te"), None);
        assert_eq!((metric.parent(), units.parent()), (None, Some(0)));
        let children: Vec<&str> = served.children(metric).map(|c| &*c.id).collect();
        assert_eq!(children, ["dev/temp/EngineeringUnits"]);
    }
}
