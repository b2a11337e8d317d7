//! The compact image of the standard node set (`standard_nodes.bin`) against the generated code
//! it replaces: the image is what the generated code encodes to, and every node read back from
//! it answers every attribute as the generated node does, with the same references.
//!
//! After an async-opcua upgrade the first test fails; rewrite the image with
//! `OPCGW_WRITE_STANDARD_NODES=1 cargo test -p opcgw --lib standard_nodes` and commit it.

use ua::core_namespace::CoreNamespace;
use ua::nodes::{
    ImportedItem, NamespaceMap, NodeBase, NodeSetImport, NodeSetNamespaceMapper, NodeType,
};
use ua::types::{
    Argument, AttributeId, BinaryEncodable, Context, DataEncoding, DataTypeDefinition, DataValue,
    NumericRange, StatusCode, TimestampsToReturn, Variant,
};

use super::standard_nodes::{
    context, StandardNodes, DEFINITION_ENUM, DEFINITION_NONE, DEFINITION_STRUCTURE, EMBEDDED,
    FORMAT, MAGIC, UA_NAMESPACE, VALUE_EMPTY, VALUE_NONE, VALUE_NOW,
};

fn generated() -> Vec<ImportedItem> {
    let mut namespaces = NamespaceMap::new();
    let mut mapper = NodeSetNamespaceMapper::new(&mut namespaces);
    CoreNamespace.register_namespaces(&mut mapper);
    CoreNamespace.load(&mapper).collect()
}

fn decoded(image: &[u8]) -> Vec<ImportedItem> {
    let nodes = StandardNodes::decode(image).expect("the image decodes");
    let mut namespaces = NamespaceMap::new();
    let mut mapper = NodeSetNamespaceMapper::new(&mut namespaces);
    nodes.register_namespaces(&mut mapper);
    nodes.load(&mapper).collect()
}

fn encode_image(items: &[ImportedItem]) -> Vec<u8> {
    let owned = context();
    let ctx = owned.context();
    let mut out = MAGIC.to_vec();
    out.push(FORMAT);
    put(&mut out, &(items.len() as u32), &ctx);
    for item in items {
        encode_item(&mut out, item, &ctx);
    }
    out
}

fn put<T: BinaryEncodable>(out: &mut Vec<u8>, value: &T, ctx: &Context<'_>) {
    value
        .encode(out, ctx)
        .expect("a value of the standard node set encodes");
}

fn put_option<T: BinaryEncodable>(out: &mut Vec<u8>, value: Option<&T>, ctx: &Context<'_>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put(out, value, ctx);
        }
    }
}

/// The generated code sets a value either with `DataValue::new_now` or `DataValue::null`; any
/// other shape would not survive the image, so it fails here.
fn put_value(out: &mut Vec<u8>, value: Option<&DataValue>, ctx: &Context<'_>) {
    let Some(value) = value else {
        out.push(VALUE_NONE);
        return;
    };
    let stamped = value.status == Some(StatusCode::Good)
        && value.source_timestamp.is_some()
        && value.source_timestamp == value.server_timestamp
        && value.source_picoseconds == Some(0)
        && value.server_picoseconds == Some(0);
    let empty = value.status.is_none()
        && value.source_timestamp.is_none()
        && value.server_timestamp.is_none()
        && value.source_picoseconds.is_none()
        && value.server_picoseconds.is_none();
    match (&value.value, stamped, empty) {
        (Some(variant), true, _) => {
            out.push(VALUE_NOW);
            put(out, variant, ctx);
        }
        (None, _, true) => out.push(VALUE_EMPTY),
        _ => panic!("a value the image cannot carry: {value:?}"),
    }
}

