//! The OPC UA side of the real binary: key checks at start-up, development keys, serving a
//! client, the session-count gauge, and monitored items leaving with their subscription.

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
    let runtime = crate::support::client_runtime();
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
    let runtime = crate::support::client_runtime();
    runtime.block_on(async {
        crate::ua_client::connect_none(workdir.opcua_port(), TEST_PASSWORD)
            .await
            .close()
            .await;
    });
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}

/// The gauge `name`, once it reads `expected` within `within` (the OPC UA gauges are exported
/// every second).
fn wait_for_gauge(workdir: &Workdir, name: &str, expected: usize, within: Duration, after: &str) {
    let http = crate::web_client::WebClient::anonymous(workdir.metrics_port());
    let line = format!("{name} {expected}");
    let deadline = std::time::Instant::now() + within;
    loop {
        let metrics = http.get("/metrics").body;
        if metrics.lines().any(|l| l == line) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {line:?} within {within:?} {after}:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_monitored_items(workdir: &Workdir, expected: usize, after: &str) {
    let within = Duration::from_secs(15);
    wait_for_gauge(
        workdir,
        "opcgw_opcua_monitored_items",
        expected,
        within,
        after,
    );
}

/// Monitored items leave the server with their subscription, whether the client deletes it or
/// vanishes and lets it expire: a SCADA client that reconnects every day must not leave a day's
/// items behind (they were kept, and visited on every change of their nodes, until a restart).
/// The subscriptions themselves leave too once they expired and their session is gone (closed
/// without deleting them, or expired): nothing can collect their last status change any more
/// (they were kept, with their queued notifications, for the life of the server).
#[test]
fn monitored_items_leave_with_a_deleted_or_expired_subscription() {
    use ua::client::DataChangeCallback;
    use ua::types::{
        AttributeId, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId,
        ReadValueId, TimestampsToReturn, VariableId,
    };
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[metrics]\nenabled = true\nport = 9464\n\n[opcua]",
    ));
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    let runtime = crate::support::client_runtime();
    runtime.block_on(async {
        // Four items on three nodes: the gateway's variable twice, two standard ones.
        let subscribe = |ua: &crate::ua_client::Ua, lifetime_count: u32| {
            let level = ua.id("0000000000000001/Level");
            let nodes: Vec<NodeId> = vec![
                level.clone(),
                level,
                VariableId::Server_ServerStatus_CurrentTime.into(),
                VariableId::Server_ServerStatus_State.into(),
            ];
            let session = ua.session.clone();
            async move {
                let id = session
                    .create_subscription(
                        Duration::from_millis(100),
                        lifetime_count,
                        10,
                        0,
                        0,
                        true,
                        DataChangeCallback::new(|_, _| {}),
                    )
                    .await
                    .expect("subscription");
                let items = nodes
                    .into_iter()
                    .map(|node_id| MonitoredItemCreateRequest {
                        item_to_monitor: ReadValueId {
                            node_id,
                            attribute_id: AttributeId::Value as u32,
                            ..Default::default()
                        },
                        monitoring_mode: MonitoringMode::Reporting,
                        requested_parameters: MonitoringParameters {
                            queue_size: 1,
                            ..Default::default()
                        },
                    })
                    .collect();
                let results = session
                    .create_monitored_items(id, TimestampsToReturn::Both, items)
                    .await
                    .expect("monitored items");
                assert!(results.iter().all(|r| r.result.status_code.is_good()));
                id
            }
        };

        let ua = crate::ua_client::connect_none(workdir.opcua_port(), TEST_PASSWORD).await;
        let id = subscribe(&ua, 100).await;
        wait_for_monitored_items(&workdir, 4, "of the first subscription");
        let deleted = ua.session.delete_subscription(id).await.expect("delete");
        assert!(deleted.is_good(), "{deleted}");
        wait_for_monitored_items(&workdir, 0, "of its deletion");

        let subscriptions = "opcgw_opcua_subscriptions";
        let soon = Duration::from_secs(15);
        wait_for_gauge(&workdir, subscriptions, 0, soon, "of the deletion");

        // A client that closes its session and keeps its subscription (to transfer it to
        // another session, or by mistake): the subscription expires after 30 publishing
        // intervals without a publish request (3 s) and, its session gone, leaves.
        subscribe(&ua, 30).await;
        wait_for_monitored_items(&workdir, 4, "of the kept subscription");
        ua.session
            .disconnect_without_delete_subscriptions()
            .await
            .expect("close the session, keep the subscription");
        ua.abandon();
        wait_for_monitored_items(&workdir, 0, "of the kept subscription's expiry");
        wait_for_gauge(
            &workdir,
            subscriptions,
            0,
            soon,
            "of the kept subscription's expiry",
        );

        // A client that vanishes: its subscription expires (3 s) and its items go with it;
        // the subscription leaves when the session expires (the client asked for 30 s).
        let ua = crate::ua_client::connect_none(workdir.opcua_port(), TEST_PASSWORD).await;
        subscribe(&ua, 30).await;
        wait_for_monitored_items(&workdir, 4, "of the third subscription");
        ua.abandon();
        wait_for_monitored_items(&workdir, 0, "of the client's disappearance");
        let session_timeout = Duration::from_secs(45);
        wait_for_gauge(
            &workdir,
            subscriptions,
            0,
            session_timeout,
            "of the session's expiry",
        );
    });
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}
