//! The poll cycle against the in-memory double: planned by `PollCycle`, run by `run_cycle`,
//! judged by the `UpstreamTracker`, as the poller actor does it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chirpstack_api::common::Aggregation;

use super::double::{Call, Double, FixedClock, World};
use crate::chirpstack::buckets::bucket_of;
use crate::chirpstack::client::DeviceSummary;
use crate::chirpstack::poll::{run_cycle, CycleReport, PollCycle};
use crate::chirpstack::upstream::{UpstreamState, UpstreamTracker};
use crate::config::{AppConfig, ApplicationConfig, DeviceConfig, MetricConfig, MetricType};
use crate::model::{SampleOrigin, Timestamp, Value};

/// An hour boundary (2023-11-14T23:00:00Z), plus `seconds`.
fn at(seconds: i64) -> Timestamp {
    Timestamp(1_700_002_800_000_000 + seconds * 1_000_000)
}

fn device(dev_eui: &str, last_seen: Option<Timestamp>) -> DeviceSummary {
    DeviceSummary {
        dev_eui: dev_eui.into(),
        name: dev_eui.into(),
        last_seen,
        margin: Some(10),
        battery_level: Some(90.0),
        external_power_source: false,
        rssi: None,
        snr: None,
    }
}

/// One application per entry, each device with the float metric `temp`.
fn config(applications: &[(&str, Vec<String>)]) -> AppConfig {
    let mut config = AppConfig::default();
    config.chirpstack.tenant_id = "tenant".into();
    config.applications = applications
        .iter()
        .map(|(id, devices)| ApplicationConfig {
            application_name: id.to_string(),
            application_id: id.to_string(),
            discover: false,
            templates: Default::default(),
            devices: devices
                .iter()
                .map(|d| DeviceConfig {
                    device_name: d.clone(),
                    device_id: d.clone(),
                    stale_threshold_seconds: None,
                    metrics: vec![MetricConfig {
                        metric_name: "temp".into(),
                        chirpstack_metric_name: "temp".into(),
                        metric_type: MetricType::Float,
                        metric_unit: None,
                    }],
                    commands: Vec::new(),
                })
                .collect(),
        })
        .collect();
    config
}

fn devices(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("dev-{i:02}")).collect()
}

/// A double serving `config`'s devices, all last seen at `seen`, `temp` = 21.5 each.
fn world_of(config: &AppConfig, seen: Timestamp) -> World {
    let mut world = World::default();
    for app in &config.applications {
        world.applications.push(app.application_id.clone());
        let listed = app
            .devices
            .iter()
            .map(|d| device(&d.device_id, Some(seen)))
            .collect();
        world.devices.insert(app.application_id.clone(), listed);
        for d in &app.devices {
            world
                .metrics
                .insert(d.device_id.clone(), BTreeMap::from([("temp".into(), 21.5)]));
        }
    }
    world
}

/// The poller's side of a cycle, without the actor.
struct Poller {
    config: AppConfig,
    memory: PollCycle,
    upstream: UpstreamTracker,
    api: Arc<Double>,
    clock: FixedClock,
}

impl Poller {
    fn new(config: AppConfig, world: World) -> Self {
        Self {
            memory: PollCycle::new(&config),
            upstream: UpstreamTracker::new(3, Duration::from_secs(1), at(0)),
            config,
            api: Arc::new(Double::new(world)),
            clock: FixedClock(Mutex::new(at(600))),
        }
    }

    async fn run(&mut self) -> CycleReport {
        let input = self
            .memory
            .plan(&self.config, self.upstream.state(), Vec::new());
        run_cycle(self.api.clone(), input, &self.clock).await
    }

    /// One whole cycle: planned, run, judged and absorbed; the samples it admits.
    async fn cycle(&mut self) -> (CycleReport, Vec<crate::model::Sample>) {
        let report = self.run().await;
        match &report.failure {
            Some(error) => self.upstream.poll_failed(error, report.finished),
            None => {
                let partial = report.partial_errors.first().cloned();
                self.upstream.poll_succeeded(partial, report.finished)
            }
        };
        let samples = self
            .memory
            .absorb(report.clone(), &self.config)
            .map(|o| o.samples)
            .unwrap_or_default();
        (report, samples)
    }

