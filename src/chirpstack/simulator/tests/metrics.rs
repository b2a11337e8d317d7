//! `GetMetrics` and `GetLinkMetrics` over real gRPC.

use std::collections::BTreeMap;
use std::time::Duration;

use chirpstack_api::api::{GetDeviceLinkMetricsRequest, GetDeviceMetricsRequest};
use chirpstack_api::common::{Aggregation, MetricKind};
use tonic::Code;

use super::*;
use crate::model::Timestamp;

fn request(
    dev_eui: &str,
    aggregation: Aggregation,
    start: Timestamp,
    end: Timestamp,
) -> GetDeviceMetricsRequest {
    GetDeviceMetricsRequest {
        dev_eui: dev_eui.to_string(),
        start: Some(start.to_prost()),
        end: Some(end.to_prost()),
        aggregation: aggregation.into(),
    }
}

/// Emits `n` uplinks and returns their times, read back from the device's stream.
async fn uplink_times(sim: &SimulatorHandle, dev_eui: &str, n: usize) -> Vec<Timestamp> {
    let mut stream = open_stream(&mut internal_client(sim).await, dev_eui).await;
    let mut times = Vec::new();
    for _ in 0..n {
        sim.emit_uplink_now(dev_eui);
        times.push(next_uplink(&mut stream, dev_eui).await.time);
    }
    times
}

/// Per minute bucket, what the simulator should answer for `metric`: the mean, or the last
/// value for counters.
fn expected_buckets(
    sim: &SimulatorHandle,
    dev_eui: &str,
    metric: &str,
    times: &[Timestamp],
    last: bool,
) -> BTreeMap<i64, f32> {
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for t in times {
        let value = super::super::World::numeric(&sim.expected_value(dev_eui, metric, *t).unwrap())
            .unwrap();
        buckets
            .entry(t.as_micros() - t.as_micros().rem_euclid(60_000_000))
            .or_default()
            .push(value);
    }
    buckets
        .into_iter()
        .map(|(start, values)| {
            let folded = if last {
                *values.last().unwrap()
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            };
            (start, folded as f32)
        })
        .collect()
}

#[tokio::test]
async fn get_metrics_reports_battery_and_averages_gauges_per_bucket() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let times = uplink_times(&sim, &dev_eui, 6).await;
    let now = Timestamp::now();
    let range = (
        now.saturating_sub(Duration::from_secs(3600)),
        now.saturating_add(Duration::from_secs(60)),
    );
    let answer = device_client(&sim)
        .await
        .get_metrics(authed(request(
            &dev_eui,
            Aggregation::Minute,
            range.0,
            range.1,
        )))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.states.is_empty());
    assert!(
        !answer.metrics.contains_key("mode"),
        "strings are not recorded"
    );

    for (name, last, kind) in [
        ("battery_mv", false, MetricKind::Gauge),
        ("temperature", false, MetricKind::Gauge),
        ("valve_open", false, MetricKind::Gauge),
        ("counter", true, MetricKind::Counter),
    ] {
        let metric = &answer.metrics[name];
        assert_eq!((metric.name.as_str(), metric.kind), (name, kind as i32));
        assert_eq!(metric.datasets.len(), 1);
        assert_eq!(metric.datasets[0].label, name);
        let got: BTreeMap<i64, f32> = metric
            .timestamps
            .iter()
            .map(|t| Timestamp::from_prost(t).unwrap().as_micros())
            .zip(metric.datasets[0].data.iter().copied())
            .collect();
        assert_eq!(
            got,
            expected_buckets(&sim, &dev_eui, name, &times, last),
            "{name}"
        );
        assert!(metric
            .timestamps
            .windows(2)
            .all(|w| w[0].seconds < w[1].seconds));
    }
}

