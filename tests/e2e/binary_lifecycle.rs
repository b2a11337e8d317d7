//! The real binary: start, SIGTERM, restart intensity, the demo configuration.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{actor_of, run_to_end, Daemon, Workdir, MINIMAL_CONFIG};

const START_ORDER: [&str; 7] = [
    "storage", "opcua", "poller", "web", "metrics", "control", "reload",
];

fn reversed() -> Vec<&'static str> {
    START_ORDER.iter().rev().copied().collect()
}

#[test]
fn sigterm_stops_children_in_reverse_order_and_exits_zero() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    let started: Vec<String> = daemon
        .events("actor_started")
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    assert_eq!(started, START_ORDER);

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "log:\n{}",
        daemon.lines().join("\n")
    );
    let stopped: Vec<String> = daemon
        .events("actor_stopped")
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    assert_eq!(stopped, reversed());
    assert_eq!(daemon.events("gateway_stopped").len(), 1);
}

#[test]
fn sigint_stops_the_gateway_cleanly_too() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    daemon.signal(Signal::SIGINT);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_child_crashing_past_the_restart_intensity_stops_the_tree_and_exits_non_zero() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let mut daemon = Daemon::start(
        &workdir,
        &[
            ("OPCGW_FAULT_INJECT", "poller@20".into()),
            ("OPCGW_SUPERVISOR__BACKOFF_INITIAL_MS", "10".into()),
            ("OPCGW_SUPERVISOR__BACKOFF_MAX_MS", "40".into()),
            ("OPCGW_SUPERVISOR__MAX_RESTARTS", "3".into()),
        ],
    );
    let status = daemon.wait_exit(Duration::from_secs(20));
    let log = daemon.lines().join("\n");
    assert_eq!(status.code(), Some(3), "log:\n{log}");
    assert_eq!(daemon.events("actor_failed").len(), 4, "log:\n{log}");
    assert_eq!(daemon.events("restart_intensity_exceeded").len(), 1);
    let stopped: Vec<String> = daemon
        .events("actor_stopped")
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    let expected: Vec<&str> = reversed().into_iter().filter(|a| *a != "poller").collect();
    assert_eq!(stopped, expected, "log:\n{log}");
    assert!(
        !log.contains("panicked at") || log.contains("injected panic"),
        "only the injected panic may appear"
    );
}

#[test]
fn the_demo_runs_against_its_simulator_and_logs_live_samples() {
    // `make run` runs exactly this, with generated secrets in the environment.
    let (_workdir, mut daemon) = Daemon::start_demo(&[("OPCGW_LOG_LEVEL", String::new())]);
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    // The demo generates its own OPC UA key pair, and says so; nothing else may be wrong with it.
    let warnings: Vec<String> = daemon
        .events("config_warning")
        .into_iter()
        .filter(|w| !w.contains("opcua.create_sample_keypair"))
        .collect();
    assert!(
        warnings.is_empty(),
        "the demo config should be clean: {warnings:#?}"
    );
    let samples = daemon.wait_for_events("samples_received", 3, Duration::from_secs(20));
    assert!(
        samples.iter().any(|l| l.contains("temperature=")),
        "{samples:#?}"
    );
    assert!(daemon
        .events("upstream_state_changed")
        .iter()
        .any(|l| l.contains("to=\"connected\"")));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn the_demo_config_describes_the_demo_simulator_world() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml");
    let env = opcgw::config::EnvSnapshot::from_pairs([
        ("OPCGW_CHIRPSTACK__API_TOKEN", "demo-test-token-5e1f"),
        ("OPCGW_OPCUA__USER_PASSWORD", "demo-test-password-8c2d"),
    ]);
    let config = opcgw::config::load(std::path::Path::new(path), &env)
        .unwrap()
        .config;
    let printed = opcgw_actors::cli::demo::demo_simulator(&config).print_config();
    #[derive(serde::Deserialize)]
    struct Blocks {
        application: Vec<opcgw::config::ApplicationConfig>,
    }
    let world: Blocks = toml::from_str(&printed).unwrap();
    assert_eq!(
        config.applications, world.application,
        "regenerate the demo.toml applications with `opcgw simulate --print-config`"
    );
}

