//! Crash isolation: the OPC UA actor restarts, the rest keeps running.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_opcua_actor_is_restarted_and_clients_reconnect_to_current_values() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let ids = metric_ids(&config);
    wait_all_good(&ua, &ids).await;
    // A command acknowledged before the crash.
    let device = &config.applications[0].devices[0];
    let command = format!("{}/{}", device.device_id, device.commands[0].command_name);
    assert_eq!(
        ua.write(&ua.id(&command), Variant::Int64(7)).await,
        StatusCode::Good
    );
    let status_id = format!("{command}/Status");
    let acknowledged = |dv: &ua::types::DataValue| matches!(&dv.value, Some(Variant::String(s)) if s.as_ref().contains(" acknowledged"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !acknowledged(&ua.read(&status_id).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "command not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let poller_restarts = |status: &opcgw_actors::tree::supervisor::TreeStatus| {
        (
            status.child("poller").unwrap().restarts,
            status.child("storage").unwrap().restarts,
        )
    };
    let before = gw.tree.handle.status().await.unwrap();

    let actor = gw
        .tree
        .handle
        .lookup::<OpcUaMsg>("opcua")
        .await
        .expect("opcua actor");
    actor
        .cast(OpcUaMsg::Common(Common::InjectPanic("test".into())))
        .unwrap();
    // Restarted with backoff; the poller and storage never stopped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = gw.tree.handle.status().await.unwrap();
        let opcua = status.child("opcua").unwrap();
        if opcua.restarts >= 1 && opcua.state == ChildState::Running {
            assert_eq!(poller_restarts(&status), poller_restarts(&before));
            assert_eq!(status.child("poller").unwrap().state, ChildState::Running);
            assert_eq!(status.child("storage").unwrap().state, ChildState::Running);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "opcua not restarted: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ua.close().await;
    // A new session sees current values at once (refilled from storage), and they keep moving.
    let ua = gw.client().await;
    for id in &ids {
        let dv = ua.read(id).await;
        assert_eq!(dv.status(), StatusCode::Good, "{id} after restart");
    }
    // The command's last state is shown again (refilled from storage).
    let status = ua.read(&status_id).await;
    assert!(acknowledged(&status), "{status:?}");
    let first = ua.read(&ids[0]).await.source_timestamp;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ua.read(&ids[0]).await.source_timestamp == first {
        assert!(
            tokio::time::Instant::now() < deadline,
            "values stopped after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ua.close().await;
    gw.stop().await;
}
