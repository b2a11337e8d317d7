//! The control socket of the real daemon, over a real unix socket.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use opcgw::control::{ControlClient, Request};
use serde_json::Value;

use crate::support::{run_to_end, Daemon, Workdir, MINIMAL_CONFIG};

const AUTH_FAILED: &str =
    r#"{"ok":false,"error":{"code":"auth_failed","message":"authentication failed"}}"#;

/// A daemon in demo mode (simulator on a free port), its socket and token file in the workdir.
fn demo_daemon() -> (Workdir, Daemon) {
    let (workdir, daemon) = Daemon::start_demo(&[]);
    daemon.wait_for_events("control_socket_listening", 1, Duration::from_secs(20));
    (workdir, daemon)
}

fn socket(workdir: &Workdir) -> PathBuf {
    workdir.path().join("run/opcgw.sock")
}

fn token(workdir: &Workdir) -> String {
    std::fs::read_to_string(workdir.path().join("run/control.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// Everything the server sends until it closes (or 8 s pass).
fn read_to_close(stream: &mut UnixStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

async fn client(workdir: &Workdir) -> ControlClient {
    ControlClient::connect(&socket(workdir), &token(workdir), Duration::from_secs(10))
        .await
        .expect("connect")
}

async fn ask(client: &mut ControlClient, request: Request) -> Value {
    let response = client.request(&request).await.expect("response");
    assert!(response.ok, "{request:?}: {:?}", response.error);
    response.result.unwrap_or(Value::Null)
}

#[test]
fn peers_without_the_right_token_get_auth_failed_and_nothing_else() {
    let (workdir, mut daemon) = demo_daemon();
    let path = socket(&workdir);
    let cases: Vec<(&str, Vec<u8>, Duration)> = vec![
        (
            "no token",
            b"{\"type\":\"status\"}\n".to_vec(),
            Duration::ZERO,
        ),
        (
            "wrong token",
            b"{\"type\":\"auth\",\"token\":\"not-the-token\"}\n{\"type\":\"status\"}\n".to_vec(),
            Duration::ZERO,
        ),
        (
            "garbage",
            vec![0xff, 0x00, 0x13, b'\n', 0x80],
            Duration::ZERO,
        ),
        ("silence", Vec::new(), Duration::ZERO),
    ];
    for (name, bytes, _) in cases {
        let mut stream = UnixStream::connect(&path).unwrap();
        stream.write_all(&bytes).unwrap();
        let started = Instant::now();
        let got = read_to_close(&mut stream);
        assert_eq!(got.trim_end(), AUTH_FAILED, "{name}");
        assert!(
            got.ends_with('\n') && got.lines().count() == 1,
            "{name}: exactly one frame: {got:?}"
        );
        if name == "silence" {
            assert!(
                started.elapsed() >= Duration::from_secs(4),
                "closed after {:?}",
                started.elapsed()
            );
        }
    }
    // The right token, but too late.
    let mut stream = UnixStream::connect(&path).unwrap();
    std::thread::sleep(Duration::from_millis(5_500));
    let _ = stream
        .write_all(format!("{{\"type\":\"auth\",\"token\":\"{}\"}}\n", token(&workdir)).as_bytes());
    assert_eq!(
        read_to_close(&mut stream).trim_end(),
        AUTH_FAILED,
        "late token"
    );
    let failures = daemon.events("control_auth_failed");
    assert!(failures.len() >= 5, "{failures:#?}");
    assert!(
        failures
            .iter()
            .all(|l| l.contains("uid=") && l.contains("pid=")),
        "{failures:#?}"
    );
    assert!(
        !daemon.lines().join("\n").contains(&token(&workdir)),
        "the token reached the log"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(!path.exists(), "the socket is removed on clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_and_files_are_owner_only() {
    let (workdir, mut daemon) = demo_daemon();
    for file in [socket(&workdir), workdir.path().join("run/control.token")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let mut ctl = client(&workdir).await;
    let status = ask(&mut ctl, Request::Status).await;
    let children = status["tree"]["children"].as_array().expect("children");
    assert_eq!(children.len(), 7, "{status}");
    let devices = ask(&mut ctl, Request::Devices).await;
    let device = devices[0]["device_id"].as_str().unwrap().to_string();
    assert_eq!(devices.as_array().unwrap().len(), 6);
    // Wait for a value of the first device.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = ask(
            &mut ctl,
            Request::Read {
                device: device.clone(),
                metric: Some("temperature".into()),
            },
        )
        .await;
        if read[0]["value"] != Value::Null {
            assert_eq!(read[0]["quality"], "good", "{read}");
            break;
        }
        assert!(Instant::now() < deadline, "no value: {read}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let history = ask(
        &mut ctl,
        Request::History {
            device: device.clone(),
            metric: "temperature".into(),
            since: "10m".into(),
            until: None,
            limit: Some(10),
            aggregate: None,
            interval: None,
        },
    )
    .await;
    assert!(!history["rows"].as_array().unwrap().is_empty(), "{history}");
    // The same window aggregated, through the command line: the count of its rows, and
    // minute averages within the extremes. A closed window, so both reads see the same rows.
    let until = opcgw::model::Timestamp::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = ["--since", "10m", "--until"];
    let until_text = until.to_rfc3339();
    let raw = ask(
        &mut ctl,
        Request::History {
            device: device.clone(),
            metric: "temperature".into(),
            since: opcgw::model::Timestamp(until.0 - 600_000_000).to_rfc3339(),
            until: Some(until_text.clone()),
            limit: Some(10_000),
            aggregate: None,
            interval: None,
        },
    )
    .await;
    let raw_rows = raw["rows"].as_array().unwrap().clone();
    let since_text = opcgw::model::Timestamp(until.0 - 600_000_000).to_rfc3339();
    let ctl_json = |extra: &[&str]| {
        let mut args = vec!["ctl", "--config", "config.toml", "--json", "history"];
        args.extend([device.as_str(), "temperature"]);
        args.extend([
            window[0],
            since_text.as_str(),
            window[2],
            until_text.as_str(),
        ]);
        args.extend(extra);
        let (status, stdout, stderr) = run_to_end(workdir.path(), &args, &[]);
        assert_eq!(status.code(), Some(0), "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap_or_else(|_| panic!("{stdout}"))
    };
    let counted = ctl_json(&["--aggregate", "count"]);
    let counted = counted["rows"].as_array().unwrap();
    assert_eq!(counted.len(), 1, "one interval: {counted:?}");
    assert_eq!(counted[0]["value"]["value"], raw_rows.len(), "{counted:?}");
    let averages = ctl_json(&["--aggregate", "average", "--interval", "1m"]);
    let averages = averages["rows"].as_array().unwrap();
    assert_eq!(averages.len(), 10, "{averages:?}");
    let numbers: Vec<f64> = raw_rows
        .iter()
        .filter_map(|r| r["value"]["value"].as_f64())
        .collect();
    let (low, high) = numbers
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    for average in averages.iter().filter(|a| a["quality"] == "good") {
        let v = average["value"]["value"].as_f64().unwrap();
        assert!((low..=high).contains(&v), "{v} outside {low}..{high}");
    }
    assert!(
        averages.iter().any(|a| a["quality"] == "good"),
        "{averages:?}"
    );
    let sent = ask(
        &mut ctl,
        Request::CommandSend {
            device: device.clone(),
            command: "setpoint".into(),
            value: serde_json::json!(42),
        },
    )
    .await;
    assert_eq!(sent["state"], "queued", "{sent}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = ask(
            &mut ctl,
            Request::CommandList {
                device: Some(device.clone()),
                limit: None,
            },
        )
        .await;
        if list[0]["state"] == "acknowledged" {
            assert!(
                list[0]["requested_by"]
                    .as_str()
                    .unwrap()
                    .starts_with("ctl:uid="),
                "{list}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not acknowledged: {list}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Bad arguments are bad requests naming the field.
    let bad = ctl
        .request(&Request::CommandSend {
            device: device.clone(),
            command: "setpoint".into(),
            value: serde_json::json!(1000),
        })
        .await
        .unwrap();
    assert!(
        !bad.ok && bad.error.as_ref().unwrap().message.contains("value"),
        "{bad:?}"
    );
    let level = ask(
        &mut ctl,
        Request::LogLevel {
            filter: "debug".into(),
        },
    )
    .await;
    assert_eq!(level["filter"], "debug");
    let reload = ask(&mut ctl, Request::Reload).await;
    assert_eq!(reload["outcome"], "succeeded", "{reload}");
    assert!(daemon.events("control_command").len() >= 8);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn ctl_reload_reports_what_sighup_reports() {
    let config = MINIMAL_CONFIG.replace(
        "[opcua]",
        "[control]\nsocket_path = \"run/ctl.sock\"\ntoken_file = \"run/ctl.token\"\n\n[opcua]",
    );
    let workdir = Workdir::new(&config);
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("control_socket_listening", 1, Duration::from_secs(20));
    let ctl = |args: &[&str]| {
        run_to_end(
            workdir.path(),
            &[&["ctl", "--config", "config.toml", "--json"], args].concat(),
            &[],
        )
    };

    workdir.write_config(&config.replace("polling_frequency = 10", "polling_frequency = 30"));
    let (status, stdout, stderr) = ctl(&["reload"]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let outcome: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            outcome["outcome"].as_str(),
            outcome["changed_section_count"].as_u64()
        ),
        (Some("succeeded"), Some(1)),
        "{outcome}"
    );
    let logged = daemon.wait_for_events("config_reload_succeeded", 1, Duration::from_secs(5));
    assert!(
        logged[0].contains("trigger=\"ctl\"") && logged[0].contains("changed_section_count=1"),
        "{}",
        logged[0]
    );

    workdir.write_config(
        &config
            .replace("polling_frequency = 10", "polling_frequency = 30")
            .replace("4840", "4841"),
    );
    let (status, stdout, _) = ctl(&["reload"]);
    assert_eq!(
        status.code(),
        Some(1),
        "a refused reload is a failure for scripts"
    );
    let outcome: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (outcome["reason"].as_str(), outcome["changed_knob"].as_str()),
        (Some("restart_required"), Some("opcua.host_port"))
    );
    daemon.signal(Signal::SIGHUP);
    let failed = daemon.wait_for_events("config_reload_failed", 2, Duration::from_secs(5));
    for line in &failed {
        assert!(
            line.contains("reason=\"restart_required\"")
                && line.contains("changed_knob=\"opcua.host_port\""),
            "{line}"
        );
    }
    // Exit codes: 2 for a wrong token, 3 for no daemon.
    let (status, _, _) = run_to_end(
        workdir.path(),
        &["ctl", "--config", "config.toml", "status"],
        &[("OPCGW_CONTROL__TOKEN", "wrong".into())],
    );
    assert_eq!(status.code(), Some(2));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let (status, _, stderr) = ctl(&["status"]);
    assert_eq!(status.code(), Some(3), "{stderr}");
}

#[test]
fn a_second_instance_refuses_and_a_stale_socket_is_replaced() {
    let config = MINIMAL_CONFIG.replace(
        "[opcua]",
        "[control]\nsocket_path = \"run/one.sock\"\n\n[opcua]",
    );
    let workdir = Workdir::new(&config);
    std::fs::create_dir_all(workdir.path().join("run")).unwrap();
    // A socket file left behind by a crash: nobody listens on it.
    drop(std::os::unix::net::UnixListener::bind(workdir.path().join("run/one.sock")).unwrap());
    let mut first = Daemon::start(&workdir, &[]);
    first.wait_for_events("control_socket_listening", 1, Duration::from_secs(20));
    assert_eq!(first.events("control_socket_stale_removed").len(), 1);

    // The same configuration (same socket path) from another directory.
    let second = Workdir::new(&config);
    let (status, _, stderr) = run_to_end(
        workdir.path(),
        &["run", "--config", second.config.to_str().unwrap()],
        &crate::support::gateway_env(),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another opcgw is running") && stderr.contains("one.sock"),
        "{stderr}"
    );
    first.signal(Signal::SIGTERM);
    assert_eq!(first.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(8192), hard);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_garbage_oversized_frames_and_slow_readers_do_not_stop_the_service() {
    raise_fd_limit();
    let (workdir, mut daemon) = demo_daemon();
    let path = socket(&workdir);
    // 1,000 idle connections.
    let idle: Vec<UnixStream> = (0..1_000)
        .filter_map(|_| UnixStream::connect(&path).ok())
        .collect();
    assert!(idle.len() >= 900, "only {} connections opened", idle.len());
    let mut ctl = client(&workdir).await;
    assert!(ask(&mut ctl, Request::Status).await["tree"].is_object());
    drop(idle);

    // Oversized frame and invalid JSON after authentication: bad_request, daemon keeps going.
    let mut raw = UnixStream::connect(&path).unwrap();
    raw.write_all(
        format!(
            "{{\"type\":\"auth\",\"token\":\"{}\"}}\nnot json\n",
            token(&workdir)
        )
        .as_bytes(),
    )
    .unwrap();
    let _ = raw.write_all(&vec![b'x'; 200 * 1024]);
    let _ = raw.write_all(b"\n");
    let got = read_to_close(&mut raw);
    let lines: Vec<&str> = got.lines().collect();
    assert!(
        lines.len() >= 3 && lines[1].contains("bad_request") && lines[2].contains("bad_request"),
        "{got}"
    );

    // A slow reader: many requests, no reading. Others are still served.
    let mut slow = UnixStream::connect(&path).unwrap();
    slow.write_all(format!("{{\"type\":\"auth\",\"token\":\"{}\"}}\n", token(&workdir)).as_bytes())
        .unwrap();
    slow.set_nonblocking(true).unwrap();
    let request = b"{\"type\":\"devices\"}\n".repeat(2_000);
    let _ = slow.write_all(&request);
    let started = Instant::now();
    let mut other = client(&workdir).await;
    assert!(ask(&mut other, Request::Devices).await.is_array());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "served in {:?}",
        started.elapsed()
    );
    drop(slow);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_never_displaces_an_authenticated_client() {
    raise_fd_limit();
    let config = MINIMAL_CONFIG.replace(
        "[opcua]",
        "[control]\nsocket_path = \"run/flood.sock\"\ntoken_file = \"run/flood.token\"\n\n[opcua]",
    );
    let workdir = Workdir::new(&config);
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("control_socket_listening", 1, Duration::from_secs(20));
    let path = workdir.path().join("run/flood.sock");
    let token = std::fs::read_to_string(workdir.path().join("run/flood.token")).unwrap();
    let token = token.trim();
    let mut kept = ControlClient::connect(&path, token, Duration::from_secs(10))
        .await
        .expect("connect");
    assert!(ask(&mut kept, Request::Status).await["tree"].is_object());

    // 200 silent connections while the client above is still young (well within its first
    // auth window): none of them may push it out.
    let mut idle: Vec<UnixStream> = (0..200)
        .filter_map(|_| UnixStream::connect(&path).ok())
        .collect();
    assert!(idle.len() >= 190, "only {} connections opened", idle.len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        ask(&mut kept, Request::Status).await["tree"].is_object(),
        "the authenticated client still works"
    );
    // A newcomer with the token still gets in while the flood holds its slots.
    let mut newcomer = ControlClient::connect(&path, token, Duration::from_secs(10))
        .await
        .expect("a newcomer connects during the flood");
    assert!(ask(&mut newcomer, Request::Devices).await.is_array());
    // The flood was cut down to the pending cap: the oldest idle connections are closed.
    let closed = idle
        .iter_mut()
        .filter_map(|stream| {
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            matches!(stream.read(&mut [0u8; 64]), Ok(0)).then_some(())
        })
        .count();
    assert!(
        closed >= idle.len() - opcgw::control::MAX_PENDING_CONNECTIONS - 1,
        "{closed} of {} idle connections closed",
        idle.len()
    );
    assert_eq!(
        daemon.events("control_pending_limit").len(),
        1,
        "one warning per flood"
    );
    // Past the auth window the survivors are gone too, and the client is still served.
    tokio::time::sleep(opcgw::control::AUTH_TIMEOUT + Duration::from_millis(500)).await;
    assert!(ask(&mut kept, Request::Status).await["tree"].is_object());
    drop(idle);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_control_actor_is_restarted_and_clients_reconnect() {
    use opcgw_actors::tree::gateway::Tree;
    use opcgw_actors::tree::messages::{Common, ControlMsg};
    use opcgw_actors::tree::supervisor::ChildState;

    let dir = tempfile::tempdir().unwrap();
    let sim = crate::poller::simulator(|c| c.devices_per_application = 1).await;
    let mut config = crate::poller::gateway_config(&sim, |c| {
        c.storage.database_path = dir.path().join("db.redb");
        c.control.socket_path = dir.path().join("ctl.sock");
        c.control.token_file = dir.path().join("ctl.token");
        c.supervisor.backoff_initial_ms = 50;
    });
    let options = crate::support::tree_options(&mut config);
    let tree = Tree::start(std::sync::Arc::new(config.clone()), options)
        .await
        .unwrap();
    let wait_socket = |path: &Path| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while UnixStream::connect(path).is_err() {
            assert!(Instant::now() < deadline, "socket not served");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_socket(&config.control.socket_path);
    let token = std::fs::read_to_string(&config.control.token_file).unwrap();
    let mut before = ControlClient::connect(
        &config.control.socket_path,
        token.trim(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(before.request(&Request::Status).await.unwrap().ok);

    let control = tree.handle.lookup::<ControlMsg>("control").await.unwrap();
    control
        .cast(ControlMsg::Common(Common::InjectPanic("test".into())))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = tree.handle.status().await.unwrap();
        let child = status.child("control").unwrap();
        if child.restarts == 1 && child.state == ChildState::Running {
            break;
        }
        assert!(Instant::now() < deadline, "{child:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        before.request(&Request::Status).await.is_err(),
        "the old connection went with the crashed actor"
    );
    wait_socket(&config.control.socket_path);
    let mut after = ControlClient::connect(
        &config.control.socket_path,
        token.trim(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(after.request(&Request::Status).await.unwrap().ok);
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    sim.shutdown().await;
}

#[test]
fn a_control_token_flag_works_but_warns_about_the_process_list() {
    let config = MINIMAL_CONFIG.replace(
        "[opcua]",
        "[control]\nsocket_path = \"run/flag.sock\"\ntoken_file = \"run/flag.token\"\n\n[opcua]",
    );
    let workdir = Workdir::new(&config);
    let token = "flag-token-0123456789abcdef";
    let mut daemon = Daemon::start_with_args(&workdir, "run", &["--control-token", token], &[]);
    daemon.wait_for_events("control_socket_listening", 1, Duration::from_secs(20));
    assert!(daemon
        .lines()
        .iter()
        .any(|l| l.contains("WARNING: --control-token is visible in the process list")));
    assert!(
        !daemon.lines().join("\n").contains(token),
        "the token itself is never printed"
    );
    let (status, _, stderr) = run_to_end(
        workdir.path(),
        &[
            "ctl",
            "--config",
            "config.toml",
            "--control-token",
            token,
            "status",
        ],
        &[],
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("WARNING: --control-token"), "{stderr}");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