    fn metric_calls(&self) -> Vec<(String, Aggregation, Timestamp)> {
        self.api
            .take_calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::GetMetrics {
                    device,
                    aggregation,
                    start,
                } => Some((device, aggregation, start)),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_cycle_lists_the_devices_and_reads_the_bucket_of_each_last_uplink_once() {
    let config = config(&[("app-1", devices(2))]);
    let seen = at(125); // inside the minute [120 s, 180 s)
    let mut poller = Poller::new(config.clone(), world_of(&config, seen));

    let (report, samples) = poller.cycle().await;
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert!(
        report.partial_errors.is_empty(),
        "{:?}",
        report.partial_errors
    );
    assert_eq!(report.devices.len(), 2);
    assert_eq!(samples.len(), 2);
    for sample in &samples {
        assert_eq!(sample.value, Value::Float(21.5));
        assert_eq!(sample.source_time, at(120), "stamped with the bucket start");
        assert_eq!(
            sample.received_time,
            at(600),
            "received on the cycle's clock"
        );
        assert_eq!(sample.origin, SampleOrigin::Aggregate);
    }
    assert_eq!(poller.upstream.state(), UpstreamState::Connected);
    // Applications verified, one listing, two GetMetrics, two link-quality reads.
    assert_eq!(report.calls, 6);
    let calls = poller.metric_calls();
    assert_eq!(calls.len(), 2);
    assert!(calls
        .iter()
        .all(|(_, a, start)| *a == Aggregation::Minute && *start == at(120)));

    // No uplink since: the bucket is not read again, and the applications are not re-listed.
    let (report, samples) = poller.cycle().await;
    assert!(samples.is_empty());
    assert_eq!(report.calls, 1, "only the device listing");
    assert!(poller.metric_calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_device_degrades_the_cycle_and_only_that_device_is_read_again() {
    let config = config(&[("app-1", devices(2))]);
    let mut world = world_of(&config, at(125));
    world.failing_devices.insert("dev-01".into());
    let mut poller = Poller::new(config, world);

    let (report, samples) = poller.cycle().await;
    assert!(
        report.failure.is_none(),
        "one device does not fail the cycle"
    );
    assert_eq!(report.partial_errors.len(), 1);
    assert!(
        report.partial_errors[0].starts_with("GetMetrics dev-01:"),
        "{:?}",
        report.partial_errors
    );
    assert_eq!(samples.len(), 1);
    assert_eq!(&*samples[0].device_id, "dev-00");
    assert_eq!(report.devices.len(), 2, "its health is still listed");
    assert_eq!(poller.upstream.state(), UpstreamState::Degraded);
    poller.metric_calls();

    // The healthy device's bucket was read; the failed one is asked again, and now answers.
    poller.api.world().failing_devices.clear();
    let (report, samples) = poller.cycle().await;
    let calls = poller.metric_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "dev-01");
    assert_eq!(samples.len(), 1);
    assert_eq!(&*samples[0].device_id, "dev-01");
    assert!(report.partial_errors.is_empty());
    assert_eq!(
        poller.upstream.state(),
        UpstreamState::Degraded,
        "one clean cycle after a failure does not make the link connected"
    );
    poller.cycle().await;
    assert_eq!(poller.upstream.state(), UpstreamState::Connected);
}

/// A server (or a proxy before it) that answers every 4th call UNAVAILABLE: each such call
/// is made again, so every device's value arrives in the first cycle, and the link is never
/// down.
#[tokio::test(start_paused = true)]
async fn a_call_answered_unavailable_is_made_again_once_and_no_value_waits_a_cycle() {
    let all = devices(12);
    let config = config(&[("app-1", all[..6].to_vec()), ("app-2", all[6..].to_vec())]);
    let mut world = world_of(&config, at(125));
    world.fail_every = Some(4);
    let mut poller = Poller::new(config, world);

    let (report, samples) = poller.cycle().await;
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert!(
        report.partial_errors.is_empty(),
        "{:?}",
        report.partial_errors
    );
    let mut devices: Vec<_> = samples.iter().map(|s| s.device_id.clone()).collect();
    devices.sort();
    devices.dedup();
    assert_eq!(
        devices.len(),
        12,
        "every device's value in the first cycle: {devices:?}"
    );
    let made = poller.api.take_calls().len() as u32;
    assert_eq!(report.calls, made, "retries are counted as calls");
    assert!(made > 12 + 12 + 3, "some calls were made twice: {made}");
    assert_eq!(poller.upstream.state(), UpstreamState::Connected);
}

#[tokio::test(start_paused = true)]
async fn an_outage_fails_the_cycle_and_recovery_reads_again_what_the_streams_missed() {
    let config = config_one();
    let mut poller = Poller::new(config.clone(), world_of(&config, at(125)));
    // The stream delivered `temp` at 125 s: GetMetrics is not its source.
    let object = serde_json::json!({"temp": 20.0});
    let object = object.as_object().cloned().expect("a JSON object");
    let (raw, _) = poller
        .memory
        .uplink("dev-00", &object, at(125), at(126))
        .expect("a configured device");
    assert_eq!(raw.len(), 1);

    let (report, samples) = poller.cycle().await;
    assert!(report.failure.is_none());
    assert!(samples.is_empty());
    assert!(poller.metric_calls().is_empty(), "uplinks deliver temp");

    poller.api.world().down = true;
    let (report, samples) = poller.cycle().await;
    assert!(
        matches!(
            report.failure,
            Some(crate::chirpstack::client::UpstreamError::Refused(_))
        ),
        "{:?}",
        report.failure
    );
    assert!(samples.is_empty());
    assert_eq!(poller.upstream.state(), UpstreamState::Down);

    // During the outage the device sent a value that no stream carried.
    {
        let mut world = poller.api.world();
        world.down = false;
        world
            .devices
            .insert("app-1".into(), vec![device("dev-00", Some(at(250)))]);
        world
            .metrics
            .insert("dev-00".into(), BTreeMap::from([("temp".into(), 23.0)]));
    }
    let (report, samples) = poller.cycle().await;
    assert!(report.failure.is_none());
    assert_eq!(poller.upstream.state(), UpstreamState::Connected);
    assert_eq!(samples.len(), 1, "the gap is reconciled from GetMetrics");
    assert_eq!(samples[0].value, Value::Float(23.0));
    assert_eq!(samples[0].source_time, at(240));

    // Connected again: the streams are the source of temp once more.
    poller
        .api
        .world()
        .devices
        .insert("app-1".into(), vec![device("dev-00", Some(at(400)))]);
    poller.metric_calls();
    poller.cycle().await;
    assert!(poller.metric_calls().is_empty());
}

fn config_one() -> AppConfig {
    config(&[("app-1", devices(1))])
}

#[tokio::test(start_paused = true)]
async fn every_page_of_a_device_listing_is_read() {
    let mut config = config(&[("app-1", devices(25))]);
    config.chirpstack.list_page_size = 10;
    let mut poller = Poller::new(config.clone(), world_of(&config, at(125)));

    let (report, _) = poller.cycle().await;
    assert!(report.failure.is_none());
    assert_eq!(report.devices.len(), 25);
    let offsets: Vec<u32> = poller
        .api
        .take_calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::ListDevices { offset, .. } => Some(offset),
            _ => None,
        })
        .collect();
    assert_eq!(offsets, vec![0, 10, 20]);
}

#[tokio::test(start_paused = true)]
async fn no_more_calls_run_at_once_than_poll_concurrency() {
    let mut config = config(&[("app-1", devices(12)), ("app-2", devices(0))]);
    config.chirpstack.poll_concurrency = 3;
    let mut world = world_of(&config, at(125));
    world.latency = Duration::from_millis(100);
    let mut poller = Poller::new(config, world);

    let (report, samples) = poller.cycle().await;
    assert!(report.failure.is_none());
    assert_eq!(samples.len(), 12);
    assert_eq!(
        poller
            .api
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    // 12 GetMetrics and 12 link reads, 3 at a time, after the listings: at least 9 rounds.
    assert!(
        report.duration >= Duration::from_millis(900),
        "{:?}",
        report.duration
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_without_minute_aggregation_is_asked_for_hour_buckets_from_then_on() {
    let config = config_one();
    let mut world = world_of(&config, at(125));
    world.refuse_minute = true;
    let mut poller = Poller::new(config, world);

    let (report, samples) = poller.cycle().await;
    assert!(report.failure.is_none());
    assert!(
        report.partial_errors.is_empty(),
        "{:?}",
        report.partial_errors
    );
    assert_eq!(report.aggregation, Aggregation::Hour);
    assert_eq!(
        poller.metric_calls(),
        vec![
            ("dev-00".to_string(), Aggregation::Minute, at(120)),
            ("dev-00".to_string(), Aggregation::Hour, at(0)),
        ]
    );
    assert_eq!(samples.len(), 1);
    assert_eq!(
        samples[0].source_time,
        bucket_of(Aggregation::Hour, at(125)).0
    );
    assert_eq!(poller.memory.aggregation(), Aggregation::Hour);

    // A new uplink: HOUR straight away, MINUTE is not tried again.
    poller
        .api
        .world()
        .devices
        .insert("app-1".into(), vec![device("dev-00", Some(at(4_000)))]);
    let (_, samples) = poller.cycle().await;
    assert_eq!(
        poller.metric_calls(),
        vec![("dev-00".to_string(), Aggregation::Hour, at(3_600))]
    );
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].source_time, at(3_600));
}

#[tokio::test(start_paused = true)]
async fn an_application_the_tenant_lacks_is_reported_once_and_the_others_are_still_polled() {
    let config = config(&[("app-1", devices(1)), ("app-gone", vec!["dev-x".into()])]);
    let mut world = world_of(&config, at(125));
    world.applications.retain(|a| a != "app-gone");
    world.devices.remove("app-gone");
    let mut poller = Poller::new(config.clone(), world);

    let report = poller.run().await;
    assert!(
        report.failure.is_none(),
        "one application does not fail the cycle"
    );
    assert_eq!(report.unknown_applications, vec!["app-gone".to_string()]);
    assert!(
        report
            .partial_errors
            .iter()
            .any(|e| e.starts_with("listing application app-gone:")),
        "{:?}",
        report.partial_errors
    );
    let outcome = poller
        .memory
        .absorb(report, &config)
        .expect("a successful cycle");
    assert_eq!(outcome.unknown_applications, vec!["app-gone".to_string()]);
    assert_eq!(outcome.unlisted_devices, vec!["dev-x".to_string()]);
    assert_eq!(outcome.health.len(), 1);
    assert_eq!(outcome.samples.len(), 1);

    // Verified once per topology: the next cycle does not list the applications again.
    poller.api.take_calls();
    let report = poller.run().await;
    assert!(report.unknown_applications.is_empty());
    assert!(!poller
        .api
        .take_calls()
        .iter()
        .any(|c| matches!(c, Call::ListApplications { .. })));
}

#[tokio::test(start_paused = true)]
async fn link_quality_is_read_for_all_at_first_then_for_a_share_of_the_devices_each_cycle() {
    use crate::chirpstack::poll::state::LINK_QUALITY_EVERY_CYCLES;
    let config = config(&[("app-1", devices(60))]);
    let world = world_of(&config, at(0));
    let mut poller = Poller::new(config, world);
    let link_calls = |poller: &Poller| -> Vec<String> {
        poller
            .api
            .take_calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::GetLinkMetrics { device } => Some(device),
                _ => None,
            })
            .collect()
    };
    poller.cycle().await;
    assert_eq!(
        link_calls(&poller).len(),
        60,
        "every device on the first cycle"
    );
    let mut read: Vec<String> = Vec::new();
    for cycle in 1..=LINK_QUALITY_EVERY_CYCLES {
        poller.cycle().await;
        let calls = link_calls(&poller);
        assert!(
            calls.len() < 30,
            "cycle {cycle} read the link quality of {} of 60 devices",
            calls.len()
        );
        read.extend(calls);
    }
    read.sort();
    assert_eq!(
        read,
        devices(60),
        "each device once every {LINK_QUALITY_EVERY_CYCLES} cycles"
    );
}
