//! The OPC UA side of the real binary: key checks at start-up, development keys, serving a
//! client, and the session-count gauge.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{run_to_end, Daemon, Workdir, MINIMAL_CONFIG, TEST_PASSWORD};

fn gateway_args(workdir: &Workdir) -> Vec<String> {
    vec![
        "run".into(),
        "--config".into(),
        workdir.config.display().to_string(),
    ]
}

#[test]
fn a_private_key_readable_by_others_refuses_start_up_with_the_mode_and_the_chmod_recipe() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let key = workdir.path().join("pki/private/private.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let args = gateway_args(&workdir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, _, stderr) = run_to_end(workdir.path(), &args, &crate::support::gateway_env());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("0644"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(stderr.contains("private.pem"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_key_pair_refuses_start_up_unless_development_keys_are_allowed() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    std::fs::remove_file(workdir.path().join("pki/private/private.pem")).unwrap();
    std::fs::remove_file(workdir.path().join("pki/own/cert.der")).unwrap();
    let args = gateway_args(&workdir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, _, stderr) = run_to_end(workdir.path(), &args, &crate::support::gateway_env());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("create_sample_keypair"), "{stderr}");

    // Development: the gateway generates an owner-only key pair, warns, and serves.
    workdir
        .write_config(&MINIMAL_CONFIG.replace("[opcua]", "[opcua]\ncreate_sample_keypair = true"));
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    assert_eq!(daemon.events("opcua_sample_keypair").len(), 1);
    let mode = std::fs::metadata(workdir.path().join("pki/private/private.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let limits = daemon.events("opcua_limits_configured");
    assert_eq!(limits.len(), 1);
    assert!(limits[0].contains("max_sessions=10") && limits[0].contains("max_chunk_count=5"));

    // A client connects to the binary; the session gauge follows it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ua = crate::ua_client::connect_none(workdir.opcua_port(), TEST_PASSWORD).await;
        let level = ua.read("0000000000000001/Level").await;
        // ChirpStack is unreachable in this config: never polled.
        assert_eq!(
            level.status(),
            ua::types::StatusCode::BadWaitingForInitialData
        );
        // The gauge is checked every second and logged when it changes: stay connected until
        // it has counted this session (the client's tasks run on the runtime's workers).
        daemon.wait_for_events("opcua_session_count", 1, Duration::from_secs(10));
        ua.close().await;
    });
    let gauges = daemon.wait_for_events("opcua_session_count", 2, Duration::from_secs(10));
    assert!(
        gauges[0].contains("current=1") && gauges[0].contains("limit=10"),
        "{gauges:#?}"
    );
    assert!(gauges[1].contains("current=0"), "{gauges:#?}");
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
    // The generated key is accepted at the next start (it is 0600).
    let mut again = Daemon::start(&workdir, &[]);
    again.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    assert!(
        again.events("opcua_sample_keypair").is_empty(),
        "the key pair was kept"
    );
    again.signal(Signal::SIGTERM);
    assert!(again.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn a_taken_port_is_retried_with_backoff_while_the_rest_runs_and_served_once_free() {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[supervisor]\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n\n[opcua]",
    ));
    let squatter = std::net::TcpListener::bind(("127.0.0.1", workdir.opcua_port())).unwrap();
    let mut daemon = Daemon::start(&workdir, &[]);
    let failures = daemon.wait_for_events("actor_start_failed", 2, Duration::from_secs(20));
    assert!(
        failures.iter().all(|l| l.contains("actor=\"opcua\"")),
        "{failures:#?}"
    );
    assert!(
        failures[0].contains(&workdir.opcua_port().to_string())
            && failures[0].contains("OPCGW_OPCUA__HOST_PORT"),
        "{}",
        failures[0]
    );
    // The other children start beside the supervisor's mailbox: wait for the two checked.
    let started: Vec<String> = daemon
        .wait_for_events("actor_started", 2, Duration::from_secs(20))
        .iter()
        .filter_map(|l| crate::support::actor_of(l))
        .collect();
    assert!(started.contains(&"poller".to_string()) && started.contains(&"storage".to_string()));
    drop(squatter);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(20));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        crate::ua_client::connect_none(workdir.opcua_port(), TEST_PASSWORD)
            .await
            .close()
            .await;
    });
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}
