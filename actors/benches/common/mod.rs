//! What the benchmarks share: percentiles, free ports, and an OPC UA client session.

#![allow(dead_code)] // each bench uses part of it

pub mod http;

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ua::client::{ClientBuilder, IdentityToken, Session};
use ua::crypto::SecurityPolicy;
use ua::types::{
    BrowseDescription, BrowseDirection, BrowseResultMask, MessageSecurityMode,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, ObjectId,
    ReadValueId, ReferenceTypeId, TimestampsToReturn,
};

/// A child process killed and reaped when the bench lets go of it (also on a panic).
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `[[application]]` blocks `opcgw simulate --print-config <world>` prints: the text and
/// the parsed applications.
pub fn simulator_world<S: AsRef<std::ffi::OsStr>>(
    bin: &str,
    world: impl IntoIterator<Item = S>,
) -> (String, Vec<opcgw::config::ApplicationConfig>) {
    let output = std::process::Command::new(bin)
        .args(["simulate", "--print-config"])
        .args(world)
        .output()
        .expect("print-config");
    #[derive(serde::Deserialize)]
    struct Blocks {
        application: Vec<opcgw::config::ApplicationConfig>,
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let blocks: Blocks = toml::from_str(&text).expect("simulator config");
    (text, blocks.application)
}

/// The bench's working directory: a temporary one, removed when the returned guard drops,
/// unless `OPCGW_BENCH_KEEP` is set (then kept and printed, for a closer look at its database,
/// configuration and logs).
pub fn bench_dir() -> (Option<tempfile::TempDir>, std::path::PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    if std::env::var_os("OPCGW_BENCH_KEEP").is_some() {
        let kept = temp.keep();
        println!("keeping {}", kept.display());
        (None, kept)
    } else {
        let path = temp.path().to_path_buf();
        (Some(temp), path)
    }
}

/// `opcgw simulate` on 127.0.0.1:`port`, serving `world` (its command-line arguments),
/// quiet.
pub fn spawn_simulator(bin: &str, port: u16, token: &str, world: &str) -> Killed {
    Killed(
        std::process::Command::new(bin)
            .args(["simulate", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--token", token])
            .args(world.split_whitespace())
            .env("OPCGW_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("simulator"),
    )
}

/// The index of the gateway's namespace in `session`.
pub async fn gateway_namespace(session: &Session) -> u16 {
    let uri =
        opcgw::opcua::nodes::namespace_uri(&opcgw::config::OpcUaConfig::default().application_uri);
    session
        .get_namespace_index(&uri)
        .await
        .expect("gateway namespace")
}

/// A Value read of `metric` on every device of `apps`.
pub fn value_reads(
    ns: u16,
    apps: &[opcgw::config::ApplicationConfig],
    metric: &str,
) -> Vec<ReadValueId> {
    (apps.iter().flat_map(|a| &a.devices))
        .map(|d| ReadValueId {
            node_id: NodeId::new(ns, opcgw::naming::metric_node_id(&d.device_id, metric)),
            attribute_id: ua::types::AttributeId::Value as u32,
            ..Default::default()
        })
        .collect()
}

/// The `p` percentile (0..=1) of sorted figures.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// An OPC UA session on the None endpoint as `opcua-user`, retried while the server starts,
/// with limits large enough for 10,000-value reads and week-long history pages. The event
/// loop runs until the returned handle is dropped or aborted.
pub async fn opcua_session(
    port: u16,
    password: &str,
    pki: &Path,
    max_message_size: usize,
    max_chunk_count: usize,
) -> (Arc<Session>, tokio::task::JoinHandle<ua::types::StatusCode>) {
    let mut client = ClientBuilder::new()
        .application_name("opcgw-bench-client")
        .application_uri("urn:opcgw:bench-client")
        .pki_dir(pki)
        .create_sample_keypair(true)
        .trust_server_certs(true)
        .session_retry_limit(3)
        .max_message_size(max_message_size)
        .max_chunk_count(max_chunk_count)
        .max_array_length(200_000)
        .client()
        .expect("client");
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    for _ in 0..150 {
        if let Ok((session, event_loop)) = client
            .connect_to_matching_endpoint(
                (
                    url.as_str(),
                    SecurityPolicy::None.to_uri(),
                    MessageSecurityMode::None,
                ),
                IdentityToken::new_user_name("opcua-user", password),
            )
            .await
        {
            let event_loop = event_loop.spawn();
            session.wait_for_connection().await;
            return (session, event_loop);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot connect to the gateway on port {port}");
}

/// The resident set (VmRSS) of process `pid` in KiB, `None` once it has exited.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The fields of `/proc/<pid>/stat` after the parenthesised command name (which may hold
/// spaces): the first is field 3 (the state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU time (user + system) process `pid` has used so far, in seconds (`/proc/<pid>/stat`
/// fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let fields = stat_fields(pid)?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / per_second.max(1) as f64)
}

/// CPU time of the whole machine so far, in seconds summed over its cores: (busy, total),
/// from the first line of `/proc/stat` (busy = total less idle and iowait).
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((
        (total - idle) as f64 / per_second,
        total as f64 / per_second,
    ))
}

/// Counts the nodes of namespace `ns` below Objects the way a client building its tag list does:
/// Browse (hierarchical references, forward) 1,000 nodes per call (the server's
/// max_nodes_per_browse), up to 1,000 references per node, BrowseNext while continuation
/// points come back, then the same one level down.
pub async fn browse_count(session: &Session, ns: u16) -> usize {
    let describe = |node_id: NodeId| BrowseDescription {
        node_id,
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: 0,
        result_mask: BrowseResultMask::All as u32,
    };
    // The client's own bookkeeping should cost little beside the browse it measures (a set of
    // 160,000 copied ids took a third of its time): each id is moved on to the next level's
    // requests and only its 64-bit hash is kept to find a node reached twice (two of 160,000
    // ids share a hash with a probability below 1e-9).
    let hasher = hashbrown::DefaultHashBuilder::default();
    let mut seen = hashbrown::HashSet::<u64>::new();
    let mut level = vec![NodeId::from(ObjectId::ObjectsFolder)];
    while !level.is_empty() {
        let mut below = Vec::new();
        let mut rest = level.into_iter().peekable();
        while rest.peek().is_some() {
            let nodes: Vec<BrowseDescription> = rest.by_ref().take(1_000).map(describe).collect();
            let mut results = session.browse(&nodes, 1_000, None).await.expect("browse");
            loop {
                let mut points = Vec::new();
                for result in results {
                    assert!(
                        result.status_code.is_good(),
                        "browse: {}",
                        result.status_code
                    );
                    for reference in result.references.unwrap_or_default() {
                        let id = reference.node_id.node_id;
                        if id.namespace == ns && seen.insert(hasher.hash_one(&id)) {
                            below.push(id);
                        }
                    }
                    if !result.continuation_point.is_null_or_empty() {
                        points.push(result.continuation_point);
                    }
                }
                if points.is_empty() {
                    break;
                }
                results = session
                    .browse_next(false, &points)
                    .await
                    .expect("browse next");
            }
        }
        level = below;
    }
    seen.len()
}

/// Samples the VmRSS of `pid` every second, stamped with the time since `since`, until the
/// returned flag is set; joining the thread gives the samples.
pub fn sample_rss(
    pid: u32,
    since: std::time::Instant,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<Vec<(Duration, u64)>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            samples.extend(rss_kib(pid).map(|kib| (since.elapsed(), kib)));
            std::thread::sleep(Duration::from_secs(1));
        }
        samples
    });
    (stop, sampler)
}

/// The lines of every file in a log directory (the active file and the rotated ones).
pub fn log_lines(dir: &Path) -> Vec<String> {
    let files = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let texts = files.map(|f| std::fs::read_to_string(f.path()).unwrap_or_default());
    texts
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// The number after ` key=` in a gateway log line (`duration_ms=238` -> 238).
pub fn log_field(line: &str, key: &str) -> Option<f64> {
    let rest = line.split_once(&format!(" {key}="))?.1;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The WARN and ERROR lines of a gateway log by `event`: how many, and the first one.
pub fn log_problems(lines: &[String]) -> BTreeMap<String, (usize, String)> {
    let mut by_event: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for line in lines
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
    {
        let event = log_event(line).unwrap_or_else(|| "-".to_string());
        let entry = by_event.entry(event);
        entry.or_insert((0, line.clone())).0 += 1;
    }
    by_event
}

/// The `event="..."` of a gateway log line.
pub fn log_event(line: &str) -> Option<String> {
    let rest = line.split_once("event=\"")?.1;
    Some(rest.split('"').next()?.to_string())
}

/// What differs between the benches' gateway configurations.
pub struct GatewayToml<'a> {
    pub sim_port: u16,
    pub opcua_port: u16,
    /// The key pair's directory.
    pub pki: &'a Path,
    pub database: &'a Path,
    /// `None`: the default log directory.
    pub log_dir: Option<&'a Path>,
    pub level: &'a str,
    /// More lines of `[chirpstack]` (ending in a newline), e.g. a stream pool size.
    pub chirpstack_extra: &'a str,
}

/// The gateway configuration of a bench without its applications: the simulator upstream
/// (polled every 10 s), OPC UA on 127.0.0.1 with room for large subscriptions and reads, no
/// control socket; the caller appends the `[[application]]` blocks.
pub fn gateway_toml(g: &GatewayToml) -> String {
    let log_dir = g
        .log_dir
        .map(|dir| format!("dir = \"{}\"\n", dir.display()))
        .unwrap_or_default();
    format!(
        r#"[chirpstack]
server_address = "http://127.0.0.1:{sim_port}"
tenant_id = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
polling_frequency = 10
{chirpstack_extra}
[opcua]
host_ip_address = "127.0.0.1"
host_port = {opcua_port}
pki_dir = "{pki}"
create_sample_keypair = true
max_monitored_items_per_sub = 20000
max_message_size = 16777216
max_chunk_count = 512

[storage]
database_path = "{database}"

[control]
enabled = false

[logging]
{log_dir}level = "{level}"

"#,
        sim_port = g.sim_port,
        chirpstack_extra = g.chirpstack_extra,
        opcua_port = g.opcua_port,
        pki = g.pki.display(),
        database = g.database.display(),
        level = g.level,
    )
}

/// Monitors every value of `reads` in `subscription` (reporting, sampling as fast as the
/// server does, a queue of one), 1,000 items per call (the server's
/// `max_monitored_items_per_call`); how many items.
pub async fn monitor_values(session: &Session, subscription: u32, reads: &[ReadValueId]) -> usize {
    let items: Vec<MonitoredItemCreateRequest> = reads
        .iter()
        .map(|read| MonitoredItemCreateRequest {
            item_to_monitor: read.clone(),
            monitoring_mode: MonitoringMode::Reporting,
            requested_parameters: MonitoringParameters {
                sampling_interval: 0.0,
                queue_size: 1,
                discard_oldest: true,
                ..Default::default()
            },
        })
        .collect();
    for chunk in items.chunks(1_000) {
        session
            .create_monitored_items(subscription, TimestampsToReturn::Both, chunk.to_vec())
            .await
            .expect("monitored items");
    }
    items.len()
}

/// The `opcgw` binary a bench runs: this build's, or the one `OPCGW_BENCH_BIN` names (for
/// instance the deployed build, `cargo build --profile dist -p opcgw-actors --bin opcgw`, whose
/// code is smaller; see docs/performance.md, "Build profile").
pub fn gateway_binary() -> String {
    std::env::var("OPCGW_BENCH_BIN")
        .ok()
        .filter(|path| !path.trim().is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_opcgw").to_owned())
}

/// The command that runs the gateway: `bin` itself, or under the profiler named by
/// `OPCGW_BENCH_WRAP` (e.g. `"heaptrack -o /tmp/gw"`; the resident figures are then the
/// wrapper's, not the gateway's). It runs in a process group of its own, which
/// [`GatewayProcess`] ends as a whole.
pub fn gateway_command(bin: &str) -> std::process::Command {
    let mut command = match std::env::var("OPCGW_BENCH_WRAP") {
        Ok(wrapper) if !wrapper.trim().is_empty() => {
            let mut words = wrapper.split_whitespace();
            let mut command = std::process::Command::new(words.next().unwrap_or_default());
            command.args(words).arg(bin);
            command
        }
        _ => std::process::Command::new(bin),
    };
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
}

/// The gateway, alone or under a profiler, leading a process group of its own
/// ([`gateway_command`]). Dropped, the gateway gets SIGTERM wherever it is in the group (a
/// profiler then finishes its file as the gateway exits), then whatever is left of the group
/// SIGKILL: killing only the wrapper left the gateway running under no one.
pub struct GatewayProcess(pub std::process::Child);

impl GatewayProcess {
    /// The child and the members of its group whose executable is `opcgw`.
    fn gateways(&self) -> Vec<i32> {
        let group = self.0.id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                // Field 5, the process group.
                let in_group = stat_fields(*pid as u32)
                    .is_some_and(|fields| fields.get(2).is_some_and(|g| *g == group));
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                let child = *pid as u32 == self.0.id();
                (in_group || child) && exe.file_name().is_some_and(|name| name == "opcgw")
            })
            .collect()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        for pid in self.gateways() {
            // SAFETY: a signal to a gateway in the process group this bench spawned.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: the process group this bench spawned (its leader's id is the group's; a
        // child started without a group of its own has none, and the call finds nothing).
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With `OPCGW_BENCH_SMAPS` set, prints the memory map summary and status of `pid`.
pub fn print_smaps(pid: u32) {
    if std::env::var_os("OPCGW_BENCH_SMAPS").is_none() {
        return;
    }
    for file in ["smaps_rollup", "status"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/{file}")) {
            println!("{text}");
        }
    }
}

/// `opcgw run --config <config>` in `dir` (the program and any profiler wrapping it are in
/// `command`), with the API token and OPC UA password in the environment, output discarded.
pub fn start_gateway(
    mut command: std::process::Command,
    config: &Path,
    dir: &Path,
    token: &str,
    password: &str,
) -> GatewayProcess {
    GatewayProcess(
        command
            .args(["run", "--config"])
            .arg(config)
            .current_dir(dir)
            .env("OPCGW_CHIRPSTACK__API_TOKEN", token)
            .env("OPCGW_OPCUA__USER_PASSWORD", password)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gateway"),
    )
}
