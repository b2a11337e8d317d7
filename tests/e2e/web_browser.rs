//! The operator scenario of tests/browser/console.py in headless Chromium (Debian's `chromium`
//! and `chromium-driver`, driven by Python selenium from `.venv`) against the real binary and
//! the ChirpStack simulator: sign in, a value arrives live, a 24 h chart, a command whose state
//! changes live; then issue 13's acceptance: the configuration page adds a device whose variables
//! appear in an OPC UA browse (Python asyncua) while that client's session and subscription stay
//! up, renames it (the browse name changes), reloads a file changed by hand, deletes it; the
//! certificates page trusts a rejected client certificate and that client then connects on
//! Basic256Sha256 SignAndEncrypt; sign out and be refused. Screenshots go to
//! `<target>/browser-screenshots`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::opcua_python::{python, workspace};
use crate::support::{Daemon, Workdir, TEST_PASSWORD};
use crate::web::{console_daemon, demo_config, wait_for_value, DEVICE, USER};
use crate::web_client::WebClient;

/// The simulator metric the OPC UA session subscribes to while the console edits.
const WATCHED: &str = "temperature";

fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// Where the screenshots go: next to the other test artefacts in the target directory.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("browser-screenshots")
}

/// A Python script of tests/ driven line by line: its stdout as lines, "GO"-style answers on
/// its stdin, its stderr kept for the failure message. Killed when dropped.
struct Script {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    fn start(name: &'static str, script: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(python())
            .arg(workspace().join(script))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let sink = errors.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        Self {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            stdout: seen,
            stderr: errors,
        }
    }

