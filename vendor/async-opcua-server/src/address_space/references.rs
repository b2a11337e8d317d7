//! opcgw patch: the address space's references, stored compactly.
//!
//! The published crate keeps them in `opcua_nodes::References`: two hash maps of hash sets,
//! every reference held twice as a pair of 40-byte node ids (~125 bytes a copy with the
//! tables' spare room), 6.2 MB for the standard address space alone. Here every node id that a
//! reference names is held once, and each node lists its references, forward and inverse, as
//! pairs of indices into that table: 8 bytes a copy. A node's list keeps the order in which
//! its references were added.
//!
//! Adding, finding and deleting one reference scans a node's list (for a check of existence,
//! the shorter of the two ends' lists, while every reference is listed at both of its ends).
//!
//! Deleting a node's references without the other ends' (`delete_target_references` false)
//! leaves, as the published store does, the other ends' copies: a reference then may be listed
//! at one end only. From then on existence is decided by the source's list, as the published
//! store decides it by its map of sources, and an insertion of a reference its source does not
//! list adds the copy at the target unless the target lists it already. That is cheap for the standard address space (5,118
//! nodes; its longest list holds 2,248 references); an address space whose nodes are added
//! and deleted by clients would want a different store. The in-memory node managers refuse
//! AddNodes and DeleteNodes by default, so the node ids held here are the ones loaded at
//! start-up.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use opcua_nodes::{ImportedReference, ReferenceDirection, ReferenceRef, TypeTree};
use opcua_types::{
    node_id::{IdentifierRef, IntoNodeIdRef, NodeIdRef},
    BrowseDirection, NodeId,
};

/// One end's view of a reference: its type and the node at the other end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Link {
    /// The reference type's index, shifted left by one; the low bit marks an inverse link.
    kind: u32,
    /// The index of the node at the other end.
    node: u32,
}

impl Link {
    fn forward(reference_type: u32, target: u32) -> Self {
        Self {
            kind: reference_type << 1,
            node: target,
        }
    }

    fn inverse(reference_type: u32, source: u32) -> Self {
        Self {
            kind: reference_type << 1 | 1,
            node: source,
        }
    }

    fn reference_type(self) -> usize {
        (self.kind >> 1) as usize
    }

    fn is_forward(self) -> bool {
        self.kind & 1 == 0
    }

    /// The same reference seen from the other end, `here` being this end's node.
    fn mirror(self, here: u32) -> Self {
        Self {
            kind: self.kind ^ 1,
            node: here,
        }
    }
}

/// The references of an address space (see the module's documentation).
#[derive(Default)]
pub(crate) struct ReferenceStore {
    /// Every node id named by a reference, as a source, a target or a type.
    ids: Vec<NodeId>,
    /// The index in `ids` of each node id.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Each node's references, by the node's index in `ids`.
    links: Vec<Vec<Link>>,
    /// Some reference is listed at one of its ends only (see the module's documentation).
    one_sided: bool,
}

impl ReferenceStore {
    fn lookup<R: IdentifierRef>(&self, id: NodeIdRef<R>) -> Option<u32> {
        let hash = self.hasher.hash_one(&id);
        self.index
            .find(hash, |&at| id == self.ids[at as usize])
            .copied()
    }

    fn intern(&mut self, id: &NodeId) -> u32 {
        let hash = self.hasher.hash_one(id);
        let Self {
            ids,
            index,
            hasher,
            links,
            ..
        } = self;
        if let Some(&at) = index.find(hash, |&at| ids[at as usize] == *id) {
            return at;
        }
        // The type's index is shifted left by one in a link.
        let at = u32::try_from(ids.len())
            .ok()
            .filter(|&at| at < 1 << 31)
            .expect("an address space references fewer than 2^31 node ids");
        ids.push(id.clone());
        links.push(Vec::new());
        index.insert_unique(hash, at, |&at| hasher.hash_one(&ids[at as usize]));
        at
    }

    /// Whether the reference exists: listed at its source. While every reference is listed
    /// at both of its ends or at neither, the shorter list is searched.
    fn contains(&self, source: u32, target: u32, reference_type: u32) -> bool {
        let (at_source, at_target) = (&self.links[source as usize], &self.links[target as usize]);
        if self.one_sided || at_source.len() <= at_target.len() {
            at_source.contains(&Link::forward(reference_type, target))
        } else {
            at_target.contains(&Link::inverse(reference_type, source))
        }
    }

    fn add(&mut self, source: &NodeId, target: &NodeId, reference_type: &NodeId) {
        if source == target {
            panic!("Node id from == node id to {source}, self reference is not allowed");
        }
        let source = self.intern(source);
        let target = self.intern(target);
        let reference_type = self.intern(reference_type);
        let (forward, inverse) = (
            Link::forward(reference_type, target),
            Link::inverse(reference_type, source),
        );
        if self.one_sided {
            // Listed at its source: it exists, nothing to add (as in the published store).
            // Else its target may still list it.
            if self.links[source as usize].contains(&forward) {
                return;
            }
            self.links[source as usize].push(forward);
            let at_target = &mut self.links[target as usize];
            if !at_target.contains(&inverse) {
                at_target.push(inverse);
            }
            return;
        }
        if self.contains(source, target, reference_type) {
            return;
        }
        self.links[source as usize].push(forward);
        self.links[target as usize].push(inverse);
    }

