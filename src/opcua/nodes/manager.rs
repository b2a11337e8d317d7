//! The OPC UA services over the served address space: Browse (with continuation points),
//! TranslateBrowsePathsToNodeIds, Read of every attribute, monitored items, HistoryRead and
//! Write, answered from [`Served`] instead of a store of node objects.

use std::collections::{HashSet, VecDeque};

use async_trait::async_trait;
use ua::nodes::{AccessLevel, DefaultTypeTree, ReferenceDirection};
use ua::server::address_space::{
    is_supported_data_encoding, read_node_value, user_access_level, validate_node_read,
};
use ua::server::diagnostics::NamespaceMetadata;
use ua::server::node_manager::{
    BrowseNode, BrowsePathItem, ExternalReference, ExternalReferenceRequest, HistoryNode,
    MonitoredItemRef, NodeManager, NodeMetadata, ParsedReadValueId, ReadNode, RegisterNodeItem,
    RequestContext, ServerContext, WriteNode,
};
use ua::server::CreateMonitoredItem;
use ua::types::{
    AttributeId, BrowseDescriptionResultMask, BrowseDirection, DataValue, ExpandedNodeId,
    LocalizedText, NodeClass, NodeId, ObjectId, QualifiedName, ReadAtTimeDetails,
    ReadProcessedDetails, ReadRawModifiedDetails, ReferenceDescription, ReferenceTypeId,
    StatusCode, TimestampsToReturn,
};

use super::space::{Node, Served};
use super::GatewayNodes;

/// The rest of a browse that did not fit the client's limit.
#[derive(Default)]
struct BrowseContinuation {
    references: VecDeque<ReferenceDescription>,
}

/// One reference of a node: its type, direction and target (ours, or a standard node).
enum Target<'a> {
    Ours(&'a Node),
    Standard(NodeId),
}

struct Reference<'a> {
    reference_type: ReferenceTypeId,
    forward: bool,
    target: Target<'a>,
}

/// Which reference types the browse filters of one request let through, each decided once: a
/// subtype check walks the type tree, and the nodes of one request nearly always share one
/// filter, so 1,000 nodes of ten references need a handful of walks instead of 10,000.
#[derive(Default)]
struct ReferenceFilter {
    /// (the filter's reference type, its include-subtypes flag, a reference type, allowed)
    decided: Vec<(NodeId, bool, ReferenceTypeId, bool)>,
}

impl ReferenceFilter {
    /// Decisions kept at most: a request whose nodes carry many different filters is decided
    /// reference by reference beyond it (a client's filters are not a cost it can grow).
    const KEPT: usize = 64;

    fn allows(
        &mut self,
        browse: &BrowseNode,
        reference_type: ReferenceTypeId,
        type_tree: &DefaultTypeTree,
    ) -> bool {
        let (wanted, subtypes) = (browse.reference_type_id(), browse.include_subtypes());
        let known = self
            .decided
            .iter()
            .find(|(w, s, t, _)| *t == reference_type && *s == subtypes && w == wanted);
        if let Some(&(.., allows)) = known {
            return allows;
        }
        let allows = browse.allows_reference_type(&reference_type.into(), type_tree);
        if self.decided.len() < Self::KEPT {
            self.decided
                .push((wanted.clone(), subtypes, reference_type, allows));
        }
        allows
    }
}

fn objects_folder() -> NodeId {
    ObjectId::ObjectsFolder.into()
}

