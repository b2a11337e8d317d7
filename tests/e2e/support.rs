//! Shared test fixtures: a config file in a temp dir, and the real binary with its log lines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_opcgw");

/// A minimal valid configuration (secrets come from the environment in [`gateway_env`]).
pub const MINIMAL_CONFIG: &str = r#"
[chirpstack]
server_address = "http://127.0.0.1:1"
tenant_id = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
polling_frequency = 10

[opcua]
host_ip_address = "127.0.0.1"
host_port = 4840

[[application]]
application_name = "Water"
application_id = "app-1"

  [[application.device]]
  device_name = "Tank"
  device_id = "0000000000000001"

    [[application.device.read_metric]]
    metric_name = "Level"
    chirpstack_metric_name = "level_cm"
    metric_type = "Float"
"#;

pub const TEST_TOKEN: &str = "test-chirpstack-token-7f3a";
pub const TEST_PASSWORD: &str = "test-opcua-password-91bc";

pub fn gateway_env() -> Vec<(&'static str, String)> {
    vec![
        ("OPCGW_CHIRPSTACK__API_TOKEN", TEST_TOKEN.into()),
        ("OPCGW_OPCUA__USER_PASSWORD", TEST_PASSWORD.into()),
        ("OPCGW_LOG_LEVEL", "info".into()),
    ]
}

/// A working directory with a config file.
pub struct Workdir {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    ports: [u16; 4],
}

