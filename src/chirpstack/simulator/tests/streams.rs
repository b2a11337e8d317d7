//! Device event streams: replay, live uplinks, raw events, scheduling, stream lifecycle.

use std::time::Duration;

use chirpstack_api::api::StreamDeviceEventsRequest;
use tonic::Code;

use super::*;
use crate::chirpstack::events::parse_log_item;
use crate::model::Timestamp;

/// Every uplink metric of `up` equals the simulator's expected value at the uplink's time.
fn assert_uplink_matches(sim: &SimulatorHandle, dev_eui: &str, up: &Uplink) {
    let object = up.object.as_ref().expect("uplinks carry a decoded object");
    let uplink_metrics: Vec<_> = sim.world().metrics.iter().filter(|m| m.in_uplink).collect();
    assert_eq!(object.len(), uplink_metrics.len());
    assert!(
        !object.contains_key(super::super::BATTERY_METRIC),
        "battery_mv is GetMetrics-only"
    );
    for metric in uplink_metrics {
        let expected = sim.expected_value(dev_eui, &metric.name, up.time).unwrap();
        assert!(
            json_equals(&object[&metric.name], &expected),
            "{}: {} != {expected:?}",
            metric.name,
            object[&metric.name]
        );
    }
}

#[tokio::test]
async fn a_stream_replays_history_then_delivers_live_uplinks_with_the_expected_values() {
    let sim = start(SimulatorConfig {
        event_history: 2,
        metrics_per_device: 8,
        ..config()
    })
    .await;
    let dev_eui = first_dev_eui(&sim);
    for _ in 0..3 {
        sim.emit_uplink_now(&dev_eui);
    }
    let mut internal = internal_client(&sim).await;
    let mut stream = open_stream(&mut internal, &dev_eui).await;
    // event_history = 2: the first uplink is no longer replayed.
    let replayed = [
        next_uplink(&mut stream, &dev_eui).await,
        next_uplink(&mut stream, &dev_eui).await,
    ];
    assert_eq!(
        replayed.iter().map(|up| up.f_cnt).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(sim.open_streams(), 1);

    sim.emit_uplink_now(&dev_eui);
    let live = next_uplink(&mut stream, &dev_eui).await;
    assert_eq!((live.f_cnt, live.f_port), (4, 1));
    assert!(live.time > replayed[1].time);
    assert!(live.time.age_at(Timestamp::now()) < Duration::from_secs(5));
    for up in replayed.iter().chain([&live]) {
        assert_uplink_matches(&sim, &dev_eui, up);
    }
    let counter = |up: &Uplink| up.object.as_ref().unwrap()["counter"].as_i64().unwrap();
    assert!(
        counter(&replayed[0]) < counter(&replayed[1]) && counter(&replayed[1]) < counter(&live)
    );
}

#[tokio::test]
async fn past_uplinks_are_replayed_as_if_the_simulator_had_been_running() {
    let interval = Duration::from_secs(3600);
    let before = Timestamp::now();
    let sim = start(SimulatorConfig {
        event_history: 3,
        past_uplinks: 5,
        uplink_interval: interval,
        ..config()
    })
    .await;
    let dev_eui = first_dev_eui(&sim);
    let mut stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;
    // Five sent, the newest three kept for replay: frame counters 3, 4, 5, an hour apart, the
    // newest within an interval before the start, every value the world's at its time.
    let replayed = [
        next_uplink(&mut stream, &dev_eui).await,
        next_uplink(&mut stream, &dev_eui).await,
        next_uplink(&mut stream, &dev_eui).await,
    ];
    let counters: Vec<u32> = replayed.iter().map(|up| up.f_cnt).collect();
    assert_eq!(counters, [3, 4, 5]);
    for pair in replayed.windows(2) {
        assert_eq!(pair[1].time.0 - pair[0].time.0, interval.as_micros() as i64);
    }
    let newest = replayed[2].time;
    assert!(newest < Timestamp::now() && newest.0 >= before.0 - interval.as_micros() as i64);
    for up in &replayed {
        assert_uplink_matches(&sim, &dev_eui, up);
    }
    let invalid = SimulatorConfig {
        past_uplinks: 1,
        uplink_interval: Duration::ZERO,
        ..config()
    };
    assert!(Simulator::start(invalid, "127.0.0.1:0".parse().unwrap())
        .await
        .is_err());
}

#[tokio::test]
async fn the_uplink_body_carries_device_info_like_chirpstack() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    sim.emit_uplink_now(&dev_eui);
    let mut stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;
    let item = next_item(&mut stream).await;
    assert_eq!(item.description, "up");
    assert!(item.id.contains('-') && item.time.is_some());
    assert_eq!(item.properties.get("FPort").map(String::as_str), Some("1"));
    let body: crate::chirpstack::events::UplinkEventJson =
        serde_json::from_str(&item.body).unwrap();
    let device = sim.world().device(&dev_eui).unwrap();
    assert_eq!(body.device_info.dev_eui, dev_eui);
    assert_eq!(body.device_info.device_name, device.name);
    assert_eq!(body.device_info.application_id, device.application_id);
    assert_eq!(body.device_info.application_name, "Application 1");
    assert_eq!(body.device_info.tenant_id, sim.world().tenant_id);
    assert_eq!(body.data, "AAAAAQ==", "base64 of the frame counter");
}

