//! The poller when ChirpStack misbehaves: a rejected token, a server failing every n-th call,
//! an outage and its recovery — over real loopback gRPC against the simulator.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use opcgw::chirpstack::simulator::SimulatorHandle;
use opcgw::chirpstack::upstream::UpstreamState;
use opcgw::config::Secret;
use opcgw::model::{SampleOrigin, Timestamp};
use opcgw_actors::tree::messages::Feed;

use crate::logs;
use crate::poller::{gateway_config, has_every, samples, simulator, wanted_metrics, PollerProbe};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_reported_clearly_retried_slowly_and_never_logged() {
    let sim = simulator(|_| {}).await;
    let wrong = "wrong-token-that-must-never-be-logged-4f1d";
    let config = gateway_config(&sim, |c| c.chirpstack.api_token = Secret::new(wrong));
    let poller = PollerProbe::start(config).await;
    poller
        .wait_upstream(UpstreamState::Unauthenticated, Duration::from_secs(5))
        .await;
    let status = poller.upstream().await;
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("OPCGW_CHIRPSTACK__API_TOKEN"),
        "{status:?}"
    );

    // No hammering: once the token is known to be bad, nothing more is tried for a while.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sim.unauthenticated_calls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sim.unauthenticated_calls(),
        before,
        "retried within 3 s of a rejected token"
    );
    assert!(before <= 6, "{before} rejected calls before backing off");

    let log = logs::text();
    assert!(!log.contains(wrong), "the token reached the log");
    assert!(
        !logs::events("chirpstack_auth_failed", "").is_empty(),
        "no auth failure event"
    );
    poller.stop();
    sim.shutdown().await;
}

/// ChirpStack answering every 4th call UNAVAILABLE (a proxy's hiccups): every value arrives
/// within one poll period of start, and the link is never shown `down` (it was: one failed
/// listing flipped it to down and back, closing every event stream each time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_failing_every_fourth_call_never_shows_down_and_loses_no_value() {
    let sim = simulator(|c| {
        c.devices_per_application = 4;
        c.metrics_per_device = 2;
        c.event_history = 10;
    })
    .await;
    let devices: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();
    for dev in &devices {
        sim.emit_uplink_now(dev);
    }
    sim.set_fail_every(4);
    let config = gateway_config(&sim, |c| c.chirpstack.polling_frequency = 2);
    let wanted = wanted_metrics(&config);
    let mut poller = PollerProbe::start(config).await;
    poller
        .wait_for(
            Duration::from_secs(2),
            "every value within one poll period of start",
            |feed| has_every(feed, &wanted),
        )
        .await;

    // Three poll periods more, with uplinks (so GetMetrics and listings keep failing now and
    // then): the state shown never says down.
    for round in 0..6 {
        sim.emit_uplink_now(&devices[round % devices.len()]);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    poller.drain();
    let states: Vec<UpstreamState> = poller
        .seen
        .iter()
        .filter_map(|f| match f {
            Feed::Upstream(status) => Some(status.state),
            _ => None,
        })
        .collect();
    assert!(states.len() >= 3, "{states:?}");
    assert!(
        !states.contains(&UpstreamState::Down),
        "the link was shown down: {states:?}"
    );
    assert!(
        logs::events("upstream_state_changed", "to=\"down\"").is_empty()
            && logs::events("upstream_state_changed", "to=down").is_empty(),
        "a down transition was logged"
    );
    assert!(total_calls(&sim) >= 8, "calls were made (and some failed)");
    poller.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_degrades_without_a_tight_loop_and_recovery_reconciles_the_gap() {
    let sim = simulator(|c| {
        c.uplink_interval = Duration::from_millis(300);
        c.event_history = 100;
        c.metrics_per_device = 2;
    })
    .await;
    let config = gateway_config(&sim, |_| {});
    let mut poller = PollerProbe::start(config).await;
    poller
        .wait_upstream(UpstreamState::Connected, Duration::from_secs(5))
        .await;
    poller
        .wait_for(Duration::from_secs(5), "live samples", |feed| {
            samples(feed).len() >= 4
        })
        .await;

    // Soft outage: the server answers UNAVAILABLE to every call.
    sim.set_error_rate(1.0);
    poller
        .wait_upstream(UpstreamState::Down, Duration::from_secs(5))
        .await;
    let calls_before = total_calls(&sim);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = total_calls(&sim) - calls_before;
    assert!(
        during <= 8,
        "{during} calls in 3 s of outage: a tight retry loop"
    );
    sim.set_error_rate(0.0);
    poller
        .wait_upstream(UpstreamState::Connected, Duration::from_secs(10))
        .await;

    // Hard outage: nothing listens; uplinks keep happening at the "network server".
    sim.start_outage().await;
    let outage_start = Timestamp::now();
    poller
        .wait_upstream(UpstreamState::Down, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outage_end = Timestamp::now();
    sim.end_outage().await.expect("server back");
    poller
        .wait_upstream(UpstreamState::Connected, Duration::from_secs(10))
        .await;
    let devices: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();
    poller
        .wait_for(
            Duration::from_secs(10),
            "values from inside the outage window for every device",
            |feed| {
                let inside: HashSet<String> = samples(feed)
                    .into_iter()
                    .filter(|s| {
                        s.origin == SampleOrigin::Uplink
                            && s.source_time > outage_start
                            && s.source_time < outage_end
                    })
                    .map(|s| s.device_id.to_string())
                    .collect();
                devices.iter().all(|d| inside.contains(d))
            },
        )
        .await;
    poller
        .wait_for(
            Duration::from_secs(5),
            "fresh values after recovery",
            |feed| samples(feed).iter().any(|s| s.source_time > outage_end),
        )
        .await;

    // No aggregate ever replaced a newer raw value of its series.
    let mut newest_raw: HashMap<(std::sync::Arc<str>, std::sync::Arc<str>), Timestamp> =
        HashMap::new();
    for sample in samples(&poller.seen) {
        let key = (sample.device_id.clone(), sample.metric.clone());
        match sample.origin {
            SampleOrigin::Uplink => {
                let t = newest_raw.entry(key).or_insert(sample.source_time);
                *t = (*t).max(sample.source_time);
            }
            SampleOrigin::Aggregate => {
                if let Some(raw) = newest_raw.get(&key) {
                    assert!(
                        sample.source_time > *raw,
                        "aggregate {sample:?} older than raw {raw}"
                    );
                }
            }
        }
    }
    poller.stop();
    sim.shutdown().await;
}

fn total_calls(sim: &SimulatorHandle) -> u64 {
    [
        "ApplicationService.List",
        "DeviceService.List",
        "DeviceService.GetMetrics",
        "DeviceService.GetQueue",
        "InternalService.StreamDeviceEvents",
    ]
    .iter()
    .map(|m| sim.calls(m))
    .sum()
}