impl Workdir {
    /// A temp dir with `config` (its OPC UA ports 4840 and 4841, its web port 8080 and its
    /// metrics port 9464 mapped to free ports) and a copy of the test key pair in `./pki`.
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        install_pki(&dir.path().join("pki"));
        let workdir = Self {
            dir,
            config: path,
            ports: [free_port(), free_port(), free_port(), free_port()],
        };
        std::fs::write(&workdir.config, workdir.localize(config)).expect("write config");
        workdir
    }

    /// The fixtures' OPC UA and web ports replaced by this workdir's free ports.
    pub fn localize(&self, config: &str) -> String {
        config
            .replace("\nport = 8080", &format!("\nport = {}", self.ports[2]))
            .replace("\nport = 9464", &format!("\nport = {}", self.ports[3]))
            .replace(":8080\"", &format!(":{}\"", self.ports[2]))
            .replace(
                "host_port = 4840",
                &format!("host_port = {}", self.ports[0]),
            )
            .replace(
                "host_port = 4841",
                &format!("host_port = {}", self.ports[1]),
            )
    }

    /// The OPC UA port that `host_port = 4840` became.
    pub fn opcua_port(&self) -> u16 {
        self.ports[0]
    }

    /// The metrics port that `port = 9464` became.
    pub fn metrics_port(&self) -> u16 {
        self.ports[3]
    }

    /// The web console port that `port = 8080` became.
    pub fn web_port(&self) -> u16 {
        self.ports[2]
    }

    pub fn write_config(&self, config: &str) {
        // Atomic replace, as an editor or config tool would.
        let tmp = self.dir.path().join("config.toml.tmp");
        std::fs::write(&tmp, self.localize(config)).expect("write config");
        std::fs::rename(&tmp, &self.config).expect("replace config");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `opcgw` with `args` in `dir` to completion.
pub fn run_to_end(
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> (ExitStatus, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run opcgw");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

/// The daemon running in the background, its stderr collected line by line.
pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Reads stderr until the pipe closes, which happens when the process exits.
    reader: std::thread::JoinHandle<()>,
}

impl Daemon {
    pub fn start(workdir: &Workdir, extra_env: &[(&str, String)]) -> Self {
        Self::start_with(workdir, "run", extra_env)
    }

    /// Starts `opcgw <command> --config <workdir config>`.
    pub fn start_with(workdir: &Workdir, command: &str, extra_env: &[(&str, String)]) -> Self {
        Self::start_with_args(workdir, command, &[], extra_env)
    }

    /// `opcgw demo` on a copy of config/demo.toml (its ports mapped to free ones), its
    /// simulator moved to a free port so that it cannot collide with a running demo.
    pub fn start_demo(extra_env: &[(&str, String)]) -> (Workdir, Self) {
        let demo =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml"))
                .expect("config/demo.toml");
        let workdir = Workdir::new(&demo);
        let mut env = vec![(
            "OPCGW_CHIRPSTACK__SERVER_ADDRESS",
            format!("http://127.0.0.1:{}", free_port()),
        )];
        env.extend(extra_env.iter().cloned());
        let daemon = Self::start_with(&workdir, "demo", &env);
        (workdir, daemon)
    }

    /// Starts `opcgw <command> --config <workdir config> <args...>`.
    pub fn start_with_args(
        workdir: &Workdir,
        command: &str,
        args: &[&str],
        extra_env: &[(&str, String)],
    ) -> Self {
        Self::spawn(workdir, command, args, extra_env, None)
    }

    /// Starts `opcgw run` with the open-file limit (RLIMIT_NOFILE) `soft`/`hard`, as
    /// systemd's `LimitNOFILE=` or `ulimit -n` would set it.
    pub fn start_with_open_file_limit(workdir: &Workdir, soft: u64, hard: u64) -> Self {
        Self::spawn(workdir, "run", &[], &[], Some((soft, hard)))
    }

    fn spawn(
        workdir: &Workdir,
        command: &str,
        args: &[&str],
        extra_env: &[(&str, String)],
        open_file_limit: Option<(u64, u64)>,
    ) -> Self {
        use std::os::unix::process::CommandExt;
        let mut env = gateway_env();
        env.extend(extra_env.iter().cloned());
        let mut command_line = Command::new(BIN);
        command_line
            .args([command, "--config"])
            .arg(&workdir.config)
            .args(args)
            .current_dir(workdir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((soft, hard)) = open_file_limit {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command_line.pre_exec(move || {
                    nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        soft,
                        hard,
                    )
                    .map_err(std::io::Error::from)
                });
            }
        }
        let mut child = command_line.spawn().expect("spawn opcgw");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            reader,
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("send signal");
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Lines carrying `event="<name>"`.
    pub fn events(&self, name: &str) -> Vec<String> {
        let needle = format!("event=\"{name}\"");
        self.lines()
            .into_iter()
            .filter(|l| l.contains(&needle))
            .collect()
    }

    /// Waits until at least `count` lines carry `event="<name>"`; returns them.
    pub fn wait_for_events(&self, name: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.events(name);
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} x {name}; log:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit within `timeout` (killing it otherwise, and failing).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Every line is in once the reader has seen the end of the pipe.
                while !self.reader.is_finished() {
                    assert!(
                        Instant::now() < deadline,
                        "stderr still open after opcgw exited"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "opcgw did not exit within {timeout:?}; log:\n{}",
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `actor="..."` value of a log line.
pub fn actor_of(line: &str) -> Option<String> {
    let start = line.find("actor=\"")? + 7;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}

/// Options for an in-process tree whose OPC UA actor serves a listener bound here, on a port of
/// its own (written into `config`), instead of binding `opcua.host_port`: parallel trees never
/// compete for a port.
pub fn tree_options(
    config: &mut opcgw::config::AppConfig,
) -> opcgw_actors::tree::gateway::TreeOptions {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an OPC UA listener");
    config.opcua.host_port = listener.local_addr().expect("listener address").port();
    opcgw_actors::tree::gateway::TreeOptions {
        opcua_listener: Some(Arc::new(listener)),
        ..Default::default()
    }
}

/// Ports handed to real `opcgw` processes, which must be named in their configuration (there
/// is no listener to pass to another process): below Linux's ephemeral range (32768-60999), so
/// that no `bind(127.0.0.1:0)` of an in-process server and no outgoing connection of a test
/// can take one, and never the same port twice in this test binary.
const CONFIG_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port of 127.0.0.1 for a configuration: free when checked, and handed out only once per
/// test run (tests running in parallel never get the same port). The range starts at a random
/// offset so that test runs of other checkouts on the same machine rarely meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let span = u32::from(CONFIG_PORTS.end - CONFIG_PORTS.start);
    let next = NEXT.get_or_init(|| AtomicU32::new(rand::random::<u32>() % span));
    for _ in 0..span {
        let offset = next.fetch_add(1, Ordering::Relaxed) % span;
        let port = CONFIG_PORTS.start + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {CONFIG_PORTS:?}");
}

/// The application URI of the gateway in every test configuration (the default).
pub const SERVER_URI: &str = "urn:chirpstack:opcua:gateway";
pub const CLIENT_URI: &str = "urn:opcgw:test-client";

/// Key pairs generated once (and kept between runs under the target dir): the gateway's and
/// the test client's. Generating a 2048-bit key costs up to a second.
fn generated_pki(name: &str, application_uri: &str) -> PathBuf {
    use ua::crypto::{CertificateStore, X509Data};
    use ua::types::{ApplicationDescription, ApplicationType, LocalizedText, UAString};
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let store = CertificateStore::new(&dir);
    if !dir.join("own/cert.der").exists() || !dir.join("private/private.pem").exists() {
        let description = ApplicationDescription {
            application_uri: UAString::from(application_uri),
            product_uri: UAString::from(application_uri),
            application_name: LocalizedText::new("", name),
            application_type: ApplicationType::Server,
            gateway_server_uri: UAString::null(),
            discovery_profile_uri: UAString::null(),
            discovery_urls: None,
        };
        let data = X509Data::from((
            description,
            Some(vec!["127.0.0.1".to_string(), "localhost".to_string()]),
        ));
        store
            .create_and_store_application_instance_cert(&data, true)
            .expect("generate a test key pair");
    }
    set_mode(&dir.join("private/private.pem"), 0o600);
    dir
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The gateway's test key pair (cert in `own/cert.der`, key in `private/private.pem`).
pub fn server_pki() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| generated_pki("test-pki-server", SERVER_URI))
}

/// The test client's PKI directory.
pub fn client_pki() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| generated_pki("test-pki-client", CLIENT_URI))
}

/// Copies the gateway's test key pair into `dest` (a PKI dir of the default layout).
pub fn install_pki(dest: &Path) {
    let source = server_pki();
    for sub in ["own", "private", "trusted", "rejected"] {
        std::fs::create_dir_all(dest.join(sub)).expect("pki dir");
    }
    set_mode(&dest.join("private"), 0o700);
    std::fs::copy(source.join("own/cert.der"), dest.join("own/cert.der")).expect("copy cert");
    std::fs::copy(
        source.join("private/private.pem"),
        dest.join("private/private.pem"),
    )
    .expect("copy key");
    set_mode(&dest.join("private/private.pem"), 0o600);
}

/// Parallel callers never get the same port, and every port is outside the ephemeral range.
#[test]
fn config_ports_are_handed_out_once_and_outside_the_ephemeral_range() {
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| (0..50).map(|_| free_port()).collect::<Vec<u16>>()))
        .collect();
    let ports: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
    assert!(ports.iter().all(|p| CONFIG_PORTS.contains(p)), "{ports:?}");
}

/// A multi-threaded runtime for a test's clients of the real binary (the OPC UA client's tasks
/// run on its workers).
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the test's clients")
}
