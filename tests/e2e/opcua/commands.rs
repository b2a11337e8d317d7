//! Writes to command nodes: durable queueing, downlinks, refusals.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_to_a_command_node_is_queued_durably_and_reaches_the_simulator() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let device = &config.applications[0].devices[0];
    let command = &device.commands[0];
    let node = ua.id(&format!("{}/{}", device.device_id, command.command_name));
    let status_node = format!("{}/{}/Status", device.device_id, command.command_name);

    assert_eq!(ua.write(&node, Variant::Int64(42)).await, StatusCode::Good);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let downlinks = sim.downlinks();
        if let Some(d) = downlinks.iter().find(|d| d.dev_eui == device.device_id) {
            assert_eq!(d.f_port, u32::from(command.command_port));
            assert_eq!(d.confirmed, command.command_confirmed);
            assert_eq!(d.data, vec![42]);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no downlink at the simulator"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The written value reads back; the Status child follows the command to acknowledged.
    assert_eq!(
        ua.read_node(&node, AttributeId::Value).await.value,
        Some(Variant::Int64(42))
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = ua.read(&status_node).await;
        if let Some(Variant::String(text)) = &status.value {
            if text.as_ref().contains("acknowledged") {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never acknowledged: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Refusals: wrong type, out of range, not writable, unknown.
    let before = sim.downlinks().len();
    assert_eq!(
        ua.write(&node, Variant::from("42")).await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(
        ua.write(&node, Variant::Double(4.0)).await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(
        ua.write(&node, Variant::Int64(101)).await,
        StatusCode::BadOutOfRange
    );
    assert_eq!(
        ua.write(&node, Variant::Int32(-1)).await,
        StatusCode::BadOutOfRange
    );
    let metric = ua.id(&format!(
        "{}/{}",
        device.device_id, device.metrics[0].metric_name
    ));
    assert_eq!(
        ua.write(&metric, Variant::Double(1.0)).await,
        StatusCode::BadNotWritable
    );
    assert_eq!(
        ua.write(&ua.id("nope/nothing"), Variant::Int64(1)).await,
        StatusCode::BadNodeIdUnknown
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sim.downlinks().len(),
        before,
        "a refused write sent a downlink"
    );
    assert!(crate::logs::text().contains("opcua_command_written"));
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_answers_good_only_once_the_command_is_stored() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    // Hold the database: storage cannot start, the rest of the gateway runs.
    let lock = Store::open(&config.storage.database_path).unwrap();
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let device = &config.applications[0].devices[0];
    let node = ua.id(&format!(
        "{}/{}",
        device.device_id, device.commands[0].command_name
    ));
    assert_eq!(
        ua.write(&node, Variant::Int64(5)).await,
        StatusCode::BadResourceUnavailable,
        "a write Good without storage would be lost"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sim.downlinks().is_empty());

    // Storage back: the same write goes through.
    drop(lock);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match ua.write(&node, Variant::Int64(5)).await {
            StatusCode::Good => break,
            StatusCode::BadResourceUnavailable => {}
            other => panic!("unexpected {other}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "storage never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.downlinks().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no downlink");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ua.close().await;
    gw.stop().await;
}