#[tokio::test]
async fn a_stream_for_an_unknown_device_is_not_found() {
    let sim = start(config()).await;
    let request = authed(StreamDeviceEventsRequest {
        dev_eui: "ffffffffffffffff".into(),
    });
    let err = internal_client(&sim)
        .await
        .stream_device_events(request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(sim.calls("InternalService.StreamDeviceEvents"), 1);
    assert_eq!(sim.open_streams(), 0);
}

#[tokio::test]
async fn drop_streams_ends_every_open_stream_with_unavailable() {
    let sim = start(config()).await;
    let mut internal = internal_client(&sim).await;
    let devices: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();
    let mut streams = Vec::new();
    for dev_eui in &devices {
        streams.push(open_stream(&mut internal, dev_eui).await);
    }
    eventually("three open streams", || async { sim.open_streams() == 3 }).await;
    sim.drop_streams();
    for stream in &mut streams {
        let err = tokio::time::timeout(WAIT, stream.message())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
    }
    eventually("no open stream", || async { sim.open_streams() == 0 }).await;
    // The server keeps serving: a new stream works.
    sim.emit_uplink_now(&devices[0]);
    let mut again = open_stream(&mut internal, &devices[0]).await;
    next_uplink(&mut again, &devices[0]).await;
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_stream() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;
    eventually("the stream to be open", || async {
        sim.open_streams() == 1
    })
    .await;
    drop(stream);
    eventually("the stream to be released", || async {
        sim.open_streams() == 0
    })
    .await;
}

#[tokio::test]
async fn an_injected_raw_event_reaches_the_stream_verbatim() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let mut stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;
    sim.inject_raw_event(&dev_eui, "up", "{not json");
    sim.inject_raw_event(&dev_eui, "status", r#"{"margin":"high"}"#);
    let broken = next_item(&mut stream).await;
    assert_eq!(
        (broken.description.as_str(), broken.body.as_str()),
        ("up", "{not json")
    );
    assert!(parse_log_item(&dev_eui, &broken).is_err());
    let odd = next_item(&mut stream).await;
    assert_eq!(
        (odd.description.as_str(), odd.body.as_str()),
        ("status", r#"{"margin":"high"}"#)
    );
    sim.inject_raw_event("ffffffffffffffff", "up", "{}");
}

#[tokio::test]
async fn scheduled_uplinks_are_periodic_and_staggered_across_devices() {
    let sim = start(SimulatorConfig {
        devices_per_application: 4,
        uplink_interval: Duration::from_millis(120),
        ..config()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut internal = internal_client(&sim).await;
    let mut first_uplinks = Vec::new();
    for device in sim.world().devices().cloned().collect::<Vec<_>>() {
        let mut stream = open_stream(&mut internal, &device.dev_eui).await;
        let first = next_uplink(&mut stream, &device.dev_eui).await;
        let second = next_uplink(&mut stream, &device.dev_eui).await;
        assert_eq!((first.f_cnt, second.f_cnt), (1, 2));
        let gap = second.time.as_micros() - first.time.as_micros();
        assert!((60_000..1_000_000).contains(&gap), "period {gap} µs");
        assert_uplink_matches(&sim, &device.dev_eui, &second);
        first_uplinks.push(first.time);
    }
    // Device i reports at (i + 1) / 4 of the interval: their first uplinks come in order.
    assert!(
        first_uplinks.windows(2).all(|w| w[0] < w[1]),
        "{first_uplinks:?}"
    );
}

#[tokio::test]
async fn a_thousand_devices_with_ten_metrics_generate_uplinks_cheaply() {
    let sim = start(SimulatorConfig {
        applications: 4,
        devices_per_application: 250,
        metrics_per_device: 10,
        ..config()
    })
    .await;
    let euis: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        for eui in &euis {
            sim.emit_uplink_now(eui);
        }
    }
    let elapsed = started.elapsed();
    // 3,000 uplinks; a 10 s interval needs 100 per second. Generous for debug builds.
    assert!(
        elapsed < Duration::from_secs(3),
        "3,000 uplinks took {elapsed:?}"
    );
}