#[test]
fn a_corrupt_database_is_reported_left_untouched_and_the_rest_keeps_running() {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[supervisor]\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n\n[opcua]",
    ));
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::create_dir_all(workdir.path().join("data")).unwrap();
    let db = workdir.path().join("data/opcgw.redb");
    std::fs::write(&db, &garbage).unwrap();
    let mut daemon = Daemon::start(&workdir, &[]);
    let failures = daemon.wait_for_events("actor_start_failed", 3, Duration::from_secs(20));
    assert!(
        failures.iter().all(|l| l.contains("actor=\"storage\"")),
        "{failures:#?}"
    );
    assert!(
        failures[0].contains("opcgw.redb") && failures[0].contains("mv "),
        "{}",
        failures[0]
    );
    // Child starts run beside the supervisor's mailbox, so storage's quick retries may be
    // logged before the next children finish starting: wait for them, then check the set.
    let started: Vec<String> = daemon
        .wait_for_events("actor_started", 5, Duration::from_secs(20))
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    assert_eq!(
        started,
        ["opcua", "poller", "web", "metrics", "control", "reload"],
        "everything but storage runs"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "the corrupt file was modified"
    );
}

/// A closed database holding some history, written by the storage library itself.
fn written_database(path: &std::path::Path) {
    use opcgw::model::{Sample, SampleOrigin, Timestamp, Value};
    let mut store = opcgw::storage::Store::open(path).expect("create a database");
    let samples: Vec<Sample> = (0..20_000i64)
        .map(|i| Sample {
            device_id: format!("dev{}", i % 50).into(),
            metric: "level".into(),
            value: Value::Float(i as f64 * 0.37),
            source_time: Timestamp(1_000_000 + i),
            received_time: Timestamp(1_000_001 + i),
            origin: SampleOrigin::Uplink,
        })
        .collect();
    store.append(&samples).expect("append");
}

#[test]
fn a_damaged_database_that_makes_redb_panic_is_reported_once_without_a_backtrace() {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[supervisor]\nbackoff_initial_ms = 50\nbackoff_max_ms = 400\n\n[opcua]",
    ));
    let db = workdir.path().join("data/opcgw.redb");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    written_database(&db);
    // Everything after the header page overwritten: redb trips its own assertions on it.
    let mut bytes = std::fs::read(&db).unwrap();
    for (i, byte) in bytes.iter_mut().enumerate().skip(4096) {
        *byte = (i * 7 % 251) as u8;
    }
    std::fs::write(&db, &bytes).unwrap();

    let mut daemon = Daemon::start(&workdir, &[("RUST_BACKTRACE", "1".into())]);
    let attempts = daemon.wait_for_events("actor_start_failed", 6, Duration::from_secs(30));
    // The other children start beside the supervisor's mailbox: all of them before the stop.
    daemon.wait_for_events("actor_started", 5, Duration::from_secs(20));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let log = daemon.lines();

    let reports = daemon.events("storage_open_failed");
    assert_eq!(reports.len(), 1, "one report for one state: {reports:#?}");
    let report = &reports[0];
    assert!(
        report.contains("ERROR")
            && report.contains("opcgw.redb")
            && report.contains("corrupt")
            && report.contains("redb stopped on an inconsistency")
            && report.contains("mv "),
        "{report}"
    );
    assert!(
        attempts.iter().all(|l| l.contains("actor=\"storage\"")),
        "{attempts:#?}"
    );
    for noise in ["panicked", "stack backtrace", "RUST_BACKTRACE", "unwind"] {
        assert!(
            !log.iter().any(|l| l.contains(noise)),
            "{noise:?} in the log:\n{}",
            log.join("\n")
        );
    }
    // At most the report plus one line per retry mention the file.
    let mentions = log.iter().filter(|l| l.contains("opcgw.redb")).count();
    let retries = daemon.events("actor_start_failed").len();
    assert!(
        mentions <= retries + 1,
        "{mentions} lines for {retries} retries"
    );
    let started: Vec<String> = daemon
        .events("actor_started")
        .iter()
        .filter_map(|l| actor_of(l))
        .collect();
    assert_eq!(
        started,
        ["opcua", "poller", "web", "metrics", "control", "reload"]
    );
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "the file was modified");
}