impl Served {
    /// The references of the node `source` in `direction` (ours, or the `Objects` folder's
    /// references to our top folders).
    fn references<'a>(&'a self, source: &NodeId, direction: BrowseDirection) -> Vec<Reference<'a>> {
        if *source == objects_folder() {
            return self.references_of(None, direction);
        }
        match self.lookup(source) {
            Some(node) => self.references_of(Some(node), direction),
            None => Vec::new(),
        }
    }

    /// The references of `node`, or of the standard `Objects` folder (`None`: the ones to our
    /// top folders).
    fn references_of<'a>(
        &'a self,
        node: Option<&'a Node>,
        direction: BrowseDirection,
    ) -> Vec<Reference<'a>> {
        let forward = matches!(direction, BrowseDirection::Forward | BrowseDirection::Both);
        let inverse = matches!(direction, BrowseDirection::Inverse | BrowseDirection::Both);
        let mut out = Vec::new();
        let Some(node) = node else {
            if forward {
                out.extend(self.roots().iter().map(|&i| Reference {
                    reference_type: ReferenceTypeId::Organizes,
                    forward: true,
                    target: Target::Ours(self.node(i)),
                }));
            }
            return out;
        };
        if forward {
            out.extend(self.children(node).map(|child| Reference {
                reference_type: child.reference_from_parent(),
                forward: true,
                target: Target::Ours(child),
            }));
            out.push(Reference {
                reference_type: ReferenceTypeId::HasTypeDefinition,
                forward: true,
                target: Target::Standard(node.type_definition()),
            });
        }
        if inverse {
            out.push(Reference {
                reference_type: node.reference_from_parent(),
                forward: false,
                target: match node.parent() {
                    Some(parent) => Target::Ours(self.node(parent)),
                    None => Target::Standard(objects_folder()),
                },
            });
        }
        out
    }

    /// What a client asked to know of a node (the fields its result mask leaves out stay null
    /// and cost nothing).
    fn metadata(&self, node: &Node, mask: BrowseDescriptionResultMask) -> NodeMetadata {
        let wants = |field| mask.contains(field);
        NodeMetadata {
            node_id: ExpandedNodeId::new(self.node_id(node)),
            type_definition: if wants(BrowseDescriptionResultMask::RESULT_MASK_TYPE_DEFINITION) {
                ExpandedNodeId::new(node.type_definition())
            } else {
                ExpandedNodeId::null()
            },
            browse_name: if wants(BrowseDescriptionResultMask::RESULT_MASK_BROWSE_NAME) {
                node.browse_name(self.namespace())
            } else {
                QualifiedName::null()
            },
            display_name: if wants(BrowseDescriptionResultMask::RESULT_MASK_DISPLAY_NAME) {
                node.display_name()
            } else {
                LocalizedText::null()
            },
            node_class: if wants(BrowseDescriptionResultMask::RESULT_MASK_NODE_CLASS) {
                node.node_class()
            } else {
                NodeClass::Unspecified
            },
        }
    }

    /// The references of `node` (`None`: the `Objects` folder) the client asked for, up to its
    /// limit; the rest waits in a continuation point.
    ///
    /// The filters are applied here, as `BrowseNode::add` would (reference type, node class,
    /// result mask), so that each reference costs no second type-tree walk.
    fn browse_node(
        &self,
        filter: &mut ReferenceFilter,
        type_tree: &DefaultTypeTree,
        node: Option<&Node>,
        browse: &mut BrowseNode,
    ) {
        let mut rest = BrowseContinuation::default();
        let mask = browse.result_mask();
        for reference in self.references_of(node, browse.browse_direction()) {
            if !filter.allows(browse, reference.reference_type, type_tree) {
                continue;
            }
            let type_id: NodeId = reference.reference_type.into();
            let node = match reference.target {
                Target::Ours(node) => node,
                Target::Standard(target) => {
                    browse.push_external_reference(ExternalReference::new(
                        target.into(),
                        type_id,
                        if reference.forward {
                            ReferenceDirection::Forward
                        } else {
                            ReferenceDirection::Inverse
                        },
                    ));
                    continue;
                }
            };
            if !browse.allows_node_class(node.node_class()) {
                continue;
            }
            let meta = self.metadata(node, mask);
            let description = ReferenceDescription {
                reference_type_id: if mask
                    .contains(BrowseDescriptionResultMask::RESULT_MASK_REFERENCE_TYPE)
                {
                    type_id
                } else {
                    NodeId::null()
                },
                is_forward: reference.forward,
                node_id: meta.node_id,
                browse_name: meta.browse_name,
                display_name: meta.display_name,
                node_class: meta.node_class,
                type_definition: meta.type_definition,
            };
            if browse.remaining() > 0 {
                browse.add_unchecked(description);
            } else {
                rest.references.push_back(description);
            }
        }
        if !rest.references.is_empty() {
            browse.set_next_continuation_point(Box::new(rest));
        }
    }

    /// One TranslateBrowsePaths item walked through the tree (the way async-opcua's in-memory
    /// node manager walks its store).
    fn translate(
        &self,
        type_tree: &DefaultTypeTree,
        context: &RequestContext,
        item: &mut BrowsePathItem,
    ) {
        if let Some(name) = item.unmatched_browse_name() {
            let matched = self
                .lookup(item.node_id())
                .is_some_and(|n| name.is_null() || n.browse_name(self.namespace()) == *name);
            if !matched {
                return;
            }
            item.set_browse_name_matched(context.current_node_manager_index);
        }
        let mut current: HashSet<NodeId> = HashSet::from([item.node_id().clone()]);
        let mut results: Vec<(NodeId, usize, Option<ua::types::QualifiedName>)> = Vec::new();
        for (depth, element) in item.path().iter().enumerate() {
            let depth = depth + 1;
            let mut next = HashSet::new();
            for source in current.drain() {
                let direction = if element.is_inverse {
                    BrowseDirection::Inverse
                } else {
                    BrowseDirection::Forward
                };
                for reference in self.references(&source, direction) {
                    let type_id: NodeId = reference.reference_type.into();
                    if !element.reference_type_id.is_null() {
                        let matches = if element.include_subtypes {
                            ua::nodes::TypeTree::is_subtype_of(
                                type_tree,
                                &type_id,
                                &element.reference_type_id,
                            )
                        } else {
                            type_id == element.reference_type_id
                        };
                        if !matches {
                            continue;
                        }
                    }
                    match reference.target {
                        Target::Ours(node) => {
                            let id = self.node_id(node);
                            if next.contains(&id) {
                                continue;
                            }
                            if element.target_name.is_null()
                                || node.browse_name(self.namespace()) == element.target_name
                            {
                                next.insert(id.clone());
                                results.push((id, depth, None));
                            }
                        }
                        Target::Standard(id) => {
                            results.push((id, depth, Some(element.target_name.clone())));
                        }
                    }
                }
            }
            current = next;
        }
        for (id, depth, unmatched) in results {
            item.add_element(id, depth, unmatched);
        }
    }

    /// A Read of one attribute, validated as async-opcua validates reads of stored nodes.
    fn read_attribute(
        &self,
        context: &RequestContext,
        item: &ParsedReadValueId,
        max_age: f64,
        timestamps: TimestampsToReturn,
    ) -> DataValue {
        if item.attribute_id == AttributeId::Value {
            if let Some((node, access)) = self
                .lookup(&item.node_id)
                .and_then(|node| Some((node, node.access_level()?)))
            {
                return read_variable_value(node, access, context, item, timestamps);
            }
        }
        match self.readable(context, item) {
            Ok(built) => read_node_value(&built, context, item, max_age, timestamps),
            Err(status) => DataValue {
                status: Some(status),
                ..Default::default()
            },
        }
    }

    /// The node object `item` names, once the user may read that attribute of it.
    fn readable(
        &self,
        context: &RequestContext,
        item: &ParsedReadValueId,
    ) -> Result<ua::nodes::NodeType, StatusCode> {
        let node = self
            .lookup(&item.node_id)
            .ok_or(StatusCode::BadNodeIdUnknown)?;
        let built = self.materialize(node);
        validate_node_read(&built, context, item)?;
        Ok(built)
    }
}

