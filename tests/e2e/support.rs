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
}

impl Workdir {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        Self { dir, config: path }
    }

    pub fn write_config(&self, config: &str) {
        // Atomic replace, as an editor or config tool would.
        let tmp = self.dir.path().join("config.toml.tmp");
        std::fs::write(&tmp, config).expect("write config");
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
}

impl Daemon {
    pub fn start(workdir: &Workdir, extra_env: &[(&str, String)]) -> Self {
        Self::start_with(workdir, "run", extra_env)
    }

    /// Starts `opcgw <command> --config <workdir config>`.
    pub fn start_with(workdir: &Workdir, command: &str, extra_env: &[(&str, String)]) -> Self {
        Self::start_with_args(workdir, command, &[], extra_env)
    }

    /// Starts `opcgw <command> --config <workdir config> <args...>`.
    pub fn start_with_args(
        workdir: &Workdir,
        command: &str,
        args: &[&str],
        extra_env: &[(&str, String)],
    ) -> Self {
        let mut env = gateway_env();
        env.extend(extra_env.iter().cloned());
        let mut child = Command::new(BIN)
            .args([command, "--config"])
            .arg(&workdir.config)
            .args(args)
            .current_dir(workdir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn opcgw");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
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
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(50));
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