    /// What the script printed so far, for a failure message.
    fn transcript(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout.lock().unwrap().join("\n"),
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    /// The next stdout line; `None` once the script has closed its stdout (it ended).
    fn next_line(&self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{} printed nothing for {timeout:?}\n{}",
                self.name,
                self.transcript()
            ),
        }
    }

    /// The next line, which must be a JSON step.
    fn next_step(&self, timeout: Duration) -> Value {
        let line = self
            .next_line(timeout)
            .unwrap_or_else(|| panic!("{} ended early\n{}", self.name, self.transcript()));
        serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "{} printed {line:?}, not a JSON step\n{}",
                self.name,
                self.transcript()
            )
        })
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the script");
        stdin.flush().expect("flush");
    }

    /// Waits (bounded) for the script to exit; whether it succeeded.
    fn finish(&mut self, timeout: Duration) -> bool {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.success();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Script {
    /// Closes stdin first so that a script waiting for "GO" ends by itself (console.py then
    /// quits its browser), and kills it only if it does not.
    fn drop(&mut self) {
        if !self.finish(Duration::from_secs(15)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The OPC UA session (tests/python/config_session.py) that must outlive every edit.
struct Session {
    script: Script,
    token: String,
}

impl Session {
    /// Asks for browses until `check` holds on the tree (an edit is live when its HTTP answer
    /// comes; the retries only absorb a slow machine), then checks that the session is the one
    /// opened at the start and that the subscription made then still delivers values.
    fn expect(&mut self, what: &str, daemon: &Daemon, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        let tree = loop {
            self.script.send("BROWSE");
            let answer = self.script.next_step(Duration::from_secs(60));
            self.assert_same_session(&answer, what);
            if check(&answer["tree"]) {
                break answer["tree"].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the OPC UA browse never showed it: {:#}\n--- gateway log ---\n{}",
                answer["tree"],
                daemon.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        self.script.send("NOTIFIED");
        let notified = self.script.next_step(Duration::from_secs(90));
        self.assert_same_session(&notified, what);
        assert_eq!(
            notified["ok"], true,
            "{what}: no data-change notification for {DEVICE}/{WATCHED} since the last check: {notified}"
        );
        tree
    }

    fn assert_same_session(&self, answer: &Value, what: &str) {
        assert_eq!(
            answer["session"], self.token,
            "{what}: the OPC UA session changed: {answer}"
        );
        assert_eq!(
            answer["lost"],
            serde_json::json!([]),
            "{what}: the OPC UA client lost its connection: {answer}"
        );
    }
}

/// The device folder `device_id` under the application folder `application_id`, if browsed.
fn device_in<'a>(tree: &'a Value, application_id: &str, device_id: &str) -> Option<&'a Value> {
    tree.as_array()?
        .iter()
        .find(|app| app["id"] == application_id)?["devices"]
        .as_array()?
        .iter()
        .find(|device| device["id"] == device_id)
}

fn text<'a>(facts: &'a Value, key: &str) -> &'a str {
    facts[key]
        .as_str()
        .unwrap_or_else(|| panic!("checkpoint without {key}: {facts}"))
}

/// The gateway once the console can edit: the reload actor (owner of the file) starts last.
fn wait_for_editing(workdir: &Workdir) {
    let client = WebClient::basic(workdir.web_port(), USER, TEST_PASSWORD);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client.get("/api/config");
        if answer.status == 200 {
            assert_eq!(answer.json()["editing"]["enabled"], true, "{answer:?}");
            return;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(Instant::now() < deadline, "editing never became available");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_console_works_in_a_real_browser() {
    for tool in ["chromium", "chromedriver"] {
        assert!(
            on_path(tool).is_some(),
            "`{tool}` is not installed: the web console's browser test needs Debian's chromium and chromium-driver; run `make browser-deps` (or `make test`, which installs them)"
        );
    }
    let workdir = Workdir::new(&demo_config());
    let mut daemon = console_daemon(&workdir, &[]);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    wait_for_editing(&workdir);
    let web = WebClient::basic(workdir.web_port(), USER, TEST_PASSWORD);
    wait_for_value(&web, DEVICE, WATCHED);
    let port = workdir.opcua_port().to_string();

    // The session that must survive every edit, subscribed before the page changes anything.
    let mut session = {
        let script = Script::start(
            "config_session.py",
            "tests/python/config_session.py",
            &[
                port.clone(),
                TEST_PASSWORD.into(),
                format!("{DEVICE}/{WATCHED}"),
            ],
            &[],
        );
        let subscribed = script.next_step(Duration::from_secs(60));
        assert_eq!(subscribed["step"], "subscribed", "{subscribed}");
        assert_eq!(subscribed["ok"], true, "no first value: {subscribed}");
        let token = subscribed["session"]
            .as_str()
            .expect("a session")
            .to_string();
        Session { script, token }
    };

    // A client certificate the server rejects into pki/rejected, for the page to trust.
    let mut client = Script::start(
        "trusted_client.py",
        "tests/python/trusted_client.py",
        &[
            port,
            workdir
                .path()
                .join("pki/own/cert.der")
                .display()
                .to_string(),
            TEST_PASSWORD.into(),
            format!("{DEVICE}/{WATCHED}"),
        ],
        &[],
    );
    let untrusted = client.next_step(Duration::from_secs(60));
    assert_eq!(untrusted["step"], "untrusted", "{untrusted}");
    assert_eq!(untrusted["refused"], true, "{untrusted}");
    let client_thumbprint = client
        .next_line(Duration::from_secs(30))
        .and_then(|line| line.strip_prefix("WAIT trust ").map(str::to_string))
        .unwrap_or_else(|| panic!("no WAIT trust\n{}", client.transcript()));

    let shots = screenshots();
    // Only this run's screenshots count.
    if let Ok(entries) = std::fs::read_dir(&shots) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "png") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let mut console = Script::start(
        "console.py",
        "tests/browser/console.py",
        &[
            "--base-url".into(),
            format!("http://127.0.0.1:{}/", workdir.web_port()),
            "--user".into(),
            USER.into(),
            "--screenshots".into(),
            shots.display().to_string(),
            "--config-file".into(),
            workdir.config.display().to_string(),
            "--certificates".into(),
            "--checkpoints".into(),
            // Longer than the simulator's uplink interval (5 s), with room for a loaded machine.
            "--live-timeout".into(),
            "40".into(),
            "--timeout".into(),
            "20".into(),
        ],
        // Not on the command line, where `ps` would show it.
        &[("OPCGW_WEB_PASSWORD", TEST_PASSWORD)],
    );
    let mut checkpoints = Vec::new();
    // Every browser step waits at most --live-timeout; a line comes well within this.
    while let Some(line) = console.next_line(Duration::from_secs(180)) {
        let Some(rest) = line.strip_prefix("CHECKPOINT ") else {
            continue;
        };
        let (name, facts) = rest.split_once(' ').unwrap_or((rest, "{}"));
        let facts: Value = serde_json::from_str(facts).expect("checkpoint facts");
        match name {
            "device_added" | "device_renamed" | "device_reloaded" => {
                let (app, id, shown) = (
                    text(&facts, "application_id"),
                    text(&facts, "device_id"),
                    text(&facts, "device_name"),
                );
                let tree = session.expect(name, &daemon, |tree| {
                    device_in(tree, app, id).is_some_and(|d| d["name"] == shown)
                });
                let device = device_in(&tree, app, id).expect("browsed");
                if let Some(metrics) = facts["metrics"].as_array() {
                    for metric in metrics {
                        assert!(
                            device["children"]
                                .as_array()
                                .is_some_and(|c| c.contains(metric)),
                            "{name}: variable {metric} not browsed under {device}"
                        );
                    }
                }
            }
            "device_deleted" => {
                let (app, id) = (text(&facts, "application_id"), text(&facts, "device_id"));
                session.expect(name, &daemon, |tree| {
                    tree.as_array()
                        .is_some_and(|apps| apps.iter().any(|a| a["id"] == app))
                        && device_in(tree, app, id).is_none()
                });
            }
            "certificate_trusted" => {
                assert_eq!(
                    text(&facts, "thumbprint"),
                    client_thumbprint,
                    "the page trusted another certificate"
                );
                client.send("GO");
                let trusted = client.next_step(Duration::from_secs(60));
                assert_eq!(trusted["step"], "trusted", "{trusted}");
                assert_eq!(trusted["connected"], true, "{trusted}");
                assert_eq!(
                    trusted["policy"], "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
                    "{trusted}"
                );
                assert_eq!(trusted["mode"], "SignAndEncrypt", "{trusted}");
                assert_eq!(trusted["status"], "Good", "{trusted}");
                assert!(trusted["value"].is_number(), "{trusted}");
                assert_eq!(client.next_step(Duration::from_secs(30))["step"], "done");
            }
            other => panic!("unknown checkpoint {other}"),
        }
        checkpoints.push(name.to_string());
        console.send("GO");
    }
    let passed = console.finish(Duration::from_secs(30));
    assert!(
        passed,
        "the browser scenario failed (screenshots in {}):\n{}\n--- gateway log ---\n{}",
        shots.display(),
        console.transcript(),
        daemon.lines().join("\n")
    );
    assert!(
        console.transcript().contains("console scenario passed"),
        "{}",
        console.transcript()
    );
    assert_eq!(
        checkpoints,
        [
            "device_added",
            "device_renamed",
            "device_reloaded",
            "device_deleted",
            "certificate_trusted"
        ],
        "{}",
        console.transcript()
    );
    assert!(
        client.finish(Duration::from_secs(10)),
        "{}",
        client.transcript()
    );

    // The session is still the first one after the whole scenario, its subscription alive.
    session.expect("the end", &daemon, |tree| {
        tree.as_array().is_some_and(|a| !a.is_empty())
    });
    session.script.send("END");
    assert_eq!(
        session.script.next_step(Duration::from_secs(30))["step"],
        "done"
    );
    assert!(
        session.script.finish(Duration::from_secs(10)),
        "{}",
        session.script.transcript()
    );
    for event in [
        "application_created",
        "device_created",
        "device_updated",
        "device_deleted",
        "application_deleted",
        "pki_certificate_trusted",
    ] {
        // Waits (the log writer is non-blocking); fails with the log if the event never comes.
        daemon.wait_for_events(event, 1, std::time::Duration::from_secs(10));
    }

    for shot in [
        "01-sign-in",
        "04-dashboard",
        "05-device-24h",
        "06-commands",
        "11-config-settings",
        "14-config-device",
        "15-config-drift",
        "16-config",
        "17-certificates",
        "10-signed-out",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).is_file(),
            "no screenshot {shot}"
        );
    }
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}
