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
                .any(|l| l.device_id == device && l.origin == SampleOrigin::Uplink)
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
