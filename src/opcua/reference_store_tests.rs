//! The patched address space (vendor/async-opcua-server, `address_space/references.rs`) keeps
//! its references in a compact store of its own. Checked against the published store
//! (`opcua_nodes::References`) fed the same standard address space: the two must answer every
//! query alike, before and after deletions.

use ua::nodes::{DefaultTypeTree, NodeSetImport, NodeSetNamespaceMapper, References};
use ua::server::address_space::{AddressSpace, CoreNamespace};
use ua::types::{BrowseDirection, NamespaceMap, NodeId, ObjectId, ReferenceTypeId};

/// The standard address space in the patched store and in the published one, with the ids of
/// its nodes.
fn both_stores() -> (AddressSpace, References, Vec<NodeId>) {
    let mut namespaces = NamespaceMap::new();
    let mut space = AddressSpace::new();
    space.import_node_set(&CoreNamespace, &mut namespaces);
    let mut published = References::new();
    let mut ids = Vec::new();
    let mapper = NodeSetNamespaceMapper::new(&mut namespaces);
    for item in CoreNamespace.load(&mapper) {
        let id = item.node.as_node().node_id().clone();
        for reference in item.references {
            published.import_reference(id.clone(), reference);
        }
        ids.push(id);
    }
    (space, published, ids)
}

/// A node's references as comparable text, sorted (the published store's order is a hash
/// set's).
fn listed<'a>(
    references: impl Iterator<Item = ua::nodes::ReferenceRef<'a>>,
) -> Vec<(String, String, bool)> {
    let mut out: Vec<_> = references
        .map(|r| {
            (
                r.reference_type.to_string(),
                r.target_node.to_string(),
                matches!(r.direction, ua::nodes::ReferenceDirection::Forward),
            )
        })
        .collect();
    out.sort();
    out
}

fn assert_same(space: &AddressSpace, published: &References, ids: &[NodeId]) {
    let mut tree = DefaultTypeTree::new();
    space.load_into_type_tree(&mut tree);
    let hierarchical: NodeId = ReferenceTypeId::HierarchicalReferences.into();
    let mut seen = 0;
    for id in ids {
        for direction in [
            BrowseDirection::Forward,
            BrowseDirection::Inverse,
            BrowseDirection::Both,
            BrowseDirection::Invalid,
        ] {
            let none = None::<(NodeId, bool)>;
            let mine = listed(space.find_references(id, none.clone(), &tree, direction));
            let theirs = listed(published.find_references(id, none, &tree, direction));
            assert_eq!(mine, theirs, "{id} {direction:?}");
            seen += mine.len();
            for subtypes in [false, true] {
                let filter = Some((hierarchical.clone(), subtypes));
                let mine = listed(space.find_references(id, filter.clone(), &tree, direction));
                let theirs = listed(published.find_references(id, filter, &tree, direction));
                assert_eq!(mine, theirs, "{id} {direction:?} hierarchical {subtypes}");
            }
        }
    }
    assert!(seen > 10_000, "only {seen} references listed");
}

#[test]
fn the_compact_store_answers_as_the_published_one_for_the_standard_address_space() {
    let (space, published, ids) = both_stores();
    assert!(ids.len() > 5_000, "{} nodes", ids.len());
    assert_same(&space, &published, &ids);
    let organizes: NodeId = ReferenceTypeId::Organizes.into();
    let objects: NodeId = ObjectId::ObjectsFolder.into();
    let server: NodeId = ObjectId::Server.into();
    assert!(space.has_reference(&objects, &server, &organizes));
    assert!(!space.has_reference(&server, &objects, &organizes));
}

#[test]
fn deletions_in_the_compact_store_match_the_published_ones() {
    let (mut space, mut published, ids) = both_stores();
    let organizes: NodeId = ReferenceTypeId::Organizes.into();
    let objects: NodeId = ObjectId::ObjectsFolder.into();
    let server: NodeId = ObjectId::Server.into();
    let types: NodeId = ObjectId::TypesFolder.into();

    assert_eq!(
        space.delete_reference(&objects, &server, &organizes),
        published.delete_reference(&objects, &server, &organizes),
    );
    assert!(!space.has_reference(&objects, &server, &organizes));
    assert!(!space.delete_reference(&objects, &server, &organizes));

    // A node's own references, and the mirrored ones at their other ends.
    space.delete_node_references(&types, true);
    published.delete_node_references(&types, true);
    // Only its own, leaving the other ends' lists as they were (the server organized by the
    // objects folder again first, so that it has a reference from another node).
    space.insert_reference(&objects, &server, organizes.clone());
    published.insert_reference(&objects, &server, organizes.clone());
    let tree = DefaultTypeTree::new();
    let around_server: Vec<(NodeId, NodeId, NodeId)> = published
        .find_references(
            &server,
            None::<(NodeId, bool)>,
            &tree,
            BrowseDirection::Both,
        )
        .map(|r| {
            let other = r.target_node.clone();
            let typ = r.reference_type.clone();
            match r.direction {
                ua::nodes::ReferenceDirection::Forward => (server.clone(), other, typ),
                ua::nodes::ReferenceDirection::Inverse => (other, server.clone(), typ),
            }
        })
        .collect();
    assert!(
        around_server.len() > 10,
        "{} references",
        around_server.len()
    );
    space.delete_node_references(&server, false);
    published.delete_node_references(&server, false);
    // Whether each of them still exists (a reference to the server from another node does,
    // one from the server does not), as the published store says.
    let exists = |store: &dyn Fn(&NodeId, &NodeId, &NodeId) -> bool| -> Vec<bool> {
        (around_server
            .iter()
            .map(|(from, to, typ)| store(from, to, typ)))
        .collect()
    };
    let mine = exists(&|from, to, typ| space.has_reference(from, to, typ));
    assert_eq!(
        mine,
        exists(&|from, to, typ| published.has_reference(from, to, typ))
    );
    assert!(mine.contains(&true) && mine.contains(&false), "{mine:?}");
    space.insert_reference(&server, &types, organizes.clone());
    published.insert_reference(&server, &types, organizes.clone());
    assert_same(&space, &published, &ids);
    // A reference to the server whose server-side copy went is inserted again: it exists
    // already (its source lists it), so neither store adds a copy.
    let (from, to, typ) = around_server
        .iter()
        .find(|(from, _, _)| *from != server)
        .expect("a reference to the server")
        .clone();
    space.insert_reference(&from, &to, typ.clone());
    published.insert_reference(&from, &to, typ);
    assert_same(&space, &published, &ids);
}