#[test]
fn a_second_gateway_sharing_the_database_refuses_to_start_and_names_it() {
    let first_dir = Workdir::new(MINIMAL_CONFIG);
    let mut first = Daemon::start(&first_dir, &[]);
    first.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    first.wait_for_events("storage_opened", 1, Duration::from_secs(10));
    let db = first_dir.path().join("data/opcgw.redb");

    // Its own directory, control socket and OPC UA port; the same database file.
    let second_dir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        &format!(
            "[storage]\ndatabase_path = {:?}\n\n[opcua]",
            db.display().to_string()
        ),
    ));
    let mut second = Daemon::start(&second_dir, &[]);
    let status = second.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", second.lines().join("\n"));
    let log = second.lines().join("\n");
    assert!(
        log.contains(&format!(
            "database {} is in use by another opcgw (pid {})",
            db.display(),
            first.pid()
        )),
        "{log}"
    );
    assert!(
        second.events("actor_started").is_empty(),
        "the tree was never started: {log}"
    );

    // The first one is unaffected.
    assert!(first.events("actor_failed").is_empty());
    first.signal(Signal::SIGTERM);
    assert_eq!(first.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_database_taken_by_another_process_during_a_storage_restart_stops_the_gateway() {
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]",
        "[supervisor]\nbackoff_initial_ms = 1500\nbackoff_max_ms = 3000\n\n[opcua]",
    ));
    let db = workdir.path().join("data/opcgw.redb");
    // The storage actor panics shortly after each start (debug builds only).
    let mut daemon = Daemon::start(&workdir, &[("OPCGW_FAULT_INJECT", "storage@300".into())]);
    daemon.wait_for_events("actor_restart_scheduled", 1, Duration::from_secs(20));
    // While the storage actor waits for its restart, another process takes the file. (This
    // test process is that other process; the crashed instance may still hold the lock for a
    // moment.)
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let squatter = loop {
        match opcgw::storage::Store::open(&db) {
            Ok(store) => break store,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    let status = daemon.wait_exit(Duration::from_secs(20));
    drop(squatter);
    let log = daemon.lines().join("\n");
    assert_eq!(status.code(), Some(1), "{log}");
    let escalated = daemon.events("actor_start_unrecoverable");
    assert_eq!(escalated.len(), 1, "{log}");
    assert!(
        escalated[0].contains("actor=\"storage\"")
            && escalated[0].contains(&format!(
                "in use by another opcgw (pid {})",
                std::process::id()
            )),
        "{}",
        escalated[0]
    );
    assert!(
        daemon
            .lines()
            .iter()
            .any(|l| l.starts_with("error: database ")),
        "a plain error line for the service manager: {log}"
    );
}

#[test]
fn a_database_deleted_while_running_is_reported_and_recreated_with_new_samples() {
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml"))
        .unwrap();
    let workdir = Workdir::new(&demo);
    let simulator = format!("http://127.0.0.1:{}", crate::support::free_port());
    let mut daemon = Daemon::start_with(
        &workdir,
        "demo",
        &[
            ("OPCGW_CHIRPSTACK__SERVER_ADDRESS", simulator),
            ("OPCGW_WEB__ENABLED", "false".into()),
        ],
    );
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    let db = workdir.path().join("data/demo.redb");
    let created = daemon.wait_for_events("storage_created", 1, Duration::from_secs(10));
    assert_eq!(created.len(), 1);

    std::thread::sleep(Duration::from_secs(2));
    let deleted_at = opcgw::model::Timestamp::now();
    std::fs::remove_file(&db).unwrap();

    let gone = daemon.wait_for_events("storage_file_gone", 1, Duration::from_secs(30));
    assert!(
        gone[0].contains("ERROR")
            && gone[0].contains("demo.redb")
            && gone[0].contains("was deleted")
            && gone[0].contains("Restore a backup"),
        "{}",
        gone[0]
    );
    daemon.wait_for_events("storage_created", 2, Duration::from_secs(10));
    assert!(db.exists(), "the database was recreated");
    // New samples land in the new file (the poller replays what storage refused meanwhile).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, stdout, _) = run_to_end(
            workdir.path(),
            &["ctl", "--config", "config.toml", "--json", "status"],
            &[],
        );
        let rows = serde_json::from_str::<serde_json::Value>(&stdout)
            .ok()
            .and_then(|status| status["storage"]["history_rows"].as_u64());
        if rows.is_some_and(|rows| rows > 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rows in the new file: {stdout}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code(), Some(0));

    let store = opcgw::storage::Store::open(&db).expect("the recreated database opens");
    let latest = store.latest(None).unwrap();
    assert!(
        latest.iter().any(|l| l.received_time > deleted_at),
        "no sample received after the deletion: {latest:?}"
    );
    assert!(store.counts().unwrap().history_rows > 0);
}

