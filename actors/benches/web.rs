//! Web console benchmark: the gateway tree serving 1,000 devices x 10 metrics from the
//! simulator (same process), measured with raw HTTP/1.1 over loopback TCP and Basic auth.
//! Prints:
//! - `GET /api/devices` with every metric holding a value, keep-alive (target p99 <= 50 ms),
//!   idle and again while the gateway ingests ~10,000 samples/s,
//! - uplink at ChirpStack -> SSE `value` event at a client (target p99 <= 100 ms),
//! - 7 days at 10 s (60,480 rows) downsampled to 1,000 points through the history route
//!   (target <= 50 ms),
//! - process CPU and events per client per second with 50 event streams open while the
//!   simulator produces ~10,000 samples/s (and the same load without streams, for comparison).
//!
//! Run with `make bench`; figures go to docs/performance.md.

mod common;

use common::http::{basic_header, open_events, KeepAlive};
use common::{free_port, percentile};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use opcgw::chirpstack::simulator::{Simulator, SimulatorConfig};
use opcgw::config::{AppConfig, MetricType, Secret};
use opcgw::model::{Sample, SampleOrigin, Timestamp, Value};
use opcgw::storage::Store;
use opcgw::web::views::WebTime;
use opcgw_actors::tree::gateway::{Tree, TreeOptions};

const TOKEN: &str = "bench-token-6a1f3e";
const PASSWORD: &str = "bench-pw-5c8e1d7a";
const HISTORY_ROWS: i64 = 60_480;
const STREAM_CLIENTS: usize = 50;
const LOAD_WINDOW: Duration = Duration::from_secs(10);

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name}: median {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs)",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    );
}

fn cpu_seconds() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(usage.user_time()) + t(usage.system_time())
}

