//! The OPC UA standard node set (namespace 0) from a compact image compiled into the binary.
//!
//! async-opcua builds the standard node set with generated code: 5,118 functions, one per node,
//! which run once at start-up and then leave ~3.6 MB of code resident in the gateway for the
//! rest of its life. The same nodes are kept here as data (`standard_nodes.bin`, 1.15 MB), in
//! the OPC UA binary encoding, and read by one small decoder. The server's core node manager
//! imports them instead of the generated code (vendored patch:
//! `ServerBuilder::with_core_namespace`), so the generated functions are not linked.
//!
//! The image is written from the generated code by a test
//! (`standard_nodes_tests::the_image_is_the_generated_standard_node_set`, which fails when the
//! image no longer matches, e.g. after an async-opcua upgrade, and says how to rewrite it), and
//! another test reads every attribute and reference of every node back against the generated
//! nodes.
//!
//! Image format (version 1): the magic `opcgw-ns0`, a format byte, the node count (UInt32),
//! then per node its class, attributes and references, each in the OPC UA binary encoding (see
//! [`decode_item`]).

use std::io::{Cursor, Read};
use std::sync::{Mutex, PoisonError};

use ua::nodes::{
    Base, DataType, EventNotifier, ImportedItem, ImportedReference, Method, NodeSetImport,
    NodeSetNamespaceMapper, NodeType, Object, ObjectType, ReferenceType, Variable, VariableType,
    View,
};
use ua::types::{
    BinaryDecodable, Context, ContextOwned, DataTypeDefinition, DataValue, DecodingOptions,
    EncodingResult, EnumDefinition, LocalizedText, NamespaceMap, NodeClass, NodeId, QualifiedName,
    StructureDefinition, Variant,
};

/// The namespace the standard node set owns.
pub const UA_NAMESPACE: &str = "http://opcfoundation.org/UA/";

pub(crate) const MAGIC: &[u8; 9] = b"opcgw-ns0";
pub(crate) const FORMAT: u8 = 1;

/// The image compiled into the binary.
pub(crate) const EMBEDDED: &[u8] = include_bytes!("standard_nodes.bin");

/// A node's value as the generated code sets it: none at all (a variable type without a
/// default), a value stamped when the node is made, or an empty value.
pub(crate) const VALUE_NONE: u8 = 0;
pub(crate) const VALUE_NOW: u8 = 1;
pub(crate) const VALUE_EMPTY: u8 = 2;

/// A data type's definition.
pub(crate) const DEFINITION_NONE: u8 = 0;
pub(crate) const DEFINITION_STRUCTURE: u8 = 1;
pub(crate) const DEFINITION_ENUM: u8 = 2;

/// Why an image could not be read. Only a damaged build can produce one: the embedded image is
/// checked against the generated node set by the tests.
#[derive(Debug, thiserror::Error)]
#[error("the standard node set compiled into the gateway is unreadable ({0}); rebuild the gateway from a checked-out tree whose tests pass")]
pub struct ImageError(String);

/// The standard node set, decoded and waiting to be imported into the core node manager's
/// address space (`NodeSetImport::load` takes it, once).
pub struct StandardNodes {
    items: Mutex<Vec<ImportedItem>>,
}

impl StandardNodes {
    /// Decodes the image compiled into the binary.
    pub fn embedded() -> Result<Self, ImageError> {
        Self::decode(EMBEDDED)
    }

    /// Decodes an image.
    pub fn decode(image: &[u8]) -> Result<Self, ImageError> {
        let items = decode_image(image)?;
        Ok(Self {
            items: Mutex::new(items),
        })
    }

