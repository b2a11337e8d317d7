//! A ChirpStack that fails every 4th call, seen from an OPC UA client: every value Good within
//! one poll period of start, and the `Gateway/UpstreamState` variable never says `down`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_fourth_call_failing_values_are_good_within_a_poll_period_and_never_down() {
    let sim = simulator(|c| {
        c.applications = 2;
        c.devices_per_application = 3;
        c.metrics_per_device = 3;
        c.event_history = 10;
        c.uplink_interval = Duration::from_secs(3_600);
    })
    .await;
    let devices: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();
    for device in &devices {
        sim.emit_uplink_now(device);
    }
    sim.set_fail_every(4);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.chirpstack.polling_frequency = 2;
    // battery_mv comes from GetMetrics only: those calls fail now and then too.
    let ids = metric_ids(&config);
    assert!(ids.iter().any(|id| id.ends_with("/battery_mv")), "{ids:?}");
    let started = tokio::time::Instant::now();
    let gateway = Gateway::start(config, dir).await;
    let ua = gateway.client().await;
    loop {
        let mut waiting = Vec::new();
        for id in &ids {
            let status = ua.read(id).await.status();
            if status != StatusCode::Good {
                waiting.push(format!("{id}: {status}"));
            }
        }
        if waiting.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not Good within one poll period (2 s) of start: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Three poll periods with uplinks: the state shown never says down.
    let mut states = Vec::new();
    let watch = tokio::time::Instant::now();
    let mut next = 0;
    while watch.elapsed() < Duration::from_secs(6) {
        if watch.elapsed() > Duration::from_millis(500 * next as u64) {
            sim.emit_uplink_now(&devices[next % devices.len()]);
            next += 1;
        }
        if let Some(Variant::String(state)) = ua.read("Gateway/UpstreamState").await.value {
            states.push(state.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(states.len() > 30, "{states:?}");
    assert!(!states.iter().any(|s| s == "down"), "{states:?}");
    let calls = sim.calls("DeviceService.GetMetrics") + sim.calls("DeviceService.List");
    assert!(calls > 8, "calls were made, a quarter failing: {calls}");
    ua.close().await;
    gateway.stop().await;
    sim.shutdown().await;
}
