//! Poller benchmark: 1,000 devices x 10 metrics against the simulator in its own process with
//! 5 ms of latency per call. Prints the poll cycle time, the uplink-to-`Samples` latency and
//! the poller's CPU per 10,000 samples. Run with `make bench`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opcgw::config::{AppConfig, ApplicationConfig, DeviceConfig, Secret};
use opcgw::model::Timestamp;
use opcgw_actors::duties::poller::output::ChannelOutput;
use opcgw_actors::duties::poller::{PollerActor, PollerArgs, PollerCounters};
use opcgw_actors::tree::messages::{ConfigUpdate, Feed, PollerMsg};
use ractor::Actor;

const APPLICATIONS: usize = 10;
const DEVICES_PER_APPLICATION: usize = 100;
const METRICS: usize = 10;
const LATENCY_MS: u64 = 5;
const TOKEN: &str = "bench-token-6a1f3e";

fn cpu_seconds() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(usage.user_time()) + t(usage.system_time())
}

/// The `[[application]]` blocks the simulator prints for this world.
fn applications(bin: &str) -> Vec<ApplicationConfig> {
    let world = [
        "--applications".to_string(),
        APPLICATIONS.to_string(),
        "--devices".to_string(),
        DEVICES_PER_APPLICATION.to_string(),
        "--metrics".to_string(),
        METRICS.to_string(),
    ];
    let (_, applications) = common::simulator_world(bin, world);
    // Keep the ten uplink metrics and battery_mv (the GetMetrics fallback), drop commands.
    applications
        .into_iter()
        .map(|app| ApplicationConfig {
            devices: app
                .devices
                .into_iter()
                .map(|d| DeviceConfig {
                    commands: vec![],
                    ..d
                })
                .collect(),
            ..app
        })
        .collect()
}

async fn counters(actor: &ractor::ActorRef<PollerMsg>) -> PollerCounters {
    actor
        .call(PollerMsg::Counters, Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .success_or(())
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = common::gateway_binary();
    let bin = bin.as_str();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sim = Command::new(bin)
        .args([
            "simulate",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--token",
            TOKEN,
        ])
        .args([
            "--applications",
            &APPLICATIONS.to_string(),
            "--devices",
            &DEVICES_PER_APPLICATION.to_string(),
        ])
        .args([
            "--metrics",
            &METRICS.to_string(),
            "--uplink-interval-ms",
            "1000",
            "--latency-ms",
            &LATENCY_MS.to_string(),
        ])
        .env("OPCGW_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the simulator");
    std::thread::sleep(Duration::from_millis(500));

    let mut config = AppConfig::default();
    config.chirpstack.server_address = format!("http://127.0.0.1:{port}");
    config.chirpstack.api_token = Secret::new(TOKEN);
    config.chirpstack.tenant_id = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242".into();
    config.chirpstack.polling_frequency = 2;
    config.applications = applications(bin);
    let devices = config.devices().count();
    let metrics_per_device = config
        .devices()
        .next()
        .map(|(_, d)| d.metrics.len())
        .unwrap_or(0);
    assert_eq!(devices, APPLICATIONS * DEVICES_PER_APPLICATION);

    let (tx, mut feed) = tokio::sync::mpsc::unbounded_channel();
    let args = PollerArgs {
        config: ConfigUpdate::initial(Arc::new(config)),
        output: Box::new(ChannelOutput(tx)),
        peers: Default::default(),
    };
    let (poller, _join) = Actor::spawn(None, PollerActor, args).await.expect("poller");

    // Warm up: every device has reported at least once and every stream is open.
    let warmup = Instant::now();
    while warmup.elapsed() < Duration::from_secs(6) {
        while feed.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = poller
        .call(PollerMsg::Upstream, Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .success_or(())
        .unwrap();

    // Uplink-to-Samples latency and CPU over a 10 s window of ~1,000 uplinks/s.
    let window = Duration::from_secs(10);
    let start_cpu = cpu_seconds();
    let started = Instant::now();
    let mut latencies_ms = Vec::new();
    let mut samples = 0u64;
    let mut cycle_ms = Vec::new();
    let mut last_cycles = counters(&poller).await.cycles;
    while started.elapsed() < window {
        match tokio::time::timeout(Duration::from_millis(100), feed.recv()).await {
            Ok(Some(Feed::Samples(batch))) => {
                let now = Timestamp::now();
                for sample in batch
                    .iter()
                    .filter(|s| s.origin == opcgw::model::SampleOrigin::Uplink)
                {
                    latencies_ms
                        .push((now.as_micros() - sample.source_time.as_micros()) as f64 / 1000.0);
                }
                samples += batch.len() as u64;
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
        let c = counters(&poller).await;
        if c.cycles != last_cycles {
            last_cycles = c.cycles;
            cycle_ms.push(c.last_cycle_ms as f64);
        }
    }
    let cpu = cpu_seconds() - start_cpu;
    let elapsed = started.elapsed().as_secs_f64();
    latencies_ms.sort_by(|a, b| a.total_cmp(b));
    cycle_ms.sort_by(|a, b| a.total_cmp(b));
    let final_counters = counters(&poller).await;

    println!("poller benchmark: {devices} devices x {metrics_per_device} metrics, {LATENCY_MS} ms latency per call, simulator in its own process");
    println!(
        "  streams open: {}/{}",
        status.streams_open, status.streams_wanted
    );
    println!(
        "  poll cycle (list 10 apps x 100 devices, GetMetrics for the devices with a new uplink, concurrency 32): min {:.0} ms, median {:.0} ms, max {:.0} ms over {} cycles",
        cycle_ms.first().copied().unwrap_or(f64::NAN),
        common::percentile(&cycle_ms, 0.5),
        cycle_ms.last().copied().unwrap_or(f64::NAN),
        cycle_ms.len()
    );
    println!(
        "  uplink -> Samples latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} samples",
        common::percentile(&latencies_ms, 0.5),
        common::percentile(&latencies_ms, 0.99),
        latencies_ms.last().copied().unwrap_or(f64::NAN),
        latencies_ms.len()
    );
    println!(
        "  throughput: {:.0} samples/s; poller process CPU {:.2} s in {:.1} s = {:.1} ms CPU per 10,000 samples",
        samples as f64 / elapsed,
        cpu,
        elapsed,
        cpu * 1000.0 * 10_000.0 / samples.max(1) as f64
    );
    println!("  counters: {final_counters:?}");
    let _ = sim.kill();
    let _ = sim.wait();
}
