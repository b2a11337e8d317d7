//! Browse by name, Read with device and gateway timestamps, the Gateway folder.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browse_finds_every_node_and_reads_give_device_values_and_timestamps() {
    let sim = simulator(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    assert_eq!(ua.ns, 2, "the gateway namespace is ns=2");

    // Browse: Objects -> applications -> devices -> metrics and commands, by browse name.
    let objects = ua.children(&ObjectId::ObjectsFolder.into()).await;
    for app in &config.applications {
        let (_, app_node) = objects
            .iter()
            .find(|(name, _)| name == &app.application_name)
            .unwrap_or_else(|| panic!("application {} not under Objects", app.application_name));
        assert_eq!(app_node, &ua.id(&app.application_id));
        let devices = ua.children(app_node).await;
        for device in &app.devices {
            let (_, device_node) = devices
                .iter()
                .find(|(name, _)| name == &device.device_name)
                .unwrap_or_else(|| panic!("device {} not found", device.device_name));
            assert_eq!(device_node, &ua.id(&device.device_id));
            let members = ua.children(device_node).await;
            for metric in &device.metrics {
                let id = format!("{}/{}", device.device_id, metric.metric_name);
                assert!(
                    members
                        .iter()
                        .any(|(name, node)| name == &metric.metric_name && node == &ua.id(&id)),
                    "metric {id} not browsable; members {members:?}"
                );
                // DataType per metric_type, historizing, engineering units when configured.
                let data_type = ua.read_node(&ua.id(&id), AttributeId::DataType).await;
                let expected: NodeId = match metric.metric_type {
                    MetricType::Float => DataTypeId::Double.into(),
                    MetricType::Int => DataTypeId::Int64.into(),
                    MetricType::Bool => DataTypeId::Boolean.into(),
                    MetricType::String => DataTypeId::String.into(),
                };
                assert_eq!(data_type.value, Some(Variant::from(expected)), "{id}");
                let historizing = ua.read_node(&ua.id(&id), AttributeId::Historizing).await;
                assert_eq!(historizing.value, Some(Variant::Boolean(true)));
                let units = ua.children(&ua.id(&id)).await;
                assert_eq!(
                    units.iter().any(|(name, _)| name == "EngineeringUnits"),
                    metric.metric_unit.is_some(),
                    "{id}: {units:?}"
                );
            }
            for command in &device.commands {
                assert!(members
                    .iter()
                    .any(|(name, _)| name == &command.command_name));
            }
        }
    }
    assert!(objects.iter().any(|(name, _)| name == "Gateway"));

    // Read: Good, the simulator's uplink value at the device timestamp. One uplink per
    // device (no others: the interval is an hour), then every stored latest value is it.
    let ids = metric_ids(&config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while sim.open_streams() < sim.world().device_count() {
        assert!(tokio::time::Instant::now() < deadline, "streams not open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for device in sim.world().devices() {
        sim.emit_uplink_now(&device.dev_eui);
    }
    let storage = StorageClient::new(
        gw.tree.handle.lookup::<StorageMsg>("storage").await,
        Duration::from_secs(2),
    );
    // (battery_mv is not in uplinks: ChirpStack's aggregates are its only source.)
    let latest = loop {
        let latest = storage.latest(None).await.unwrap_or_default();
        let uplinked = |device: &str| {
            latest
                .iter()
                .any(|l| &*l.device_id == device && l.origin == SampleOrigin::Uplink)
        };
        if latest.len() == ids.len() && sim.world().devices().all(|d| uplinked(&d.dev_eui)) {
            break latest;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "uplinks not stored: {latest:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait_all_good(&ua, &ids).await;
    let names: std::collections::HashMap<String, String> = config
        .applications
        .iter()
        .flat_map(|a| &a.devices)
        .flat_map(|d| {
            d.metrics.iter().map(move |m| {
                (
                    format!("{}/{}", d.device_id, m.metric_name),
                    m.chirpstack_metric_name.clone(),
                )
            })
        })
        .collect();
    for stored in &latest {
        let id = format!("{}/{}", stored.device_id, stored.metric);
        let dv = ua.read(&id).await;
        let source = dv.source_timestamp.as_ref().and_then(gateway_time);
        assert_eq!(
            source,
            Some(stored.source_time),
            "{id}: SourceTimestamp is the device time"
        );
        let server = dv.server_timestamp.as_ref().and_then(gateway_time).unwrap();
        assert_eq!(
            server, stored.received_time,
            "{id}: ServerTimestamp is the gateway time"
        );
        if stored.origin != SampleOrigin::Uplink {
            assert_eq!(
                dv.value,
                Some(opcgw::opcua::nodes::variant_of(&stored.value)),
                "{id}"
            );
            continue;
        }
        let expected = sim
            .expected_value(&stored.device_id, &names[&id], stored.source_time)
            .unwrap_or_else(|| panic!("simulator has no value for {id}"));
        assert_eq!(
            dv.value,
            Some(opcgw::opcua::nodes::variant_of(&expected)),
            "{id}"
        );
    }

    // The Gateway folder.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let gateway = |name: &str| format!("Gateway/{name}");
    let last_poll = ua.read(&gateway("LastPollTimestamp")).await;
    assert_eq!(last_poll.status(), StatusCode::Good);
    assert!(matches!(last_poll.value, Some(Variant::DateTime(_))));
    assert_eq!(
        ua.read(&gateway("UpstreamState")).await.value,
        Some(Variant::from("connected"))
    );
    assert_eq!(
        ua.read(&gateway("GoodValues")).await.value,
        Some(Variant::UInt32(ids.len() as u32))
    );
    let health = ua.children(&ua.id("Gateway/Health")).await;
    for role in ["storage", "opcua", "poller", "web", "control", "reload"] {
        assert!(
            health.iter().any(|(name, _)| name == role),
            "{role} health missing: {health:?}"
        );
    }
    let opcua_health = ua.read("Gateway/Health/opcua").await;
    assert_eq!(opcua_health.value, Some(Variant::from("running")));
    ua.close().await;
    gw.stop().await;
}

/// The served address space answers what generic clients ask besides browsing by name:
/// Browse in small pages with BrowseNext, inverse and type-definition references,
/// TranslateBrowsePathsToNodeIds for many paths at once, and the standard attributes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paged_browse_browse_paths_and_attributes_answer_from_the_served_model() {
    use ua::types::{
        BrowseDescription, BrowseDirection, BrowsePath, BrowseResultMask, NodeClass, NodeClassMask,
        QualifiedName, ReadValueId, ReferenceTypeId, RelativePath, RelativePathElement,
        TimestampsToReturn,
    };
    let sim = simulator(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.applications[0].devices[0].metrics[0].metric_unit = Some("°C".into());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let objects: NodeId = ObjectId::ObjectsFolder.into();

    // Objects, two references per call: every application folder and the Gateway folder
    // come exactly once across BrowseNext calls, next to the standard Server object.
    let organized = |node: NodeId, direction: BrowseDirection| BrowseDescription {
        node_id: node,
        browse_direction: direction,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: NodeClassMask::all().bits(),
        result_mask: BrowseResultMask::All as u32,
    };
    let mut names = Vec::new();
    let mut result = ua
        .session
        .browse(
            &[organized(objects.clone(), BrowseDirection::Forward)],
            2,
            None,
        )
        .await
        .expect("browse")
        .remove(0);
    let mut calls = 1;
    loop {
        let references = result.references.clone().unwrap_or_default();
        assert!(
            references.len() <= 2,
            "{} references in a page of 2",
            references.len()
        );
        names.extend(
            references
                .into_iter()
                .map(|r| r.browse_name.name.as_ref().to_string()),
        );
        if result.continuation_point.is_null() {
            break;
        }
        calls += 1;
        assert!(calls < 100, "the continuation never ends");
        result = ua
            .session
            .browse_next(false, &[result.continuation_point.clone()])
            .await
            .expect("browse next")
            .remove(0);
    }
    let mut expected: Vec<String> = config
        .applications
        .iter()
        .map(|a| a.application_name.clone())
        .chain(["Gateway".to_string(), "Server".to_string()])
        .collect();
    expected.sort();
    let mut ours: Vec<String> = names.clone();
    ours.sort();
    ours.retain(|n| expected.contains(n));
    assert_eq!(ours, expected, "each once, across {calls} calls: {names:?}");

    // A metric's inverse reference leads to its device; its type definition is standard.
    let device = &config.applications[0].devices[0];
    let metric = &device.metrics[0];
    let metric_id = ua.id(&format!("{}/{}", device.device_id, metric.metric_name));
    let up = ua
        .session
        .browse(
            &[organized(metric_id.clone(), BrowseDirection::Inverse)],
            0,
            None,
        )
        .await
        .expect("inverse browse")
        .remove(0);
    let parents: Vec<NodeId> = up
        .references
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.node_id.node_id)
        .collect();
    assert_eq!(parents, vec![ua.id(&device.device_id)]);
    let typed = ua
        .session
        .browse(
            &[BrowseDescription {
                node_id: metric_id.clone(),
                browse_direction: BrowseDirection::Forward,
                reference_type_id: ReferenceTypeId::HasTypeDefinition.into(),
                include_subtypes: false,
                node_class_mask: NodeClassMask::all().bits(),
                result_mask: BrowseResultMask::All as u32,
            }],
            0,
            None,
        )
        .await
        .expect("type definition")
        .remove(0);
    let types: Vec<(NodeId, NodeClass)> = typed
        .references
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.node_id.node_id, r.node_class))
        .collect();
    assert_eq!(
        types,
        vec![(
            ua::types::VariableTypeId::BaseDataVariableType.into(),
            NodeClass::VariableType
        )]
    );

    // One request, four filters on the same device (each decided once per request by the
    // gateway, so they must not be mixed up): its metrics by hierarchical references with
    // subtypes; none without subtypes (no reference is of that abstract type itself); none
    // of node class Object; of the same metrics only the browse names when only they are asked.
    let device_node = ua.id(&device.device_id);
    let filtered =
        |subtypes: bool, classes: NodeClassMask, mask: BrowseResultMask| BrowseDescription {
            include_subtypes: subtypes,
            node_class_mask: classes.bits(),
            result_mask: mask as u32,
            ..organized(device_node.clone(), BrowseDirection::Forward)
        };
    let answers = ua
        .session
        .browse(
            &[
                filtered(true, NodeClassMask::all(), BrowseResultMask::All),
                filtered(false, NodeClassMask::all(), BrowseResultMask::All),
                filtered(true, NodeClassMask::OBJECT, BrowseResultMask::All),
                filtered(true, NodeClassMask::VARIABLE, BrowseResultMask::BrowseName),
            ],
            0,
            None,
        )
        .await
        .expect("filtered browse");
    let references: Vec<Vec<ua::types::ReferenceDescription>> = answers
        .into_iter()
        .map(|r| r.references.unwrap_or_default())
        .collect();
    let metric_names: Vec<String> = device
        .metrics
        .iter()
        .map(|m| m.metric_name.clone())
        .collect();
    let names = |refs: &[ua::types::ReferenceDescription]| -> Vec<String> {
        refs.iter()
            .map(|r| r.browse_name.name.as_ref().to_string())
            .collect()
    };
    let children = names(&references[0]);
    assert!(
        metric_names.iter().all(|m| children.contains(m)),
        "with subtypes: {children:?}"
    );
    assert!(references[0]
        .iter()
        .all(|r| r.node_class == NodeClass::Variable
            && !r.display_name.text.is_null()
            && !r.reference_type_id.is_null()
            && !r.type_definition.is_null()));
    assert!(
        references[1].is_empty(),
        "without subtypes: {:?}",
        references[1]
    );
    assert!(
        references[2].is_empty(),
        "objects only: {:?}",
        references[2]
    );
    assert_eq!(names(&references[3]), children, "browse names only");
    for r in &references[3] {
        assert_eq!(
            r.node_id.node_id,
            ua.id(&format!("{}/{}", device.device_id, r.browse_name.name))
        );
        assert!(r.display_name.text.is_null(), "{r:?}");
        assert_eq!(r.node_class, NodeClass::Unspecified, "{r:?}");
        assert!(
            r.reference_type_id.is_null() && r.type_definition.is_null(),
            "{r:?}"
        );
    }

    // Browse paths from Objects for every metric in one request, plus one that does not exist.
    let step = |ns: u16, name: &str| RelativePathElement {
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        is_inverse: false,
        include_subtypes: true,
        target_name: QualifiedName::new(ns, name),
    };
    let mut paths = Vec::new();
    let mut wanted = Vec::new();
    for app in &config.applications {
        for device in &app.devices {
            for metric in &device.metrics {
                paths.push(BrowsePath {
                    starting_node: objects.clone(),
                    relative_path: RelativePath {
                        elements: Some(vec![
                            step(ua.ns, &app.application_name),
                            step(ua.ns, &device.device_name),
                            step(ua.ns, &metric.metric_name),
                        ]),
                    },
                });
                wanted.push(Some(
                    ua.id(&format!("{}/{}", device.device_id, metric.metric_name)),
                ));
            }
        }
    }
    paths.push(BrowsePath {
        starting_node: objects.clone(),
        relative_path: RelativePath {
            elements: Some(vec![
                step(ua.ns, &config.applications[0].application_name),
                step(ua.ns, "no such device"),
            ]),
        },
    });
    wanted.push(None);
    // The units property is in namespace 0, below its metric.
    paths.push(BrowsePath {
        starting_node: metric_id.clone(),
        relative_path: RelativePath {
            elements: Some(vec![step(0, "EngineeringUnits")]),
        },
    });
    let units_id = ua.id(&format!(
        "{}/{}/EngineeringUnits",
        device.device_id, metric.metric_name
    ));
    wanted.push(Some(units_id.clone()));
    assert!(paths.len() > 10, "a request of many paths");
    let results = ua
        .session
        .translate_browse_paths_to_node_ids(&paths)
        .await
        .expect("translate");
    assert_eq!(results.len(), wanted.len());
    for (result, wanted) in results.iter().zip(&wanted) {
        let targets: Vec<NodeId> = result
            .targets
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.target_id.node_id)
            .collect();
        match wanted {
            Some(id) => assert_eq!(targets, vec![id.clone()], "{:?}", result.status_code),
            None => assert_eq!(
                (result.status_code, targets.len()),
                (StatusCode::BadNoMatch, 0)
            ),
        }
    }

    // Attributes, as the standard node objects answer them.
    let read = |node: &NodeId, attribute: AttributeId| ReadValueId {
        node_id: node.clone(),
        attribute_id: attribute as u32,
        ..Default::default()
    };
    let command = &config
        .applications
        .iter()
        .flat_map(|a| &a.devices)
        .flat_map(|d| d.commands.iter().map(move |c| (d, c)))
        .next()
        .expect("a device with a command");
    let command_id = ua.id(&format!(
        "{}/{}",
        command.0.device_id, command.1.command_name
    ));
    let values = ua
        .session
        .read(
            &[
                read(&metric_id, AttributeId::NodeClass),
                read(&metric_id, AttributeId::BrowseName),
                read(&metric_id, AttributeId::DisplayName),
                read(&metric_id, AttributeId::AccessLevel),
                read(&metric_id, AttributeId::UserAccessLevel),
                read(&metric_id, AttributeId::ValueRank),
                read(&command_id, AttributeId::AccessLevel),
                read(&ua.id(&device.device_id), AttributeId::NodeClass),
                read(&ua.id(&device.device_id), AttributeId::EventNotifier),
                read(&ua.id(&device.device_id), AttributeId::DataType),
                read(&units_id, AttributeId::Value),
                read(&ua.id("no/such/node"), AttributeId::DisplayName),
                read(&metric_id, AttributeId::Value),
            ],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .expect("read");
    assert_eq!(
        values[0].value,
        Some(Variant::Int32(NodeClass::Variable as i32))
    );
    assert_eq!(
        values[1].value,
        Some(Variant::from(QualifiedName::new(
            ua.ns,
            metric.metric_name.as_str()
        )))
    );
    let Some(Variant::LocalizedText(display)) = &values[2].value else {
        panic!("DisplayName {:?}", values[2]);
    };
    assert_eq!(display.text.as_ref(), metric.metric_name.as_str());
    assert_eq!(
        values[3].value,
        Some(Variant::Byte(1 | 4)),
        "read and history read"
    );
    assert_eq!(values[4].value, Some(Variant::Byte(1 | 4)));
    assert_eq!(values[5].value, Some(Variant::Int32(-1)), "scalar");
    assert_eq!(
        values[6].value,
        Some(Variant::Byte(1 | 2)),
        "read and write"
    );
    assert_eq!(
        values[7].value,
        Some(Variant::Int32(NodeClass::Object as i32))
    );
    assert_eq!(values[8].value, Some(Variant::Byte(0)));
    assert_eq!(values[9].status, Some(StatusCode::BadAttributeIdInvalid));
    let Some(Variant::ExtensionObject(units)) = &values[10].value else {
        panic!("EngineeringUnits value {:?}", values[10]);
    };
    let units = units
        .inner_as::<ua::types::EUInformation>()
        .expect("EUInformation");
    assert_eq!(units.display_name.text.as_ref(), "°C");
    assert_eq!(values[11].status, Some(StatusCode::BadNodeIdUnknown));
    assert!(
        values[12].source_timestamp.is_none() && values[12].server_timestamp.is_none(),
        "no timestamps when none are asked for: {:?}",
        values[12]
    );
    ua.close().await;
}

/// A Read of the Value attribute answers as async-opcua answers it for a stored variable:
/// the timestamps asked for and only those, the index range and data encoding checks, the
/// status of a value never received, a folder without a Value. (The gateway reads Values
/// straight from its model; this pins the answers to what building the node gave.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn value_reads_answer_like_stored_variables_for_every_kind_of_node() {
    use ua::types::{NumericRange, QualifiedName, ReadValueId, TimestampsToReturn};
    let sim = simulator(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while sim.open_streams() < sim.world().device_count() {
        assert!(tokio::time::Instant::now() < deadline, "streams not open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let device = &config.applications[0].devices[0];
    let dev_eui = sim.world().devices().next().unwrap().dev_eui.clone();
    sim.emit_uplink_now(&dev_eui);
    let metric = device
        .metrics
        .iter()
        .find(|m| m.metric_name != "battery_mv")
        .expect("an uplink metric");
    let metric_name = format!("{}/{}", device.device_id, metric.metric_name);
    wait_all_good(&ua, std::slice::from_ref(&metric_name)).await;
    let metric_id = ua.id(&metric_name);
    let command = device.commands.first().expect("a command");
    let command_id = ua.id(&format!("{}/{}", device.device_id, command.command_name));
    let status_id = ua.id(&format!(
        "{}/{}/Status",
        device.device_id, command.command_name
    ));
    let value = |node: &NodeId| ReadValueId {
        node_id: node.clone(),
        attribute_id: AttributeId::Value as u32,
        ..Default::default()
    };
    let read = |items: Vec<ReadValueId>, timestamps: TimestampsToReturn| {
        let session = ua.session.clone();
        async move { session.read(&items, timestamps, 0.0).await.expect("read") }
    };

    // The timestamps asked for, and only those.
    for (mode, source, server) in [
        (TimestampsToReturn::Both, true, true),
        (TimestampsToReturn::Source, true, false),
        (TimestampsToReturn::Server, false, true),
        (TimestampsToReturn::Neither, false, false),
    ] {
        let got = read(vec![value(&metric_id)], mode).await.remove(0);
        assert!(got.value.is_some(), "{mode:?}: {got:?}");
        assert_eq!(
            got.status.unwrap_or(StatusCode::Good),
            StatusCode::Good,
            "{got:?}"
        );
        assert_eq!(got.source_timestamp.is_some(), source, "{mode:?}: {got:?}");
        assert_eq!(got.server_timestamp.is_some(), server, "{mode:?}: {got:?}");
    }

    let mut ranged = value(&metric_id);
    ranged.index_range = NumericRange::Index(0);
    let mut encoded = value(&metric_id);
    encoded.data_encoding = QualifiedName::new(0, "Default XML");
    let mut binary = value(&metric_id);
    binary.data_encoding = QualifiedName::new(0, "Default Binary");
    let got = read(
        vec![
            ranged,
            encoded,
            binary,
            value(&command_id),
            value(&status_id),
            value(&ua.id(&device.device_id)),
            value(&ua.id("no/such/node")),
        ],
        TimestampsToReturn::Both,
    )
    .await;
    assert_eq!(
        got[0].value, None,
        "an index range on a scalar: {:?}",
        got[0]
    );
    assert_eq!(
        got[0].status,
        Some(StatusCode::BadIndexRangeDataMismatch),
        "{:?}",
        got[0]
    );
    assert!(
        got[0].source_timestamp.is_some() && got[0].server_timestamp.is_some(),
        "{:?}",
        got[0]
    );
    assert_eq!(
        got[1].status,
        Some(StatusCode::BadDataEncodingInvalid),
        "{:?}",
        got[1]
    );
    assert!(
        got[1].source_timestamp.is_none() && got[1].server_timestamp.is_none(),
        "a refused read has no timestamps: {:?}",
        got[1]
    );
    assert!(
        got[2].value.is_some(),
        "Default Binary is supported: {:?}",
        got[2]
    );
    assert!(
        got[3].source_timestamp.is_some() && got[3].server_timestamp.is_some(),
        "{:?}",
        got[3]
    );
    assert_eq!(
        got[3].value,
        Some(Variant::Empty),
        "a command never sent: {:?}",
        got[3]
    );
    assert_eq!(
        got[3].status,
        Some(StatusCode::BadWaitingForInitialData),
        "{:?}",
        got[3]
    );
    assert!(
        matches!(got[4].value, Some(Variant::String(_))),
        "a command's Status is a string: {:?}",
        got[4]
    );
    assert_eq!(
        got[5].status,
        Some(StatusCode::BadAttributeIdInvalid),
        "a folder: {:?}",
        got[5]
    );
    assert_eq!(
        got[6].status,
        Some(StatusCode::BadNodeIdUnknown),
        "{:?}",
        got[6]
    );
    ua.close().await;
}