    /// How many nodes wait to be imported.
    pub fn len(&self) -> usize {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no node waits to be imported (after the import, or from an empty image).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl NodeSetImport for StandardNodes {
    fn register_namespaces(&self, namespaces: &mut NodeSetNamespaceMapper) {
        namespaces.add_namespace(UA_NAMESPACE, 0);
    }

    fn get_own_namespaces(&self) -> Vec<String> {
        vec![UA_NAMESPACE.to_owned()]
    }

    fn load<'a>(
        &'a self,
        _namespaces: &'a NodeSetNamespaceMapper,
    ) -> Box<dyn Iterator<Item = ImportedItem> + 'a> {
        // Every node is in namespace 0, whose index never changes: nothing to map.
        let items = std::mem::take(&mut *self.items.lock().unwrap_or_else(PoisonError::into_inner));
        Box::new(items.into_iter())
    }
}

/// The context the image is encoded and decoded with: namespace 0 and the standard types
/// (the values of some variables are structures, e.g. a method's arguments). The two type
/// dictionaries are byte strings of 198 KB and 319 KB, beyond a client message's default limit.
pub(crate) fn context() -> ContextOwned {
    let options = DecodingOptions {
        max_byte_string_length: 1 << 20,
        max_string_length: 1 << 20,
        ..DecodingOptions::default()
    };
    ContextOwned::new_default(NamespaceMap::new(), options)
}

fn decode_image(image: &[u8]) -> Result<Vec<ImportedItem>, ImageError> {
    let header = MAGIC.len() + 1;
    if image.len() < header || &image[..MAGIC.len()] != MAGIC {
        return Err(ImageError("not an image of the standard node set".into()));
    }
    if image[MAGIC.len()] != FORMAT {
        return Err(ImageError(format!(
            "format {} where this build reads {FORMAT}",
            image[MAGIC.len()]
        )));
    }
    let owned = context();
    let ctx = owned.context();
    let mut stream = Cursor::new(&image[header..]);
    let count = u32::decode(&mut stream, &ctx).map_err(|e| ImageError(e.to_string()))?;
    // Each node takes more than 8 bytes: a count beyond that is damage, not a size to reserve.
    if count as usize > image.len() / 8 {
        return Err(ImageError(format!(
            "{count} nodes in {} bytes",
            image.len()
        )));
    }
    let mut items = Vec::with_capacity(count as usize);
    for index in 0..count {
        let at = stream.position();
        let item = decode_item(&mut stream, &ctx)
            .map_err(|e| ImageError(format!("node {index} at byte {}: {e}", at + header as u64)))?;
        items.push(item);
    }
    if stream.position() != stream.get_ref().len() as u64 {
        return Err(ImageError(format!(
            "{} bytes after the last node",
            stream.get_ref().len() as u64 - stream.position()
        )));
    }
    Ok(items)
}

/// One node: its class, the attributes every node has, those of its class, its references.
fn decode_item<S: Read + ?Sized>(
    stream: &mut S,
    ctx: &Context<'_>,
) -> EncodingResult<ImportedItem> {
    let node_class = NodeClass::decode(stream, ctx)?;
    let base = Base::new_full(
        standard_node_id(stream, ctx)?,
        node_class,
        QualifiedName::decode(stream, ctx)?,
        LocalizedText::decode(stream, ctx)?,
        decode_option(stream, ctx)?,
        decode_option(stream, ctx)?,
        decode_option(stream, ctx)?,
    );
    let node: NodeType = match node_class {
        NodeClass::Object => Object::new_full(base, event_notifier(stream, ctx)?).into(),
        NodeClass::ObjectType => ObjectType::new_full(base, bool::decode(stream, ctx)?).into(),
        NodeClass::ReferenceType => ReferenceType::new_full(
            base,
            bool::decode(stream, ctx)?,
            bool::decode(stream, ctx)?,
            decode_option(stream, ctx)?,
        )
        .into(),
        NodeClass::Variable => Variable::new_full(
            base,
            NodeId::decode(stream, ctx)?,
            bool::decode(stream, ctx)?,
            i32::decode(stream, ctx)?,
            decode_value(stream, ctx)?.ok_or_else(|| invalid("a variable without a value"))?,
            u8::decode(stream, ctx)?,
            u8::decode(stream, ctx)?,
            Option::<Vec<u32>>::decode(stream, ctx)?,
            decode_option(stream, ctx)?,
        )
        .into(),
        NodeClass::VariableType => VariableType::new_full(
            base,
            NodeId::decode(stream, ctx)?,
            bool::decode(stream, ctx)?,
            i32::decode(stream, ctx)?,
            decode_value(stream, ctx)?,
            Option::<Vec<u32>>::decode(stream, ctx)?,
        )
        .into(),
        NodeClass::View => View::new_full(
            base,
            event_notifier(stream, ctx)?,
            bool::decode(stream, ctx)?,
        )
        .into(),
        NodeClass::DataType => DataType::new_full(
            base,
            bool::decode(stream, ctx)?,
            decode_definition(stream, ctx)?,
        )
        .into(),
        NodeClass::Method => {
            Method::new_full(base, bool::decode(stream, ctx)?, bool::decode(stream, ctx)?).into()
        }
        NodeClass::Unspecified => return Err(invalid("a node of no class")),
    };
    let count = u32::decode(stream, ctx)?;
    if count > u16::MAX as u32 {
        return Err(invalid(
            "more references than a node of the standard set has",
        ));
    }
    let mut references = Vec::with_capacity(count as usize);
    for _ in 0..count {
        references.push(ImportedReference {
            target_id: standard_node_id(stream, ctx)?,
            type_id: standard_node_id(stream, ctx)?,
            is_forward: bool::decode(stream, ctx)?,
        });
    }
    Ok(ImportedItem { node, references })
}

