//! The poller against the simulator over real loopback gRPC.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opcgw::chirpstack::simulator::{Simulator, SimulatorConfig, SimulatorHandle};
use opcgw::chirpstack::upstream::{UpstreamState, UpstreamStatus};
use opcgw::commands::{CommandRequest, CommandState, CommandUpdate};
use opcgw::config::{AppConfig, Secret};
use opcgw::model::{Sample, SampleOrigin, Timestamp};
use opcgw_actors::duties::poller::output::ChannelOutput;
use opcgw_actors::duties::poller::{PollerActor, PollerArgs, PollerCounters};
use opcgw_actors::tree::messages::{ConfigUpdate, Feed, PollerMsg};
use ractor::{Actor, ActorRef};
use tokio::sync::mpsc;

use crate::logs;

const TOKEN: &str = "sim-token-for-poller-tests";

pub async fn simulator(tweak: impl FnOnce(&mut SimulatorConfig)) -> SimulatorHandle {
    let mut config = SimulatorConfig {
        api_token: TOKEN.into(),
        applications: 1,
        devices_per_application: 2,
        metrics_per_device: 4,
        uplink_interval: Duration::from_secs(3_600),
        downlink_ack_delay: Duration::from_millis(20),
        ..SimulatorConfig::default()
    };
    tweak(&mut config);
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

/// A gateway configuration matching the simulator's world, with fast polling.
pub fn gateway_config(sim: &SimulatorHandle, tweak: impl FnOnce(&mut AppConfig)) -> AppConfig {
    let mut config = AppConfig::default();
    config.chirpstack.server_address = sim.url();
    config.chirpstack.api_token = Secret::new(TOKEN);
    config.chirpstack.tenant_id = sim.world().tenant_id.clone();
    config.chirpstack.polling_frequency = 1;
    config.chirpstack.delay = 1;
    config.chirpstack.retry = 3;
    config.chirpstack.request_timeout_seconds = 2;
    config.applications = sim.world().to_config();
    tweak(&mut config);
    config
}

/// A poller outside the tree, its feed collected.
pub struct PollerProbe {
    pub actor: ActorRef<PollerMsg>,
    feed: mpsc::UnboundedReceiver<Feed>,
    pub seen: Vec<Feed>,
}

impl PollerProbe {
    pub async fn start(config: AppConfig) -> Self {
        logs::capture();
        let (tx, feed) = mpsc::unbounded_channel();
        let args = PollerArgs {
            config: ConfigUpdate::initial(Arc::new(config)),
            output: Box::new(ChannelOutput(tx)),
            peers: Default::default(),
        };
        let (actor, _join) = Actor::spawn(None, PollerActor, args)
            .await
            .expect("poller starts");
        Self {
            actor,
            feed,
            seen: Vec::new(),
        }
    }

    pub fn drain(&mut self) {
        while let Ok(feed) = self.feed.try_recv() {
            self.seen.push(feed);
        }
    }

    /// Waits until `done` holds over everything fed so far.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Feed]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if done(&self.seen) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; fed so far: {} items; samples: {:#?}",
                    self.seen.len(),
                    samples(&self.seen).len()
                );
            }
            tokio::select! {
                Some(feed) = self.feed.recv() => self.seen.push(feed),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    pub async fn upstream(&self) -> UpstreamStatus {
        self.actor
            .call(PollerMsg::Upstream, Some(Duration::from_secs(2)))
            .await
            .unwrap()
            .success_or(())
            .unwrap()
    }

    pub async fn counters(&self) -> PollerCounters {
        self.actor
            .call(PollerMsg::Counters, Some(Duration::from_secs(2)))
            .await
            .unwrap()
            .success_or(())
            .unwrap()
    }

    pub async fn wait_upstream(&self, state: UpstreamState, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.upstream().await;
            if status.state == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "upstream never became {state:?}: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stop(self) {
        self.actor.stop(None);
    }
}

