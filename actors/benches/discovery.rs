//! Discovery at fleet scale: the real `opcgw` binary (release build) against the simulator in
//! its own process with 5 ms of latency on every call (100 applications x 100 devices, 5
//! measurements per uplink plus `battery_mv`, an uplink per device every 30 s), configured
//! with 100 `discover = true` applications and no device at all. Prints, each beside its
//! target:
//! 1. spawn -> every device's variables are in the address space (<= 10 s), and the first
//!    discovery's own duration from the log;
//! 2. spawn -> a Read of one variable of every device returns all Good (<= 20 s);
//! 3. a refresh that finds nothing new (SIGHUP: an unchanged reload, then a discovery): its
//!    wall time from the log (<= 2 s), and that it changed nothing (no topology change, no new
//!    configuration generation);
//! 4. with every device on an event stream (the default pool), how late value changes reach a
//!    client subscribed to one variable of every device (publishing interval 250 ms): p50 /
//!    p95 / p99 of receive time minus the uplink's time over a minute (p95 <= 1 s), and what
//!    the streams cost: the gateway's file descriptors and resident memory.
//!
//! Knobs (environment): `OPCGW_BENCH_KEEP` (keep the directory), `OPCGW_BENCH_STREAMS=0` (the
//! same run with `event_stream = false`, to tell the streams' share of memory and descriptors;
//! figures 2 and 4 then wait for the one-minute `GetMetrics` buckets). Run with `make bench`;
//! figures go to docs/performance.md.

mod common;

use common::{free_port, log_field, log_lines, log_problems, percentile, rss_kib};

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ua::client::DataChangeCallback;
use ua::types::{DataValue, DateTime, StatusCode, TimestampsToReturn};

// At least 12 characters and no common word: the gateway refuses weak secrets.
const TOKEN: &str = "bench-token-6a1f3e";
const PASSWORD: &str = "bench-pw-5c8e1d7a";
const APPLICATIONS: usize = 100;
const DEVICES: usize = 100;
const UPLINK: Duration = Duration::from_secs(30);
/// The variable read on every device.
const WATCHED_METRIC: &str = "temperature";
/// How long notification delays are collected.
const LATENCY_WINDOW: Duration = Duration::from_secs(60);

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn count(values: &[DataValue], status: StatusCode) -> usize {
    values.iter().filter(|v| v.status() == status).count()
}

