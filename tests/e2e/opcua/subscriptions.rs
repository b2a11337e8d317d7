//! Subscriptions: value changes, staleness transitions with and without a filter, device times whatever sampling interval is asked.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_see_new_values_then_staleness_then_recovery_with_and_without_a_filter() {
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    config.opcua.stale_threshold_seconds = 2;
    config.opcua.bad_threshold_seconds = 4;
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    // The counter changes at every uplink (a gauge rounded to 0.01 holds still for seconds at
    // the top and bottom of its sine, which a filtered subscription rightly does not notify).
    let id = metric_ids(&config)
        .into_iter()
        .find(|id| {
            config.applications[0].devices[0]
                .metrics
                .iter()
                .any(|m| id.ends_with(&m.metric_name) && m.metric_type == MetricType::Int)
        })
        .unwrap();
    wait_all_good(&ua, std::slice::from_ref(&id)).await;
    let filtered = ua.subscribe(&[ua.id(&id)], true).await;
    let unfiltered = ua.subscribe(&[ua.id(&id)], false).await;
    for log in [&filtered, &unfiltered] {
        wait_for(
            log,
            Duration::from_secs(10),
            "three Good value changes",
            |seen| {
                seen.iter()
                    .filter(|(_, dv)| dv.status() == StatusCode::Good)
                    .count()
                    >= 3
            },
        )
        .await;
    }

    // Outage: no new values; the last one turns Uncertain, then Bad — notified to both.
    sim.start_outage().await;
    for log in [&filtered, &unfiltered] {
        wait_for(log, Duration::from_secs(15), "Uncertain then Bad", |seen| {
            let statuses: Vec<StatusCode> = seen.iter().map(|(_, dv)| dv.status()).collect();
            let uncertain = statuses
                .iter()
                .position(|s| *s == StatusCode::UncertainLastUsableValue);
            let bad = statuses
                .iter()
                .rposition(|s| *s == StatusCode::BadNoCommunication);
            matches!((uncertain, bad), (Some(u), Some(b)) if u < b)
        })
        .await;
        let seen = log.lock().unwrap().clone();
        let last_good = seen
            .iter()
            .rev()
            .find(|(_, dv)| dv.status() == StatusCode::Good)
            .unwrap();
        let stale = seen
            .iter()
            .find(|(_, dv)| dv.status() == StatusCode::UncertainLastUsableValue)
            .unwrap();
        // The stale notification carries the last value, stamped when it went stale.
        assert_eq!(stale.1.value, last_good.1.value);
        assert!(stale.1.source_timestamp.unwrap() > last_good.1.source_timestamp.unwrap());
    }
    let read = ua.read(&id).await;
    assert_eq!(read.status(), StatusCode::BadNoCommunication);

    // Recovery: Good again.
    sim.end_outage().await.unwrap();
    for log in [&filtered, &unfiltered] {
        wait_for(
            log,
            Duration::from_secs(20),
            "Good after recovery",
            |seen| {
                let bad = seen
                    .iter()
                    .rposition(|(_, dv)| dv.status() == StatusCode::BadNoCommunication);
                let good = seen
                    .iter()
                    .rposition(|(_, dv)| dv.status() == StatusCode::Good);
                matches!((bad, good), (Some(b), Some(g)) if g > b)
            },
        )
        .await;
    }
    ua.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_notification_carries_a_real_device_time_whatever_sampling_interval_is_asked() {
    use opcgw::storage::HistoryQuery;
    let sim = fast_simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let device = &config.applications[0].devices[0];
    let metric = device
        .metrics
        .iter()
        .find(|m| m.metric_type == MetricType::Int)
        .unwrap();
    let id = format!("{}/{}", device.device_id, metric.metric_name);
    wait_all_good(&ua, std::slice::from_ref(&id)).await;
    // -1 = "the publishing interval" (a common client default), and a slow 1 s.
    let publishing = ua.subscribe_sampled(&[ua.id(&id)], false, -1.0).await;
    let slow = ua.subscribe_sampled(&[ua.id(&id)], false, 1_000.0).await;
    for log in [&publishing, &slow] {
        wait_for(log, Duration::from_secs(10), "five notifications", |seen| {
            seen.len() >= 5
        })
        .await;
    }
    let storage = StorageClient::new(
        gw.tree.handle.lookup::<StorageMsg>("storage").await,
        Duration::from_secs(2),
    );
    let stored: std::collections::HashSet<Timestamp> = storage
        .history(HistoryQuery {
            device_id: device.device_id.clone(),
            metric: metric.metric_name.clone(),
            start: Timestamp(0),
            end: Timestamp::now().saturating_add(Duration::from_secs(60)),
            limit: 10_000,
            reverse: false,
            resume: None,
        })
        .await
        .unwrap()
        .rows
        .iter()
        .map(|r| r.time)
        .collect();
    for (name, log) in [("-1", &publishing), ("1000 ms", &slow)] {
        let seen = log.lock().unwrap().clone();
        let times: Vec<Timestamp> = seen
            .iter()
            .filter_map(|(_, dv)| dv.source_timestamp.as_ref().and_then(gateway_time))
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{name}: SourceTimestamps must move forward: {times:?}"
        );
        for t in &times {
            assert!(stored.contains(t), "{name}: {t:?} is not a device time");
        }
    }
    ua.close().await;
    gw.stop().await;
}