/// Emits `per_second` uplinks per second (10 metrics each: 1,000 uplinks/s are 10,000
/// samples/s) round the devices, spread over 10 ms ticks, until `stop`; counts the uplinks
/// emitted. The rate may change while it runs.
fn start_load(
    sim: Arc<opcgw::chirpstack::simulator::SimulatorHandle>,
    devices: Vec<String>,
    per_second: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    emitted: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut tick = 0u64;
        let mut next_device = 0usize;
        let mut owed = 0.0f64;
        while !stop.load(Ordering::Relaxed) {
            owed += per_second.load(Ordering::Relaxed) as f64 / 100.0;
            while owed >= 1.0 {
                sim.emit_uplink_now(&devices[next_device]);
                next_device = (next_device + 1) % devices.len();
                emitted.fetch_add(1, Ordering::Relaxed);
                owed -= 1.0;
            }
            tick += 1;
            let next = started + Duration::from_millis(10 * tick);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
}

/// `ingest.samples_per_second` from `GET /api/status` (the gateway's last 10 s).
fn ingest_rate(client: &mut KeepAlive) -> f64 {
    let (status, body) = client.get("/api/status");
    assert_eq!(status, 200, "GET /api/status");
    let status: serde_json::Value = serde_json::from_slice(&body).expect("status JSON");
    status["ingest"]["samples_per_second"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// The gateway and the simulator run on a runtime of their own, as in the `opcgw` binary (one
/// worker per core); the bench's blocking HTTP clients run on the main thread and their own
/// threads, never on a runtime worker, so a client waiting for an answer does not take a worker
/// away from the gateway serving it.
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Arc::new(
        runtime
            .block_on(Simulator::start(
                SimulatorConfig {
                    api_token: TOKEN.into(),
                    applications: 10,
                    devices_per_application: 100,
                    metrics_per_device: 10,
                    // No scheduled uplinks: the bench emits every one it measures.
                    uplink_interval: Duration::ZERO,
                    ..SimulatorConfig::default()
                },
                "127.0.0.1:0".parse().unwrap(),
            ))
            .expect("simulator"),
    );
    let web_port = free_port();
    let mut config = AppConfig::default();
    config.chirpstack.server_address = sim.url();
    config.chirpstack.api_token = Secret::new(TOKEN);
    config.chirpstack.tenant_id = sim.world().tenant_id.clone();
    config.chirpstack.polling_frequency = 10;
    config.applications = sim.world().to_config();
    for device in config.applications.iter_mut().flat_map(|a| &mut a.devices) {
        device.metrics.retain(|m| m.metric_name != "battery_mv");
        device.metrics.truncate(10);
    }
    config.storage.database_path = dir.path().join("opcgw.redb");
    config.storage.retention_days = 30;
    config.control.enabled = false;
    config.opcua.host_ip_address = "127.0.0.1".into();
    config.opcua.host_port = free_port();
    config.opcua.pki_dir = dir.path().join("pki");
    config.opcua.create_sample_keypair = true;
    config.opcua.user_password = Secret::new(PASSWORD);
    config.web.enabled = true;
    config.web.bind_address = "127.0.0.1".into();
    config.web.port = web_port;
    let authorization = basic_header(&config.opcua.user_name, PASSWORD);
    let metrics: usize = config
        .applications
        .iter()
        .flat_map(|a| &a.devices)
        .map(|d| d.metrics.len())
        .sum();
    println!(
        "world: {} devices, {metrics} metrics",
        sim.world().device_count()
    );

    // Seven days at 10 s of one Int metric, stored before the gateway starts.
    let history_device = config.applications[0].devices[0].clone();
    let history_metric = history_device
        .metrics
        .iter()
        .find(|m| m.metric_type == MetricType::Int)
        .expect("an Int metric")
        .metric_name
        .clone();
    let history_start = Timestamp::now().saturating_sub(Duration::from_secs(8 * 86_400));
    {
        let mut store = Store::open(&config.storage.database_path).expect("store");
        let rows: Vec<Sample> = (0..HISTORY_ROWS)
            .map(|i| Sample {
                device_id: history_device.device_id.as_str().into(),
                metric: history_metric.as_str().into(),
                value: Value::Int(i),
                source_time: Timestamp(history_start.0 + i * 10_000_000),
                received_time: Timestamp(history_start.0 + i * 10_000_000),
                origin: SampleOrigin::Uplink,
            })
            .collect();
        for chunk in rows.chunks(10_000) {
            store.append(chunk).expect("append");
        }
    }

    let tree = runtime
        .block_on(Tree::start(
            Arc::new(config.clone()),
            TreeOptions::default(),
        ))
        .expect("tree");
    let devices: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();

    // Values for every metric of every device: one uplink each, then wait until the console
    // shows them all.
    while sim.open_streams() < sim.world().device_count() {
        std::thread::sleep(Duration::from_millis(100));
    }
    for device in &devices {
        sim.emit_uplink_now(device);
    }
    let mut client = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", web_port)).is_ok() {
                break KeepAlive::connect(web_port, &authorization);
            }
            assert!(Instant::now() < deadline, "the console does not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (waiting, body_bytes) = loop {
        let (status, body) = client.get("/api/devices");
        assert_eq!(status, 200, "GET /api/devices");
        let devices: serde_json::Value = serde_json::from_slice(&body).expect("devices JSON");
        let values: Vec<&serde_json::Value> = devices["applications"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["devices"].as_array().into_iter().flatten())
            .flat_map(|d| d["metrics"].as_array().into_iter().flatten())
            .map(|m| &m["value"])
            .collect();
        assert_eq!(values.len(), metrics, "every metric listed");
        let waiting = values.iter().filter(|v| v.is_null()).count();
        if waiting == 0 || Instant::now() > deadline {
            break (waiting, body.len());
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(waiting, 0, "metrics still without a value after 60 s");

    // 1. GET /api/devices, every metric holding a value, one keep-alive connection.
    let mut times = Vec::new();
    for run in 0..105 {
        let started = Instant::now();
        let (status, body) = client.get("/api/devices");
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!((status, body.is_empty()), (200, false));
        if run >= 5 {
            times.push(elapsed);
        }
    }
    println!("devices: {metrics} metrics with a value, answer {body_bytes} bytes");
    summary(
        "GET /api/devices, 1,000 devices x 10 metrics (keep-alive, Basic)",
        times,
    );

    // 2. Uplink at the simulator -> SSE `value` event.
    let (arrivals_tx, arrivals) = mpsc::channel::<(Timestamp, serde_json::Value)>();
    open_events(
        web_port,
        &authorization,
        Arc::default(),
        move |name, data| {
            let at = Timestamp::now();
            if name != "value" {
                return true;
            }
            let data = serde_json::from_str(data).expect("event data is JSON");
            arrivals_tx.send((at, data)).is_ok()
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut latencies = Vec::new();
    for device in devices.iter().take(100) {
        while arrivals.try_recv().is_ok() {}
        let emitted = Timestamp::now();
        // The event's source time is the uplink's, written to the millisecond.
        let emitted_text = WebTime(emitted).text();
        sim.emit_uplink_now(device);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, data) = arrivals
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no value event for {device}"));
            if data["device_id"] == device.as_str()
                && data["timestamp"]
                    .as_str()
                    .is_some_and(|t| t >= emitted_text.as_str())
            {
                latencies.push((at.0 - emitted.0) as f64 / 1e3);
                break;
            }
        }
    }
    summary(
        "uplink at ChirpStack -> SSE value event (first metric of the uplink)",
        latencies,
    );

    // 3. Seven days at 10 s downsampled to 1,000 points.
    let from = history_start.as_micros() / 1_000_000;
    let to = from + HISTORY_ROWS * 10;
    let path = format!(
        "/api/devices/{}/metrics/{history_metric}/history?from={from}&to={to}&max_points=1000",
        history_device.device_id
    );
    let mut times = Vec::new();
    let mut points = 0;
    for run in 0..45 {
        let started = Instant::now();
        let (status, body) = client.get(&path);
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("history JSON");
        assert_eq!(answer["downsampled"], true, "downsampled");
        let buckets = answer["points"].as_array().expect("points");
        let rows: i64 = buckets.iter().filter_map(|p| p["n"].as_i64()).sum();
        assert_eq!(rows, HISTORY_ROWS, "every row in a bucket");
        points = buckets.len();
        if run >= 5 {
            times.push(elapsed);
        }
    }
    println!("history: {HISTORY_ROWS} rows -> {points} points");
    summary(
        "GET history, 7 days at 10 s (60,480 rows) downsampled to 1,000 points",
        times,
    );

    // 4. ~10,000 samples/s, without and then with 50 event streams open.
    let stop = Arc::new(AtomicBool::new(false));
    let emitted = Arc::new(AtomicU64::new(0));
    let per_second = Arc::new(AtomicU64::new(devices.len() as u64));
    let load = start_load(
        sim.clone(),
        devices.clone(),
        per_second.clone(),
        stop.clone(),
        emitted.clone(),
    );
    std::thread::sleep(Duration::from_secs(3));
    let clients_cpu: Vec<Arc<AtomicU64>> = (0..STREAM_CLIENTS).map(|_| Arc::default()).collect();
    let clients_cpu_seconds = || {
        clients_cpu
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>() as f64
            / 1e6
    };
    let window = |label: &str, counts: &[(Arc<AtomicU64>, Arc<AtomicU64>)]| {
        let uplinks = emitted.load(Ordering::Relaxed);
        let client_cpu = clients_cpu_seconds();
        let events: Vec<u64> = counts
            .iter()
            .map(|(v, _)| v.load(Ordering::Relaxed))
            .collect();
        let cpu = cpu_seconds();
        let started = Instant::now();
        std::thread::sleep(LOAD_WINDOW);
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let client_cpu = clients_cpu_seconds() - client_cpu;
        let samples = (emitted.load(Ordering::Relaxed) - uplinks) as f64 * 10.0 / wall;
        println!(
            "{label}: {samples:.0} samples/s emitted, process CPU {:.0} % of one core \
             ({:.0} % in the bench's own stream readers, {:.0} % the rest: gateway, \
             simulator, load generator)",
            cpu / wall * 100.0,
            client_cpu / wall * 100.0,
            (cpu - client_cpu) / wall * 100.0
        );
        let mut rates: Vec<f64> = counts
            .iter()
            .zip(events)
            .map(|((v, _), before)| (v.load(Ordering::Relaxed) - before) as f64 / wall)
            .collect();
        rates.sort_by(|a, b| a.total_cmp(b));
        rates
    };
    // The device list again while the gateway ingests ~10,000 samples/s (every answer is
    // read while storage commits the stream's batches).
    let mut times = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        let (status, body) = client.get("/api/devices");
        times.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!((status, body.is_empty()), (200, false));
    }
    summary(
        "GET /api/devices under ~10,000 samples/s of ingest (keep-alive, Basic)",
        times,
    );
    let idle = window("load, no event stream", &[]);
    assert!(idle.is_empty());
    let missed = Arc::new(AtomicU64::new(0));
    let counts: Vec<(Arc<AtomicU64>, Arc<AtomicU64>)> = clients_cpu
        .iter()
        .map(|cpu| {
            let values = Arc::new(AtomicU64::new(0));
            let lagged = Arc::new(AtomicU64::new(0));
            let (v, l, m) = (values.clone(), lagged.clone(), missed.clone());
            open_events(web_port, &authorization, cpu.clone(), move |name, data| {
                match name {
                    "value" => {
                        v.fetch_add(1, Ordering::Relaxed);
                    }
                    "lagged" => {
                        l.fetch_add(1, Ordering::Relaxed);
                        let n = serde_json::from_str::<serde_json::Value>(data)
                            .ok()
                            .and_then(|d| d["missed"].as_u64())
                            .unwrap_or(0);
                        m.fetch_add(n, Ordering::Relaxed);
                    }
                    _ => {}
                }
                true
            });
            (values, lagged)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    // The same 50 streams at 10,000 samples/s, then at a fifth of it.
    for (label, uplinks_per_second) in [
        ("load, 50 event streams", devices.len() as u64),
        ("load / 5, 50 event streams", devices.len() as u64 / 5),
    ] {
        per_second.store(uplinks_per_second, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(2));
        let lagged_before: Vec<u64> = counts
            .iter()
            .map(|(_, l)| l.load(Ordering::Relaxed))
            .collect();
        let missed_before = missed.load(Ordering::Relaxed);
        let rates = window(label, &counts);
        let lagging = counts
            .iter()
            .zip(&lagged_before)
            .filter(|((_, l), before)| l.load(Ordering::Relaxed) > **before)
            .count();
        let lagged: u64 = counts
            .iter()
            .zip(&lagged_before)
            .map(|((_, l), before)| l.load(Ordering::Relaxed) - before)
            .sum();
        println!(
            "  value events per client per second: median {:.0}, min {:.0}, max {:.0} ({} clients); \
             `lagged` events: {lagged} at {lagging} clients, {} events missed in all",
            percentile(&rates, 0.5),
            rates[0],
            rates[rates.len() - 1],
            rates.len(),
            missed.load(Ordering::Relaxed) - missed_before
        );
        // A fresh connection: the console closes one idle for longer than the header timeout.
        println!(
            "  gateway ingest rate (GET /api/status, last 10 s): {:.0} samples/s",
            ingest_rate(&mut KeepAlive::connect(web_port, &authorization))
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();

    runtime.block_on(tree.handle.shutdown(Duration::from_secs(5)));
}