fn invalid(what: &str) -> ua::types::Error {
    ua::types::Error::decoding(what.to_string())
}

/// A node id of the standard node set: namespace 0 (the address space refuses, with a panic,
/// a node of a namespace it does not know).
fn standard_node_id<S: Read + ?Sized>(stream: &mut S, ctx: &Context<'_>) -> EncodingResult<NodeId> {
    let id = NodeId::decode(stream, ctx)?;
    if id.namespace != 0 {
        return Err(invalid("a node id outside namespace 0"));
    }
    Ok(id)
}

/// An optional attribute: a presence byte, then the value.
fn decode_option<T: BinaryDecodable, S: Read + ?Sized>(
    stream: &mut S,
    ctx: &Context<'_>,
) -> EncodingResult<Option<T>> {
    match u8::decode(stream, ctx)? {
        0 => Ok(None),
        1 => Ok(Some(T::decode(stream, ctx)?)),
        _ => Err(invalid("a presence byte other than 0 or 1")),
    }
}

fn event_notifier<S: Read + ?Sized>(
    stream: &mut S,
    ctx: &Context<'_>,
) -> EncodingResult<EventNotifier> {
    EventNotifier::from_bits(u8::decode(stream, ctx)?)
        .ok_or_else(|| invalid("unknown event notifier bits"))
}

/// A variable's or variable type's value: none, a value stamped with the time it is decoded
/// (what the generated code's `DataValue::new_now` gives), or an empty one (`DataValue::null`).
fn decode_value<S: Read + ?Sized>(
    stream: &mut S,
    ctx: &Context<'_>,
) -> EncodingResult<Option<DataValue>> {
    match u8::decode(stream, ctx)? {
        VALUE_NONE => Ok(None),
        VALUE_NOW => Ok(Some(DataValue::new_now(Variant::decode(stream, ctx)?))),
        VALUE_EMPTY => Ok(Some(DataValue::null())),
        _ => Err(invalid("an unknown kind of value")),
    }
}

fn decode_definition<S: Read + ?Sized>(
    stream: &mut S,
    ctx: &Context<'_>,
) -> EncodingResult<Option<DataTypeDefinition>> {
    match u8::decode(stream, ctx)? {
        DEFINITION_NONE => Ok(None),
        DEFINITION_STRUCTURE => Ok(Some(StructureDefinition::decode(stream, ctx)?.into())),
        DEFINITION_ENUM => Ok(Some(EnumDefinition::decode(stream, ctx)?.into())),
        _ => Err(invalid("an unknown kind of data type definition")),
    }
}