fn encode_item(out: &mut Vec<u8>, item: &ImportedItem, ctx: &Context<'_>) {
    let node = item.node.as_node();
    assert_eq!(node.node_id().namespace, 0, "{}", node.node_id());
    put(out, &node.node_class(), ctx);
    put(out, node.node_id(), ctx);
    put(out, node.browse_name(), ctx);
    put(out, node.display_name(), ctx);
    put_option(out, node.description(), ctx);
    put_option(out, node.write_mask().map(|m| m.bits()).as_ref(), ctx);
    put_option(out, node.user_write_mask().map(|m| m.bits()).as_ref(), ctx);
    match &item.node {
        NodeType::Object(o) => put(out, &o.event_notifier().bits(), ctx),
        NodeType::ObjectType(o) => put(out, &o.is_abstract(), ctx),
        NodeType::ReferenceType(r) => {
            put(out, &r.symmetric(), ctx);
            put(out, &r.is_abstract(), ctx);
            put_option(out, r.inverse_name().as_ref(), ctx);
        }
        NodeType::Variable(v) => {
            put(out, &v.data_type(), ctx);
            put(out, &v.historizing(), ctx);
            put(out, &v.value_rank(), ctx);
            let value = v.value(
                TimestampsToReturn::Both,
                &NumericRange::None,
                &DataEncoding::Binary,
                0.0,
            );
            put_value(out, Some(&value), ctx);
            put(out, &v.access_level().bits(), ctx);
            put(out, &v.user_access_level().bits(), ctx);
            put(out, &v.array_dimensions(), ctx);
            put_option(out, v.minimum_sampling_interval().as_ref(), ctx);
        }
        NodeType::VariableType(v) => {
            put(out, v.data_type(), ctx);
            put(out, &v.is_abstract(), ctx);
            put(out, &v.value_rank(), ctx);
            put_value(out, v.value(), ctx);
            put(out, &v.array_dimensions(), ctx);
        }
        NodeType::View(v) => {
            put(out, &v.event_notifier().bits(), ctx);
            put(out, &v.contains_no_loops(), ctx);
        }
        NodeType::DataType(d) => {
            put(out, &d.is_abstract(), ctx);
            match d.data_type_definition() {
                None => out.push(DEFINITION_NONE),
                Some(DataTypeDefinition::Structure(s)) => {
                    out.push(DEFINITION_STRUCTURE);
                    put(out, s, ctx);
                }
                Some(DataTypeDefinition::Enum(e)) => {
                    out.push(DEFINITION_ENUM);
                    put(out, e, ctx);
                }
            }
        }
        NodeType::Method(m) => {
            put(out, &m.executable(), ctx);
            put(out, &m.user_executable(), ctx);
        }
    }
    put(out, &(item.references.len() as u32), ctx);
    for reference in &item.references {
        put(out, &reference.target_id, ctx);
        put(out, &reference.type_id, ctx);
        put(out, &reference.is_forward, ctx);
    }
}

#[test]
fn the_image_is_the_generated_standard_node_set() {
    let image = encode_image(&generated());
    if image == EMBEDDED {
        return;
    }
    if std::env::var_os("OPCGW_WRITE_STANDARD_NODES").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/opcua/standard_nodes.bin");
        std::fs::write(path, &image).expect("write src/opcua/standard_nodes.bin");
        eprintln!("wrote {path} ({} bytes): commit it", image.len());
        return;
    }
    panic!(
        "src/opcua/standard_nodes.bin ({} bytes) is not the standard node set of this async-opcua \
         ({} bytes): rewrite it with `OPCGW_WRITE_STANDARD_NODES=1 cargo test -p opcgw --lib \
         standard_nodes` and commit it",
        EMBEDDED.len(),
        image.len()
    );
}

/// Every attribute a client can read, as the bytes it would receive (timestamps aside: the
/// generated code stamps values with the time they are made, the image with the time it is read).
fn attributes(node: &NodeType, ctx: &Context<'_>) -> Vec<(u32, Option<Vec<u8>>, bool)> {
    (1..=27u32)
        .filter_map(|id| AttributeId::from_u32(id).ok())
        .map(|id| {
            let read = |timestamps| {
                node.as_node().get_attribute(
                    timestamps,
                    id,
                    &NumericRange::None,
                    &DataEncoding::Binary,
                )
            };
            // A variable type answers its value with its timestamps whatever is asked.
            let bytes = read(TimestampsToReturn::Neither).map(|mut v| {
                v.source_timestamp = None;
                v.source_picoseconds = None;
                v.server_timestamp = None;
                v.server_picoseconds = None;
                v.encode_to_vec(ctx)
            });
            let stamped = read(TimestampsToReturn::Both)
                .is_some_and(|v| v.source_timestamp.is_some() && v.server_timestamp.is_some());
            (id as u32, bytes, stamped)
        })
        .collect()
}