    /// Insert a list of references of `source`.
    pub(crate) fn insert<S>(
        &mut self,
        source: &NodeId,
        references: &[(&NodeId, &S, ReferenceDirection)],
    ) where
        S: Into<NodeId> + Clone,
    {
        for (target, typ, direction) in references {
            let typ: NodeId = (*typ).clone().into();
            match direction {
                ReferenceDirection::Forward => self.add(source, target, &typ),
                ReferenceDirection::Inverse => self.add(target, source, &typ),
            }
        }
    }

    /// Insert a reference.
    pub(crate) fn insert_reference(
        &mut self,
        source_node: &NodeId,
        target_node: &NodeId,
        reference_type: impl Into<NodeId>,
    ) {
        self.add(source_node, target_node, &reference_type.into());
    }

    /// Insert a list of references (source, target, reference type).
    pub(crate) fn insert_references<'a>(
        &mut self,
        references: impl Iterator<Item = (&'a NodeId, &'a NodeId, impl Into<NodeId>)>,
    ) {
        for (source, target, typ) in references {
            self.add(source, target, &typ.into());
        }
    }

    /// Import a reference from a node set.
    pub(crate) fn import_reference(&mut self, source_node: NodeId, rf: ImportedReference) {
        if rf.is_forward {
            self.add(&source_node, &rf.target_id, &rf.type_id);
        } else {
            self.add(&rf.target_id, &source_node, &rf.type_id);
        }
    }

    /// Delete a reference; whether it was found.
    pub(crate) fn delete_reference<'a>(
        &mut self,
        source_node: impl IntoNodeIdRef<'a>,
        target_node: impl IntoNodeIdRef<'a>,
        reference_type: impl IntoNodeIdRef<'a>,
    ) -> bool {
        let (Some(source), Some(target), Some(reference_type)) = (
            self.lookup(source_node.into_node_id_ref()),
            self.lookup(target_node.into_node_id_ref()),
            self.lookup(reference_type.into_node_id_ref()),
        ) else {
            return false;
        };
        let forward = remove(
            &mut self.links[source as usize],
            Link::forward(reference_type, target),
        );
        let inverse = remove(
            &mut self.links[target as usize],
            Link::inverse(reference_type, source),
        );
        forward || inverse
    }

    /// Delete the references from and to `node`; with `delete_target_references`, also
    /// from the lists of the nodes at their other ends. Whether any were found.
    pub(crate) fn delete_node_references<'a>(
        &mut self,
        node: impl IntoNodeIdRef<'a>,
        delete_target_references: bool,
    ) -> bool {
        let Some(here) = self.lookup(node.into_node_id_ref()) else {
            return false;
        };
        let links = std::mem::take(&mut self.links[here as usize]);
        if delete_target_references {
            for link in &links {
                remove(&mut self.links[link.node as usize], link.mirror(here));
            }
        } else if !links.is_empty() {
            self.one_sided = true;
        }
        !links.is_empty()
    }

    /// Whether the reference exists.
    pub(crate) fn has_reference<'a>(
        &self,
        source_node: impl IntoNodeIdRef<'a>,
        target_node: impl IntoNodeIdRef<'a>,
        reference_type: impl IntoNodeIdRef<'a>,
    ) -> bool {
        match (
            self.lookup(source_node.into_node_id_ref()),
            self.lookup(target_node.into_node_id_ref()),
            self.lookup(reference_type.into_node_id_ref()),
        ) {
            (Some(source), Some(target), Some(reference_type)) => {
                self.contains(source, target, reference_type)
            }
            _ => false,
        }
    }

    /// The references of `source_node` in `direction` whose type is the filter's (or, with
    /// its flag set, one of its subtypes): forward ones first, then inverse ones.
    pub(crate) fn find_references<'a: 'b, 'b>(
        &'a self,
        source_node: impl IntoNodeIdRef<'b>,
        filter: Option<(impl Into<NodeId>, bool)>,
        type_tree: &'b dyn TypeTree,
        direction: BrowseDirection,
    ) -> impl Iterator<Item = ReferenceRef<'a>> + 'b {
        let links: &'a [Link] = match self.lookup(source_node.into_node_id_ref()) {
            Some(at) => &self.links[at as usize],
            None => &[],
        };
        let (forward, inverse) = match direction {
            BrowseDirection::Forward => (true, false),
            BrowseDirection::Inverse => (false, true),
            BrowseDirection::Both => (true, true),
            _ => (false, false),
        };
        let filter: Option<(NodeId, bool)> = filter.map(|(t, subtypes)| (t.into(), subtypes));
        let forward_links = links.iter().filter(move |l| forward && l.is_forward());
        let inverse_links = links.iter().filter(move |l| inverse && !l.is_forward());
        forward_links
            .chain(inverse_links)
            .map(move |link| ReferenceRef {
                reference_type: &self.ids[link.reference_type()],
                target_node: &self.ids[link.node as usize],
                direction: if link.is_forward() {
                    ReferenceDirection::Forward
                } else {
                    ReferenceDirection::Inverse
                },
            })
            .filter(move |rf| match &filter {
                None => true,
                Some((typ, false)) => rf.reference_type == typ,
                Some((typ, true)) => type_tree.is_subtype_of(rf.reference_type, typ),
            })
    }
}

/// Removes `link` from `list`, keeping the others' order; whether it was there.
fn remove(list: &mut Vec<Link>, link: Link) -> bool {
    match list.iter().position(|l| *l == link) {
        Some(at) => {
            list.remove(at);
            true
        }
        None => false,
    }
}
