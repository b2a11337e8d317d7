//! Reloaded topologies applied live to connected clients.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topology_change_is_visible_to_a_connected_client_without_reconnecting() {
    let sim = fast_simulator(|c| {
        c.applications = 2;
        c.devices_per_application = 2;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    // Start with one device; the reload adds the second, removes a metric of the first and
    // renames it.
    let mut small = config.clone();
    small.applications[0].devices.truncate(1);
    let gw = Gateway::start(small.clone(), dir).await;
    let ua = gw.client().await;
    let first = small.applications[0].devices[0].clone();
    // The kept metric is the counter, which changes at every uplink (a rounded gauge can hold
    // still for seconds at the top of its sine).
    let kept = format!("{}/{}", first.device_id, first.metrics[1].metric_name);
    let removed = format!("{}/{}", first.device_id, first.metrics[0].metric_name);
    let added_device = config.applications[0].devices[1].clone();
    wait_all_good(&ua, &[kept.clone(), removed.clone()]).await;
    let kept_log = ua.subscribe(&[ua.id(&kept)], false).await;
    let removed_log = ua.subscribe(&[ua.id(&removed)], false).await;
    assert!(ua
        .children(&ua.id(&small.applications[0].application_id))
        .await
        .iter()
        .all(|(name, _)| name != &added_device.device_name));

    let events = ua.subscribe_server_events().await;
    let mut next = config.clone();
    next.applications[0].devices[0].metrics.remove(0);
    next.applications[0].devices[0].device_name = "Renamed".into();
    gw.apply(&small, &next, 1);

    // The same session sees the new device, the rename, and the removed metric gone.
    let app = ua.id(&next.applications[0].application_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let devices = ua.children(&app).await;
        let has_new = devices.iter().any(|(name, node)| {
            name == &added_device.device_name && node == &ua.id(&added_device.device_id)
        });
        let renamed = devices.iter().any(|(name, _)| name == "Renamed");
        if has_new && renamed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "topology not applied: {devices:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let members = ua.children(&ua.id(&first.device_id)).await;
    assert!(members
        .iter()
        .all(|(name, _)| name != &first.metrics[0].metric_name));
    assert_eq!(
        ua.read(&removed).await.status(),
        StatusCode::BadNodeIdUnknown
    );
    wait_for(
        &removed_log,
        Duration::from_secs(5),
        "removal notified",
        |seen| {
            seen.iter()
                .any(|(_, dv)| dv.status() == StatusCode::BadNodeIdUnknown)
        },
    )
    .await;
    // Clients that watch the Server object hear of the change.
    let model_change: NodeId = ua::types::ObjectTypeId::BaseModelChangeEventType.into();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !events
        .lock()
        .unwrap()
        .contains(&Variant::from(model_change.clone()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no model change event: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Values of the new device arrive; the untouched subscription keeps delivering.
    let new_metric = format!(
        "{}/{}",
        added_device.device_id, added_device.metrics[0].metric_name
    );
    wait_all_good(&ua, &[new_metric]).await;
    let count = kept_log.lock().unwrap().len();
    wait_for(
        &kept_log,
        Duration::from_secs(10),
        "the kept metric still notifies",
        |seen| seen.len() > count,
    )
    .await;

    // Moving a device to another application keeps its metrics browsable under it.
    let mut moved = next.clone();
    let device = moved.applications[0].devices.remove(1);
    moved.applications[1].devices.push(device.clone());
    gw.apply(&next, &moved, 2);
    let target = ua.id(&moved.applications[1].application_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let devices = ua.children(&target).await;
        if devices
            .iter()
            .any(|(_, node)| node == &ua.id(&device.device_id))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "device not moved: {devices:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ua
        .children(&ua.id(&moved.applications[0].application_id))
        .await
        .iter()
        .all(|(_, node)| node != &ua.id(&device.device_id)));
    let members = ua.children(&ua.id(&device.device_id)).await;
    for metric in &device.metrics {
        assert!(
            members.iter().any(|(name, _)| name == &metric.metric_name),
            "{} not browsable after the move: {members:?}",
            metric.metric_name
        );
    }
    let command = format!("{}/{}", device.device_id, device.commands[0].command_name);
    assert!(ua
        .children(&ua.id(&command))
        .await
        .iter()
        .any(|(name, _)| name == "Status"));
    ua.close().await;
    gw.stop().await;
}