/// The Value of one of the gateway's variables, read straight from the served model: what
/// `validate_node_read` + `read_node_value` answer for the node `materialize` would build (the
/// same checks, in the same order), without building it — a Read of 10,000 values otherwise
/// builds 10,000 complete variable nodes.
fn read_variable_value(
    node: &Node,
    access: AccessLevel,
    context: &RequestContext,
    item: &ParsedReadValueId,
    timestamps: TimestampsToReturn,
) -> DataValue {
    let denied = |status: StatusCode| DataValue {
        status: Some(status),
        ..Default::default()
    };
    let user_access =
        context
            .authenticator
            .effective_user_access_level(&context.token, access, &item.node_id);
    if !user_access.contains(AccessLevel::CURRENT_READ) {
        return denied(StatusCode::BadUserAccessDenied);
    }
    if !is_supported_data_encoding(&item.data_encoding) {
        return denied(StatusCode::BadDataEncodingInvalid);
    }
    let mut result = Served::value_attribute(node, &item.index_range);
    if !matches!(
        timestamps,
        TimestampsToReturn::Source | TimestampsToReturn::Both
    ) {
        result.source_timestamp = None;
        result.source_picoseconds = None;
    }
    if !matches!(
        timestamps,
        TimestampsToReturn::Server | TimestampsToReturn::Both
    ) {
        result.server_timestamp = None;
        result.server_picoseconds = None;
    }
    result
}