fn wait_for_log(dir: &std::path::Path, event: &str, n: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let lines: Vec<String> = log_lines(dir)
            .into_iter()
            .filter(|l| l.contains(&format!("event=\"{event}\"")))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(Instant::now() < deadline, "no {event} after {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = common::gateway_binary();
    let bin = bin.as_str();
    let (_temp, dir) = common::bench_dir();
    let world = format!(
        "--applications {APPLICATIONS} --devices {DEVICES} --metrics 5 --uplink-interval-ms {} \
         --latency-ms 5",
        UPLINK.as_millis()
    );
    let sim_port = free_port();
    let sim = common::spawn_simulator(bin, sim_port, TOKEN, &world);
    let sim_started = Instant::now();
    let (_, apps) = common::simulator_world(bin, world.split_whitespace());

    let (log_dir, database, opcua_port) = (dir.join("log"), dir.join("opcgw.redb"), free_port());
    let pki = dir.join("pki");
    // The default stream pool (up to 100 x 100 streams) streams every device.
    let streams = std::env::var("OPCGW_BENCH_STREAMS").map_or(true, |v| v != "0");
    let mut config = common::gateway_toml(&common::GatewayToml {
        sim_port,
        opcua_port,
        pki: &pki,
        database: &database,
        log_dir: Some(&log_dir),
        level: "warn,opcgw_actors::duties::reload=info,opcgw_actors::duties::poller::streams=info",
        chirpstack_extra: if streams {
            ""
        } else {
            "event_stream = false\n"
        },
    });
    for app in &apps {
        config += &format!(
            "[[application]]\napplication_name = {}\napplication_id = {}\ndiscover = true\n\n",
            toml::Value::String(app.application_name.clone()),
            toml::Value::String(app.application_id.clone()),
        );
    }
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, &config).expect("config");
    println!(
        "world: {} devices in {APPLICATIONS} applications discovered from the simulator (5 ms per \
         call); the configuration lists no device ({} bytes)",
        APPLICATIONS * DEVICES,
        config.len()
    );
    // ChirpStack holds a recent event of every device: let each send one before the start.
    tokio::time::sleep(UPLINK.saturating_sub(sim_started.elapsed())).await;

    let spawned = Instant::now();
    let gateway = common::start_gateway(Command::new(bin), &config_path, &dir, TOKEN, PASSWORD);
    let pid = gateway.0.id();
    let client_pki = dir.join("client-pki");
    let (session, _event_loop) =
        common::opcua_session(opcua_port, PASSWORD, &client_pki, 16 << 20, 512).await;
    let ns = common::gateway_namespace(&session).await;
    let watched = common::value_reads(ns, &apps, WATCHED_METRIC);
    let read_all = || session.read(&watched, TimestampsToReturn::Both, 0.0);

    // 1. and 2. Read until no variable is unknown, then until every one is Good.
    let mut present = None;
    let all_good = loop {
        let values = read_all().await.expect("read");
        if present.is_none() && count(&values, StatusCode::BadNodeIdUnknown) == 0 {
            present = Some(spawned.elapsed().as_secs_f64());
        }
        if count(&values, StatusCode::Good) == watched.len() {
            break spawned.elapsed().as_secs_f64();
        }
        assert!(
            spawned.elapsed() < Duration::from_secs(300),
            "only {} of {} Good after 300 s",
            count(&values, StatusCode::Good),
            watched.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let present = present.expect("present before Good");
    let first = wait_for_log(&log_dir, "discovery_succeeded", 1, Duration::from_secs(5));
    let first_ms = log_field(&first[0], "duration_ms").unwrap_or(f64::NAN);
    let listed = log_field(&first[0], "listed").unwrap_or(f64::NAN);
    let calls = log_field(&first[0], "calls").unwrap_or(f64::NAN);
    let nodes = common::browse_count(&session, ns).await;

    // 3. A refresh that finds nothing new: SIGHUP (an unchanged reload, then a discovery).
    let changes_before = log_lines(&log_dir)
        .iter()
        .filter(|l| l.contains("event=\"topology_change_detected\""))
        .count();
    // SAFETY: a signal to the child this bench spawned and still owns.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let refreshes = wait_for_log(&log_dir, "discovery_succeeded", 2, Duration::from_secs(60));
    let refresh = &refreshes[1];
    let refresh_ms = log_field(refresh, "duration_ms").unwrap_or(f64::NAN);
    let lines = log_lines(&log_dir);
    let changes_after = lines
        .iter()
        .filter(|l| l.contains("event=\"topology_change_detected\""))
        .count();
    let reload = lines
        .iter()
        .find(|l| l.contains("event=\"config_reload_succeeded\""))
        .cloned()
        .unwrap_or_default();
    let unchanged = refresh.contains(" added_devices=0")
        && refresh.contains(" removed_devices=0")
        && changes_after == changes_before
        && reload.contains(" changed_section_count=0");

    // 4. Delays of value changes to a subscribed client, and what the streams cost.
    let delays: Arc<Mutex<Vec<f64>>> = Arc::default();
    let recording = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sink, on) = (delays.clone(), recording.clone());
    let callback = DataChangeCallback::new(move |value: DataValue, _| {
        if !on.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Some(at) = value.source_timestamp {
            let late_ms = (DateTime::now().ticks() - at.ticks()) as f64 / 10_000.0;
            sink.lock().unwrap().push(late_ms);
        }
    });
    let subscription = session
        .create_subscription(Duration::from_millis(250), 240, 20, 0, 0, true, callback)
        .await
        .expect("subscription");
    common::monitor_values(&session, subscription, &watched).await;
    // The first notification of each item is its current value, not a change: skipped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    recording.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(LATENCY_WINDOW).await;
    recording.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut delays = std::mem::take(&mut *delays.lock().unwrap());
    delays.sort_by(|a, b| a.total_cmp(b));
    let (files, rss) = (open_files(pid), rss_kib(pid).unwrap_or(0) as f64 / 1024.0);
    let planned = log_lines(&log_dir)
        .into_iter()
        .rfind(|l| l.contains("event=\"event_streams_planned\""))
        .unwrap_or_default();

    println!(
        "1. every device's variables present: {present:.1} s after spawn (target <= 10 s); the \
         first discovery listed {listed} devices in {first_ms:.0} ms ({calls} calls); {nodes} \
         gateway nodes browsed"
    );
    println!(
        "2. all {} watched variables Good: {all_good:.1} s after spawn (target <= 20 s)",
        watched.len()
    );
    println!(
        "3. a refresh finding nothing new: {refresh_ms:.0} ms (target <= 2,000 ms); address \
         space unchanged: {unchanged}"
    );
    println!(
        "4. {} value changes in {} s: late by p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} \
         ms (target p95 <= 1,000 ms; event streams {}; publishing interval 250 ms)",
        delays.len(),
        LATENCY_WINDOW.as_secs(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.95),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or(f64::NAN),
        if streams { "on" } else { "off" }
    );
    println!(
        "   streams: {} streamed, {} polled only, on {} connections; gateway: {files} open \
         files, {rss:.1} MiB resident",
        log_field(&planned, "streamed").unwrap_or(0.0),
        log_field(&planned, "polled_only").unwrap_or(0.0),
        log_field(&planned, "connections").unwrap_or(0.0),
    );
    for (event, (n, first)) in log_problems(&lines) {
        println!("log: {n} x {event}: {first}");
    }
    drop(gateway);
    drop(sim);
}