#[test]
fn every_node_of_the_image_reads_as_the_generated_one() {
    let generated = generated();
    let decoded = decoded(EMBEDDED);
    assert!(generated.len() > 5_000, "{} nodes", generated.len());
    assert_eq!(decoded.len(), generated.len());
    let owned = context();
    let ctx = owned.context();
    for (want, got) in generated.iter().zip(&decoded) {
        let id = want.node.as_node().node_id();
        assert_eq!(got.node.as_node().node_id(), id);
        assert_eq!(got.node.node_class(), want.node.node_class(), "{id}");
        assert_eq!(
            attributes(&got.node, &ctx),
            attributes(&want.node, &ctx),
            "the attributes of {id}"
        );
        let references = |item: &ImportedItem| {
            item.references
                .iter()
                .map(|r| (r.target_id.clone(), r.type_id.clone(), r.is_forward))
                .collect::<Vec<_>>()
        };
        assert_eq!(references(got), references(want), "the references of {id}");
    }
}

/// The server checks a method call's arguments against its `InputArguments` by reading them as
/// `Argument` structures: decoded from the image they must be those, not opaque bodies.
#[test]
fn method_arguments_decode_to_their_structure() {
    let mut arguments = 0;
    for item in decoded(EMBEDDED) {
        let NodeType::Variable(variable) = &item.node else {
            continue;
        };
        let name = &variable.browse_name().name;
        if name.as_ref() != "InputArguments" && name.as_ref() != "OutputArguments" {
            continue;
        }
        let value = variable.value(
            TimestampsToReturn::Neither,
            &NumericRange::None,
            &DataEncoding::Binary,
            0.0,
        );
        // A few declarations (e.g. i=3072) have no value, as in the generated code.
        let array = match value.value {
            None => continue,
            Some(Variant::Array(array)) => array,
            Some(other) => panic!("{}: {other:?}", variable.node_id()),
        };
        for element in &array.values {
            let Variant::ExtensionObject(object) = element else {
                panic!("{}: {element:?}", variable.node_id());
            };
            assert!(
                object.inner_as::<Argument>().is_some(),
                "{}",
                variable.node_id()
            );
            arguments += 1;
        }
    }
    assert!(arguments > 100, "{arguments} arguments");
}

#[test]
fn the_standard_node_set_owns_namespace_zero() {
    let nodes = StandardNodes::embedded().expect("the embedded image decodes");
    assert_eq!(
        nodes.get_own_namespaces(),
        CoreNamespace.get_own_namespaces()
    );
    assert_eq!(nodes.get_own_namespaces(), [UA_NAMESPACE]);
    // The nodes are handed over once.
    let count = nodes.len();
    let mut namespaces = NamespaceMap::new();
    let mapper = NodeSetNamespaceMapper::new(&mut namespaces);
    assert_eq!(nodes.load(&mapper).count(), count);
    assert!(nodes.is_empty());
}

#[test]
fn a_damaged_image_is_refused_with_where() {
    let error = |image: &[u8]| match StandardNodes::decode(image) {
        Ok(_) => panic!("a damaged image decoded"),
        Err(e) => e.to_string(),
    };
    assert!(error(b"").contains("not an image"), "{}", error(b""));
    let mut other_format = EMBEDDED.to_vec();
    other_format[MAGIC.len()] = FORMAT + 1;
    assert!(error(&other_format).contains("format 2 where this build reads 1"));
    let cut = &EMBEDDED[..EMBEDDED.len() / 2];
    assert!(error(cut).contains("node "), "{}", error(cut));
    let mut longer = EMBEDDED.to_vec();
    longer.push(0);
    assert!(
        error(&longer).contains("1 bytes after the last node"),
        "{}",
        error(&longer)
    );
    // The first node's id (after its class) moved to namespace 1: a two-byte node id
    // (encoding 0) becomes a four-byte one (encoding 1) of the same value in namespace 1.
    let first = MAGIC.len() + 1 + 4 + 4;
    let mut other_namespace = EMBEDDED[..first].to_vec();
    assert_eq!(EMBEDDED[first], 0, "the first node has a two-byte node id");
    other_namespace.extend([1, 1, EMBEDDED[first + 1], 0]);
    other_namespace.extend(&EMBEDDED[first + 2..]);
    assert!(
        error(&other_namespace).contains("outside namespace 0"),
        "{}",
        error(&other_namespace)
    );
    let mut huge_count = EMBEDDED.to_vec();
    huge_count[MAGIC.len() + 1..MAGIC.len() + 5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(
        error(&huge_count).contains("nodes in"),
        "{}",
        error(&huge_count)
    );
}