#[async_trait]
impl NodeManager for GatewayNodes {
    fn owns_node(&self, id: &NodeId) -> bool {
        id.namespace == self.namespace_index
    }

    fn name(&self) -> &str {
        "opcgw"
    }

    fn namespaces_for_user(&self, _context: &RequestContext) -> Vec<NamespaceMetadata> {
        vec![NamespaceMetadata {
            namespace_uri: self.settings.namespace_uri.clone(),
            namespace_index: self.namespace_index,
            ..Default::default()
        }]
    }

    async fn init(&self, _type_tree: &mut DefaultTypeTree, _context: ServerContext) {
        self.ready.send_replace(true);
        tracing::debug!(
            event = "opcua_address_space_built",
            nodes = self.served.read().len(),
            applications = self.initial_applications
        );
    }

    async fn resolve_external_references(
        &self,
        _context: &RequestContext,
        items: &mut [&mut ExternalReferenceRequest],
    ) {
        let served = self.served.read();
        for item in items {
            if let Some(node) = served.lookup(item.node_id()) {
                let meta = served.metadata(node, item.result_mask());
                item.set(meta);
            }
        }
    }

    async fn browse(
        &self,
        context: &RequestContext,
        nodes_to_browse: &mut [BrowseNode],
    ) -> Result<(), StatusCode> {
        let served = self.served.read();
        let type_tree = context.type_tree.read();
        let mut filter = ReferenceFilter::default();
        for browse in nodes_to_browse.iter_mut() {
            let ours = self.owns_node(browse.node_id());
            if !ours && *browse.node_id() != objects_folder() {
                continue;
            }
            let node = if ours {
                let Some(node) = served.lookup(browse.node_id()) else {
                    continue; // stays BadNodeIdUnknown
                };
                browse.set_status(StatusCode::Good);
                Some(node)
            } else {
                None
            };
            if let Some(mut rest) = browse.take_continuation_point::<BrowseContinuation>() {
                while browse.remaining() > 0 {
                    let Some(reference) = rest.references.pop_front() else {
                        break;
                    };
                    browse.add_unchecked(reference);
                }
                if !rest.references.is_empty() {
                    browse.set_next_continuation_point(rest);
                }
            } else {
                served.browse_node(&mut filter, &type_tree, node, browse);
            }
        }
        Ok(())
    }

    async fn translate_browse_paths_to_node_ids(
        &self,
        context: &RequestContext,
        nodes: &mut [&mut BrowsePathItem],
    ) -> Result<(), StatusCode> {
        let served = self.served.read();
        let type_tree = context.type_tree.read();
        for item in nodes {
            served.translate(&type_tree, context, item);
        }
        Ok(())
    }

    async fn read(
        &self,
        context: &RequestContext,
        max_age: f64,
        timestamps_to_return: TimestampsToReturn,
        nodes_to_read: &mut [&mut ReadNode],
    ) -> Result<(), StatusCode> {
        let _timer = crate::metrics::RequestTimer::start("read");
        let served = self.served.read();
        for read in nodes_to_read {
            let value = served.read_attribute(context, read.node(), max_age, timestamps_to_return);
            read.set_result(value);
        }
        Ok(())
    }

    async fn register_nodes(
        &self,
        _context: &RequestContext,
        nodes: &mut [&mut RegisterNodeItem],
    ) -> Result<(), StatusCode> {
        for node in nodes {
            node.set_registered(true);
        }
        Ok(())
    }