/// Every (device, metric) of `config`.
pub fn wanted_metrics(config: &AppConfig) -> HashSet<(String, String)> {
    config
        .devices()
        .flat_map(|(_, d)| {
            d.metrics
                .iter()
                .map(move |m| (d.device_id.clone(), m.metric_name.clone()))
        })
        .collect()
}

/// Whether the feed holds a sample of every one of `wanted`.
pub fn has_every(feed: &[Feed], wanted: &HashSet<(String, String)>) -> bool {
    let got: HashSet<(String, String)> = samples(feed)
        .into_iter()
        .map(|s| (s.device_id.to_string(), s.metric.to_string()))
        .collect();
    wanted.is_subset(&got)
}

pub fn samples(feed: &[Feed]) -> Vec<Sample> {
    feed.iter()
        .filter_map(|f| match f {
            Feed::Samples(s) => Some(s.iter().cloned().collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn commands(feed: &[Feed]) -> Vec<CommandUpdate> {
    feed.iter()
        .filter_map(|f| match f {
            Feed::Command(c) => Some((**c).clone()),
            _ => None,
        })
        .collect()
}

pub async fn wait_streams(sim: &SimulatorHandle, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.open_streams() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} streams open",
            sim.open_streams()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_configured_metric_arrives_with_the_device_timestamp_and_its_exact_value() {
    let sim = simulator(|_| {}).await;
    let config = gateway_config(&sim, |_| {});
    let devices: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();
    let mut poller = PollerProbe::start(config.clone()).await;
    wait_streams(&sim, devices.len()).await;
    for dev in &devices {
        sim.emit_uplink_now(dev);
    }
    let wanted = wanted_metrics(&config);
    poller
        .wait_for(
            Duration::from_secs(10),
            "a value of every configured metric",
            |feed| has_every(feed, &wanted),
        )
        .await;
    let names: HashMap<(String, String), String> = config
        .devices()
        .flat_map(|(_, d)| {
            d.metrics.iter().map(move |m| {
                (
                    (d.device_id.clone(), m.metric_name.clone()),
                    m.chirpstack_metric_name.clone(),
                )
            })
        })
        .collect();
    for sample in samples(&poller.seen) {
        let upstream = &names[&(sample.device_id.to_string(), sample.metric.to_string())];
        match sample.origin {
            SampleOrigin::Uplink => {
                let expected = sim.expected_value(&sample.device_id, upstream, sample.source_time);
                assert_eq!(Some(sample.value.clone()), expected, "{sample:?}");
                assert!(sample.received_time >= sample.source_time, "{sample:?}");
            }
            SampleOrigin::Aggregate => {
                // Stamped with the bucket start (a whole minute), never the gateway clock.
                assert_eq!(sample.source_time.as_micros() % 60_000_000, 0, "{sample:?}");
                assert_eq!(
                    upstream, "battery_mv",
                    "only metrics uplinks never carry come from GetMetrics: {sample:?}"
                );
            }
        }
    }
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_is_listed_when_there_are_more_than_a_page() {
    let sim = simulator(|c| {
        c.devices_per_application = 25;
        c.metrics_per_device = 1;
    })
    .await;
    let config = gateway_config(&sim, |c| {
        c.chirpstack.list_page_size = 10;
        c.chirpstack.event_stream = false;
    });
    let mut poller = PollerProbe::start(config).await;
    poller
        .wait_for(
            Duration::from_secs(10),
            "device health of all 25 devices",
            |feed| {
                feed.iter()
                    .any(|f| matches!(f, Feed::DeviceHealth(d) if d.len() == 25))
            },
        )
        .await;
    assert!(
        sim.calls("DeviceService.List") >= 3,
        "25 devices at 10 per page need 3 calls"
    );
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_is_reopened_and_values_flow_again() {
    let sim = simulator(|_| {}).await;
    let mut poller = PollerProbe::start(gateway_config(&sim, |_| {})).await;
    wait_streams(&sim, 2).await;
    let opened = sim.calls("InternalService.StreamDeviceEvents");
    sim.drop_streams();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.calls("InternalService.StreamDeviceEvents") < opened + 2 || sim.open_streams() < 2 {
        assert!(Instant::now() < deadline, "streams were not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dev = sim.world().devices().next().unwrap().dev_eui.clone();
    let after = Timestamp::now();
    sim.emit_uplink_now(&dev);
    poller
        .wait_for(Duration::from_secs(5), "a value after the reopen", |feed| {
            samples(feed).iter().any(|s| {
                *s.device_id == dev && s.origin == SampleOrigin::Uplink && s.source_time >= after
            })
        })
        .await;
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_and_bad_values_are_dropped_one_warning_each_and_never_poison_the_stream()
{
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let mut poller = PollerProbe::start(gateway_config(&sim, |_| {})).await;
    wait_streams(&sim, 1).await;
    let dev = sim.world().devices().next().unwrap().dev_eui.clone();
    let now = Timestamp::now().to_rfc3339();
    let info = format!(r#""deviceInfo":{{"devEui":"{dev}"}}"#);
    let bad_events = [
        "{not json".to_string(),
        format!(r#"{{"time":"yesterday",{info},"object":{{"temperature":1.0}}}}"#),
        format!(r#"{{"time":"{now}",{info},"object":{{"temperature":1e999}}}}"#),
        format!(r#"{{"time":"{now}",{info},"object":[1,2]}}"#),
        format!(
            r#"{{"time":"{now}",{info},"object":{{"mode":"{}"}}}}"#,
            "x".repeat(300 * 1024)
        ),
        format!(
            r#"{{"time":"{now}","deviceInfo":{{"devEui":"ffffffffffffffff"}},"object":{{"temperature":1.0}}}}"#
        ),
    ];
    for body in &bad_events {
        sim.inject_raw_event(&dev, "up", body);
    }
    // One uplink with one good and three bad values: the good one must survive.
    let mixed = format!(
        r#"{{"time":"{now}",{info},"object":{{"temperature":21.5,"counter":"12","valve_open":2,"mode":"{}"}}}}"#,
        "y".repeat(5_000)
    );
    sim.inject_raw_event(&dev, "up", &mixed);
    poller
        .wait_for(
            Duration::from_secs(5),
            "the good value of the mixed uplink",
            |feed| {
                samples(feed)
                    .iter()
                    .any(|s| *s.device_id == dev && s.value == opcgw::model::Value::Float(21.5))
            },
        )
        .await;
    let counters = poller.counters().await;
    assert_eq!(
        counters.rejected_events,
        bad_events.len() as u64,
        "{counters:?}"
    );
    assert_eq!(counters.rejected_values, 3, "{counters:?}");
    assert_eq!(
        logs::events("device_event_rejected", &dev).len() as u64,
        counters.rejected_events
    );
    assert!(logs::events("metric_value_rejected", &dev).len() >= 3);
    assert!(
        !logs::text().contains(&"x".repeat(100)),
        "a huge value reached the log"
    );

    // The stream still works.
    let after = Timestamp::now();
    sim.emit_uplink_now(&dev);
    poller
        .wait_for(
            Duration::from_secs(5),
            "a normal uplink afterwards",
            |feed| {
                samples(feed)
                    .iter()
                    .any(|s| s.source_time >= after && s.origin == SampleOrigin::Uplink)
            },
        )
        .await;
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_becomes_an_enqueue_and_is_acknowledged_by_the_ack_event() {
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let mut poller = PollerProbe::start(gateway_config(&sim, |_| {})).await;
    wait_streams(&sim, 1).await;
    poller
        .wait_upstream(UpstreamState::Connected, Duration::from_secs(5))
        .await;
    let dev = sim.world().devices().next().unwrap().dev_eui.clone();
    let request = CommandRequest {
        id: 7,
        downlink: opcgw::commands::Downlink {
            device_id: dev.clone(),
            command_name: "Valve".into(),
            f_port: 10,
            confirmed: true,
            payload: vec![1, 2, 3],
        },
    };
    poller.actor.cast(PollerMsg::Dispatch(request)).unwrap();
    poller
        .wait_for(Duration::from_secs(5), "acknowledged", |feed| {
            commands(feed)
                .iter()
                .any(|c| c.state == CommandState::Acknowledged)
        })
        .await;
    let states: Vec<(CommandState, bool)> = commands(&poller.seen)
        .iter()
        .map(|c| (c.state, c.transmitted))
        .collect();
    assert_eq!(
        states,
        [
            (CommandState::Queued, false),
            (CommandState::Sent, false),
            (CommandState::Sent, true),
            (CommandState::Acknowledged, true)
        ]
    );
    let downlinks = sim.downlinks();
    assert_eq!(downlinks.len(), 1);
    assert_eq!(
        (
            downlinks[0].dev_eui.as_str(),
            downlinks[0].f_port,
            downlinks[0].confirmed,
            downlinks[0].data.as_slice()
        ),
        (dev.as_str(), 10, true, &[1u8, 2, 3][..])
    );

    // A port ChirpStack refuses fails the command instead of retrying it.
    let bad = CommandRequest {
        id: 8,
        downlink: opcgw::commands::Downlink {
            device_id: dev.clone(),
            command_name: "Valve".into(),
            f_port: 224,
            confirmed: false,
            payload: vec![0],
        },
    };
    poller.actor.cast(PollerMsg::Dispatch(bad)).unwrap();
    poller
        .wait_for(Duration::from_secs(5), "failed", |feed| {
            commands(feed)
                .iter()
                .any(|c| c.id == 8 && c.state == CommandState::Failed)
        })
        .await;
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_come_from_the_bucket_of_the_last_uplink_even_when_empty_buckets_read_zero() {
    // Real ChirpStack reports empty buckets as 0: the newest bucket is usually such a zero.
    let sim = simulator(|c| {
        c.devices_per_application = 1;
        c.fill_empty_buckets = true;
    })
    .await;
    let mut poller = PollerProbe::start(gateway_config(&sim, |_| {})).await;
    wait_streams(&sim, 1).await;
    let dev = sim.world().devices().next().unwrap().dev_eui.clone();
    sim.emit_uplink_now(&dev);
    poller
        .wait_for(Duration::from_secs(10), "the battery aggregate", |feed| {
            samples(feed)
                .iter()
                .any(|s| &*s.metric == "battery_mv" && s.origin == SampleOrigin::Aggregate)
        })
        .await;
    let uplink_time = samples(&poller.seen)
        .iter()
        .find(|s| s.origin == SampleOrigin::Uplink)
        .map(|s| s.source_time)
        .unwrap();
    let battery = samples(&poller.seen)
        .into_iter()
        .find(|s| &*s.metric == "battery_mv")
        .unwrap();
    let Some(opcgw::model::Value::Float(expected)) =
        sim.expected_value(&dev, "battery_mv", uplink_time)
    else {
        panic!()
    };
    let opcgw::model::Value::Float(got) = battery.value else {
        panic!("{battery:?}")
    };
    assert!(
        (got - expected).abs() < 0.01 * expected.abs().max(1.0),
        "got {got}, the uplink carried {expected}"
    );
    assert!(
        battery.source_time <= uplink_time
            && uplink_time.as_micros() - battery.source_time.as_micros() < 60_000_000
    );
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_adds_and_removes_streams_without_a_restart() {
    let sim = simulator(|c| c.devices_per_application = 3).await;
    let full = gateway_config(&sim, |_| {});
    let with_devices = |n: usize| {
        let mut config = full.clone();
        config.applications[0].devices.truncate(n);
        config
    };
    let mut poller = PollerProbe::start(with_devices(2)).await;
    wait_streams(&sim, 2).await;
    let update = |config: AppConfig, generation| {
        let diff = opcgw::config::ConfigDiff::between(&full, &config);
        opcgw_actors::tree::messages::Common::ConfigChanged(ConfigUpdate {
            config: Arc::new(config),
            diff: Arc::new(diff),
            generation,
        })
    };
    poller
        .actor
        .cast(PollerMsg::Common(update(with_devices(3), 1)))
        .unwrap();
    wait_streams(&sim, 3).await;
    let third = sim.world().devices().nth(2).unwrap().dev_eui.clone();
    sim.emit_uplink_now(&third);
    poller
        .wait_for(
            Duration::from_secs(5),
            "a value of the added device",
            |feed| samples(feed).iter().any(|s| *s.device_id == third),
        )
        .await;

    poller
        .actor
        .cast(PollerMsg::Common(update(with_devices(1), 2)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.open_streams() != 1 {
        assert!(
            Instant::now() < deadline,
            "{} streams still open after removing two devices",
            sim.open_streams()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_health_carries_last_seen_battery_and_link_quality() {
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let dev = sim.world().devices().next().unwrap().dev_eui.clone();
    sim.emit_uplink_now(&dev);
    let mut poller = PollerProbe::start(gateway_config(&sim, |_| {})).await;
    poller
        .wait_for(
            Duration::from_secs(10),
            "device health with link quality",
            |feed| {
                feed.iter().any(
                    |f| matches!(f, Feed::DeviceHealth(d) if d.iter().any(|h| h.rssi.is_some())),
                )
            },
        )
        .await;
    let health = poller
        .seen
        .iter()
        .find_map(|f| match f {
            Feed::DeviceHealth(d) => d.iter().find(|h| h.rssi.is_some()).cloned(),
            _ => None,
        })
        .unwrap();
    assert_eq!(health.dev_eui, dev);
    assert!(health.last_seen.is_some(), "{health:?}");
    assert!(
        (-130.0..=-20.0).contains(&health.rssi.unwrap()),
        "{health:?}"
    );
    assert!(
        health.snr.is_some_and(|s| (-25.0..=15.0).contains(&s)),
        "{health:?}"
    );
    assert_eq!(
        sim.calls("DeviceService.GetLinkMetrics"),
        1,
        "read once, not every cycle"
    );
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_minute_aggregation_is_read_by_the_hour() {
    let sim = simulator(|c| {
        c.devices_per_application = 1;
        c.supports_minute_aggregation = false;
    })
    .await;
    let mut poller = PollerProbe::start(gateway_config(&sim, |_| {})).await;
    wait_streams(&sim, 1).await;
    let dev = sim.world().devices().next().unwrap().dev_eui.clone();
    sim.emit_uplink_now(&dev);
    poller
        .wait_for(Duration::from_secs(10), "the battery aggregate", |feed| {
            samples(feed)
                .iter()
                .any(|s| &*s.metric == "battery_mv" && s.origin == SampleOrigin::Aggregate)
        })
        .await;
    let battery = samples(&poller.seen)
        .into_iter()
        .find(|s| &*s.metric == "battery_mv")
        .unwrap();
    assert_eq!(
        battery.source_time.as_micros() % 3_600_000_000,
        0,
        "stamped with the start of an HOUR bucket: {battery:?}"
    );
    // The refusal is not an error of the upstream: it is answered by asking for HOUR.
    poller
        .wait_upstream(UpstreamState::Connected, Duration::from_secs(5))
        .await;
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_pool_grows_with_the_devices_up_to_its_ceiling_and_says_who_is_polled_only() {
    let sim = simulator(|c| c.devices_per_application = 5).await;
    let full = gateway_config(&sim, |c| {
        c.chirpstack.streams_per_connection = 2;
        c.chirpstack.max_stream_connections = 2;
    });
    let mut small = full.clone();
    small.applications[0].devices.truncate(3);
    let mut poller = PollerProbe::start(small.clone()).await;
    // Three devices: two connections (2 + 1 streams), nobody polled only.
    wait_streams(&sim, 3).await;
    let status = poller.upstream().await;
    assert_eq!(
        (status.streams_wanted, status.devices_polled_only),
        (3, 0),
        "{status:?}"
    );
    // Five devices on a ceiling of four streams: one device is polled only, said once.
    let diff = opcgw::config::ConfigDiff::between(&small, &full);
    poller
        .actor
        .cast(PollerMsg::Common(
            opcgw_actors::tree::messages::Common::ConfigChanged(ConfigUpdate {
                config: Arc::new(full.clone()),
                diff: Arc::new(diff),
                generation: 1,
            }),
        ))
        .unwrap();
    wait_streams(&sim, 4).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = poller.upstream().await;
        if status.devices_polled_only == 1 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (status.streams_wanted, status.devices_polled_only),
        (4, 1),
        "{status:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.open_streams(), 4, "never more than the ceiling");
    let planned = logs::events("event_streams_planned", "");
    assert!(
        planned
            .iter()
            .any(|l| l.contains("streamed=3") && l.contains("polled_only=0"))
            && planned
                .iter()
                .any(|l| l.contains("streamed=4") && l.contains("polled_only=1")),
        "{planned:#?}"
    );
    let warned = logs::events("event_stream_capacity_reached", "polled_only=1");
    assert_eq!(
        warned.len(),
        1,
        "one warning for the pool, not one per device"
    );
    // The polled-only device still gets values, from GetMetrics aggregates.
    let polled_only = sim.world().devices().nth(4).unwrap().dev_eui.clone();
    sim.emit_uplink_now(&polled_only);
    poller
        .wait_for(
            Duration::from_secs(10),
            "an aggregate of the polled-only device",
            |feed| samples(feed).iter().any(|s| *s.device_id == polled_only),
        )
        .await;
    poller.stop();
    sim.shutdown().await;
}

/// Feeds a channel, and says storage is behind while `backlogged` is set.
struct BackloggedOutput {
    feed: mpsc::UnboundedSender<Feed>,
    backlogged: Arc<std::sync::atomic::AtomicBool>,
}

impl opcgw_actors::duties::poller::output::PollerOutput for BackloggedOutput {
    fn send(&mut self, _peers: &opcgw_actors::tree::messages::Peers, feed: Feed) {
        let _ = self.feed.send(feed);
    }

    fn storage_backlogged(&self) -> bool {
        self.backlogged.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_storage_is_behind_the_event_streams_wait_and_lose_nothing() {
    use opcgw_actors::duties::poller::streams::MAX_EVENTS_IN_FLIGHT;
    use std::sync::atomic::{AtomicBool, Ordering};
    logs::capture();
    let sim = simulator(|c| {
        c.devices_per_application = 1;
        c.event_history = 2_000;
    })
    .await;
    let config = gateway_config(&sim, |c| c.chirpstack.polling_frequency = 3_600);
    let dev = sim.world().devices().next().unwrap().dev_eui.clone();
    let backlogged = Arc::new(AtomicBool::new(true));
    let (tx, mut feed) = mpsc::unbounded_channel();
    let args = PollerArgs {
        config: ConfigUpdate::initial(Arc::new(config)),
        output: Box::new(BackloggedOutput {
            feed: tx,
            backlogged: backlogged.clone(),
        }),
        peers: Default::default(),
    };
    let (actor, _join) = Actor::spawn(None, PollerActor, args).await.unwrap();
    wait_streams(&sim, 1).await;
    let uplinks = MAX_EVENTS_IN_FLIGHT + 200;
    for _ in 0..uplinks {
        sim.emit_uplink_now(&dev);
    }
    // One temperature per uplink: count the uplinks that reached the poller's output.
    let mut seen = Vec::new();
    let count = |seen: &mut Vec<Feed>, feed: &mut mpsc::UnboundedReceiver<Feed>| {
        while let Ok(item) = feed.try_recv() {
            seen.push(item);
        }
        samples(seen)
            .iter()
            .filter(|s| *s.device_id == dev && &*s.metric == "temperature")
            .count()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&mut seen, &mut feed),
        MAX_EVENTS_IN_FLIGHT,
        "the stream stops once every in-flight event is held"
    );
    assert_eq!(logs::events("event_streams_held", "").len(), 1);
    // Storage caught up: the rest arrives, none lost.
    backlogged.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&mut seen, &mut feed) < uplinks {
        assert!(
            Instant::now() < deadline,
            "{} of {uplinks} uplinks after the release",
            count(&mut seen, &mut feed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&mut seen, &mut feed), uplinks);
    assert_eq!(logs::events("event_streams_released", "").len(), 1);
    actor.stop(None);
    sim.shutdown().await;
}