#[tokio::test]
async fn minute_aggregation_is_refused_by_an_older_server() {
    let sim = start(SimulatorConfig {
        supports_minute_aggregation: false,
        ..config()
    })
    .await;
    let dev_eui = first_dev_eui(&sim);
    let now = Timestamp::now();
    let from = now.saturating_sub(Duration::from_secs(3600));
    let mut devices = device_client(&sim).await;
    let refused = devices
        .get_metrics(authed(request(&dev_eui, Aggregation::Minute, from, now)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(devices
        .get_metrics(authed(request(&dev_eui, Aggregation::Hour, from, now)))
        .await
        .is_ok());
    assert_eq!(sim.calls("DeviceService.GetMetrics"), 2);
}

#[tokio::test]
async fn filled_buckets_report_zeros_for_empty_ones_like_chirpstack() {
    let sim = start(SimulatorConfig {
        fill_empty_buckets: true,
        ..config()
    })
    .await;
    let dev_eui = first_dev_eui(&sim);
    uplink_times(&sim, &dev_eui, 2).await;
    let now = Timestamp::now();
    let start = now.saturating_sub(Duration::from_secs(3 * 3600));
    let answer = device_client(&sim)
        .await
        .get_metrics(authed(request(&dev_eui, Aggregation::Hour, start, now)))
        .await
        .unwrap()
        .into_inner();
    let battery = &answer.metrics["battery_mv"];
    assert_eq!(
        battery.timestamps.len(),
        4,
        "the three hours before and the current one"
    );
    let data = &battery.datasets[0].data;
    assert_eq!(data[..3], [0.0, 0.0, 0.0]);
    assert!(data[3] > 3_000.0);
}

#[tokio::test]
async fn link_metrics_count_received_uplinks_with_plausible_radio_figures() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let times = uplink_times(&sim, &dev_eui, 3).await;
    let now = Timestamp::now();
    let answer = device_client(&sim)
        .await
        .get_link_metrics(authed(GetDeviceLinkMetricsRequest {
            dev_eui: dev_eui.clone(),
            start: Some(now.saturating_sub(Duration::from_secs(86_400)).to_prost()),
            end: Some(now.saturating_add(Duration::from_secs(60)).to_prost()),
            aggregation: Aggregation::Day.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let received = answer.rx_packets.unwrap();
    let total: f32 = received.datasets[0].data.iter().sum();
    assert_eq!(total as usize, times.len());
    let rssi = answer.gw_rssi.unwrap().datasets[0].data.clone();
    let snr = answer.gw_snr.unwrap().datasets[0].data.clone();
    assert!(rssi.iter().all(|v| (-130.0..-30.0).contains(v)), "{rssi:?}");
    assert!(snr.iter().all(|v| (-20.0..15.0).contains(v)), "{snr:?}");
    assert_eq!(sim.calls("DeviceService.GetLinkMetrics"), 1);
}

#[test]
fn values_are_deterministic_finite_and_move_with_time() {
    let config = SimulatorConfig {
        metrics_per_device: 8,
        ..config()
    };
    let epoch = Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
    let world = config.world(epoch);
    let again = config.world(epoch);
    let slot = Duration::from_secs(10);
    let times: Vec<Timestamp> = (0..12).map(|i| epoch.saturating_add(slot * i)).collect();
    for (m, metric) in world.metrics.iter().enumerate() {
        let values: Vec<Value> = times.iter().map(|t| world.value(1, m, *t)).collect();
        let same: Vec<Value> = times.iter().map(|t| again.value(1, m, *t)).collect();
        assert_eq!(values, same, "{}", metric.name);
        assert!(values
            .iter()
            .all(|v| !matches!(v, Value::Float(f) if !f.is_finite())));
        assert!(
            values.windows(2).any(|w| w[0] != w[1]),
            "{} never changes",
            metric.name
        );
        assert!(values.iter().all(|v| v.metric_type() == metric.metric_type));
    }
    let modes: std::collections::HashSet<String> = times
        .iter()
        .map(|t| match world.value(0, 3, *t) {
            Value::String(s) => s,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(modes.len(), 3);
    // Devices differ from each other.
    assert_ne!(world.value(0, 0, epoch), world.value(1, 0, epoch));
}