    async fn create_monitored_items(
        &self,
        context: &RequestContext,
        items: &mut [&mut CreateMonitoredItem],
    ) -> Result<(), StatusCode> {
        let served = self.served.read();
        for item in items {
            let to_monitor = item.item_to_monitor();
            if to_monitor.attribute_id == AttributeId::Value {
                // As async-opcua's stored nodes do: the item is created even for an unknown
                // node (its first value says why), so it lives on if the node comes back.
                let value =
                    served.read_attribute(context, to_monitor, 0.0, TimestampsToReturn::Both);
                if value.status() != StatusCode::BadAttributeIdInvalid {
                    item.set_initial_value(value);
                }
                item.set_status(StatusCode::Good);
                continue;
            }
            let built = match served.readable(context, to_monitor) {
                Ok(built) => built,
                Err(status) => {
                    item.set_status(status);
                    continue;
                }
            };
            let value = read_node_value(
                &built,
                context,
                to_monitor,
                0.0,
                item.timestamps_to_return(),
            );
            if to_monitor.attribute_id == AttributeId::EventNotifier {
                // No gateway node is an event notifier (events come from the Server object).
                item.set_status(StatusCode::BadAttributeIdInvalid);
                continue;
            }
            if value.status() != StatusCode::BadAttributeIdInvalid {
                item.set_initial_value(value);
            }
            item.set_status(StatusCode::Good);
        }
        drop(served);
        #[cfg(test)]
        self.run_after_initial_values();
        Ok(())
    }

    /// The server registers the items only after `create_monitored_items` returned: a value
    /// published in between (the OPC UA actor's publish does not wait for a client's request)
    /// found no item to notify, and the new item kept the older initial value until the
    /// variable's next change, which for a device reporting hourly is an hour. The current
    /// values go out again now; an item drops one equal to the value it has.
    async fn monitored_items_registered(
        &self,
        _context: &RequestContext,
        items: &[&MonitoredItemRef],
    ) {
        let served = self.served.read();
        let nodes = (items.iter())
            .filter(|item| item.attribute() == AttributeId::Value)
            .filter_map(|item| served.lookup(item.node_id()));
        super::handle::notify_nodes(&served, &self.subscriptions, nodes);
    }

    async fn delete_monitored_items(
        &self,
        _context: &RequestContext,
        _items: &[&MonitoredItemRef],
    ) {
    }

    async fn history_read_raw_modified(
        &self,
        context: &RequestContext,
        details: &ReadRawModifiedDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        let _timer = crate::metrics::RequestTimer::start("history_read");
        let mut valid = self.history_readable(context, nodes);
        self.read_history(details, &mut valid, timestamps_to_return)
            .await;
        Ok(())
    }

    async fn history_read_at_time(
        &self,
        context: &RequestContext,
        details: &ReadAtTimeDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        let _timer = crate::metrics::RequestTimer::start("history_read");
        let mut valid = self.history_readable(context, nodes);
        self.read_at_time(details, &mut valid, timestamps_to_return)
            .await;
        Ok(())
    }

    async fn history_read_processed(
        &self,
        context: &RequestContext,
        details: &ReadProcessedDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        let _timer = crate::metrics::RequestTimer::start("history_read");
        let mut valid = self.history_readable(context, nodes);
        self.read_processed(details, &mut valid, timestamps_to_return)
            .await;
        Ok(())
    }

    async fn write(
        &self,
        context: &RequestContext,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        self.write_commands(context, nodes_to_write).await;
        Ok(())
    }
}

impl GatewayNodes {
    /// The nodes of a HistoryRead this user may read the history of; the others get their
    /// status (unknown node, not a variable, access denied) here.
    fn history_readable<'a, 'b>(
        &self,
        context: &RequestContext,
        nodes: &'a mut [&'b mut HistoryNode],
    ) -> Vec<&'a mut &'b mut HistoryNode> {
        let mut valid = Vec::with_capacity(nodes.len());
        let served = self.served.read();
        for node in nodes.iter_mut() {
            let Some(found) = served.lookup(node.node_id()) else {
                node.set_status(StatusCode::BadNodeIdUnknown);
                continue;
            };
            if found.node_class() != NodeClass::Variable {
                node.set_status(StatusCode::BadHistoryOperationUnsupported);
                continue;
            }
            let built = served.materialize(found);
            if !user_access_level(context, &built).contains(AccessLevel::HISTORY_READ) {
                node.set_status(StatusCode::BadUserAccessDenied);
                continue;
            }
            valid.push(node);
        }
        valid
    }
}