/// `[logging].format = "json"` (here from the environment): every line on stderr and in the
/// log file is one JSON object, with `event` and the event's fields at the top level; a failed
/// OPC UA login carries the client's address.
#[test]
fn json_logs_are_one_object_a_line_with_the_event_and_its_fields_at_the_top() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let mut daemon = Daemon::start(
        &workdir,
        &[
            ("OPCGW_LOGGING__FORMAT", "json".into()),
            ("OPCGW_LOG_LEVEL", "info".into()),
        ],
    );
    let listening = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("\"event\":\"opcua_listening\""))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !listening(&daemon.lines()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no opcua_listening: {:#?}",
            daemon.lines()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let refused = crate::ua_client::connect(
            workdir.opcua_port(),
            ua::crypto::SecurityPolicy::None,
            ua::types::MessageSecurityMode::None,
            crate::ua_client::USER,
            "a-wrong-password-1234",
        )
        .await;
        assert!(refused.is_err());
    });
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));

    let file = std::fs::read_to_string(workdir.path().join("log/opcgw.log")).unwrap();
    for (origin, lines) in [
        ("stderr", daemon.lines()),
        ("file", file.lines().map(String::from).collect()),
    ] {
        assert!(lines.len() > 5, "{origin}: {lines:#?}");
        let objects: Vec<serde_json::Map<String, serde_json::Value>> = lines
            .iter()
            .map(|line| match serde_json::from_str(line) {
                Ok(serde_json::Value::Object(object)) => object,
                _ => panic!("{origin}: not a JSON object: {line}"),
            })
            .collect();
        for object in &objects {
            for key in ["timestamp", "level", "target"] {
                assert!(object.contains_key(key), "{origin}: no {key}: {object:?}");
            }
        }
        let failed = objects
            .iter()
            .find(|o| o.get("event").and_then(|e| e.as_str()) == Some("opcua_auth_failed"))
            .unwrap_or_else(|| panic!("{origin}: no opcua_auth_failed in {lines:#?}"));
        assert_eq!(failed["source"], "127.0.0.1", "{failed:?}");
        assert_eq!(failed["level"], "WARN");
        assert_eq!(failed["user"], crate::ua_client::USER);
        assert!(
            !lines.iter().any(|l| l.contains("a-wrong-password")),
            "{origin}: the password"
        );
    }
}
