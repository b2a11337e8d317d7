//! SIGHUP on the real binary: hot, restart-required and malformed reloads.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::binary_config::{all_files_text, broken_secret_configs, line_of, LEAKY};
use crate::support::{run_to_end, Daemon, Workdir, MINIMAL_CONFIG};

const WAIT: Duration = Duration::from_secs(10);

fn outcomes(daemon: &Daemon) -> usize {
    daemon.events("config_reload_succeeded").len() + daemon.events("config_reload_failed").len()
}

/// Sends SIGHUP and waits for reload number `n` (1-based) to report its outcome.
fn reload(daemon: &Daemon, n: usize) -> String {
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_events("config_reload_attempted", n, WAIT);
    let deadline = std::time::Instant::now() + WAIT;
    while outcomes(daemon) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no outcome for reload {n}:\n{}",
            daemon.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut lines: Vec<String> = daemon
        .lines()
        .into_iter()
        .filter(|l| {
            l.contains("event=\"config_reload_succeeded\"")
                || l.contains("event=\"config_reload_failed\"")
        })
        .collect();
    lines.remove(n - 1)
}

#[test]
fn sighup_applies_hot_changes_and_keeps_the_old_config_on_any_failure() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));

    // Hot: polling_frequency.
    workdir
        .write_config(&MINIMAL_CONFIG.replace("polling_frequency = 10", "polling_frequency = 30"));
    let line = reload(&daemon, 1);
    assert!(line.contains("event=\"config_reload_succeeded\""), "{line}");
    assert!(
        line.contains("trigger=\"sighup\"") && line.contains("changed_section_count=1"),
        "{line}"
    );
    assert!(
        line.contains("includes_topology_change=false")
            && line.contains("duration_ms=")
            && line.contains("generation=1"),
        "{line}"
    );

    // Restart-required: opcua.host_port.
    workdir.write_config(
        &MINIMAL_CONFIG
            .replace("polling_frequency = 10", "polling_frequency = 30")
            .replace("4840", "4841"),
    );
    let line = reload(&daemon, 2);
    assert!(line.contains("event=\"config_reload_failed\""), "{line}");
    assert!(
        line.contains("reason=\"restart_required\"")
            && line.contains("changed_knob=\"opcua.host_port\""),
        "{line}"
    );

    // Malformed TOML.
    workdir.write_config("[chirpstack\npolling_frequency = = 3\n");
    let line = reload(&daemon, 3);
    assert!(line.contains("reason=\"validation\""), "{line}");

    // Validation failure.
    workdir
        .write_config(&MINIMAL_CONFIG.replace("polling_frequency = 10", "polling_frequency = 0"));
    let line = reload(&daemon, 4);
    assert!(
        line.contains("reason=\"validation\"") && line.contains("chirpstack.polling_frequency"),
        "{line}"
    );

    // Missing file.
    std::fs::remove_file(&workdir.config).unwrap();
    let line = reload(&daemon, 5);
    assert!(line.contains("reason=\"io\""), "{line}");

    // The live config is still generation 1 (polling 30): the same file again changes nothing,
    // and a new hot change becomes generation 2.
    workdir
        .write_config(&MINIMAL_CONFIG.replace("polling_frequency = 10", "polling_frequency = 30"));
    let line = reload(&daemon, 6);
    assert!(
        line.contains("changed_section_count=0") && line.contains("generation=1"),
        "{line}"
    );
    workdir
        .write_config(&MINIMAL_CONFIG.replace("polling_frequency = 10", "polling_frequency = 45"));
    let line = reload(&daemon, 7);
    assert!(
        line.contains("changed_section_count=1") && line.contains("generation=2"),
        "{line}"
    );

    // A topology change is applied and flagged.
    let with_device = format!(
        "{}\n  [[application.device]]\n  device_name = \"Pump\"\n  device_id = \"0000000000000002\"\n",
        MINIMAL_CONFIG.replace("polling_frequency = 10", "polling_frequency = 45")
    );
    workdir.write_config(&with_device);
    let line = reload(&daemon, 8);
    assert!(
        line.contains("includes_topology_change=true") && line.contains("generation=3"),
        "{line}"
    );
    assert_eq!(daemon.events("topology_change_detected").len(), 1);

    daemon.signal(Signal::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(10)).code(),
        Some(0),
        "the daemon survived every reload"
    );
    // Every reload: one attempt, exactly one outcome (counted once every line is in).
    assert_eq!(daemon.events("config_reload_attempted").len(), 8);
    assert_eq!(outcomes(&daemon), 8);
}

#[test]
fn a_reloaded_log_level_applies_at_once() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    // Without the OPCGW_LOG_LEVEL pin, logging.level is a hot knob.
    let mut daemon = Daemon::start(&workdir, &[("OPCGW_LOG_LEVEL", String::new())]);
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));
    workdir.write_config(&format!("[logging]\nlevel = \"warn\"\n{MINIMAL_CONFIG}"));
    let line = reload(&daemon, 1);
    assert!(line.contains("event=\"config_reload_succeeded\""), "{line}");
    // The new level applies right after the outcome is logged. The reload actor handles one
    // reload at a time, so the outcome of a second, failing reload (a warning) proves the level
    // was applied; its attempt (info) must not have been logged.
    workdir.write_config("[logging]\nlevel = \"warn\"\n[chirpstack\n");
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_events("config_reload_failed", 1, WAIT);
    assert_eq!(
        daemon.events("config_reload_attempted").len(),
        1,
        "the second attempt was logged at info after level=warn"
    );
    daemon.signal(Signal::SIGTERM);
    daemon.wait_exit(Duration::from_secs(10));
    assert!(
        daemon.events("gateway_stopped").is_empty(),
        "info events still logged after level=warn"
    );
}

#[test]
fn a_broken_secret_line_is_named_never_quoted_by_sighup_and_ctl_reload() {
    let control = "[control]\nsocket_path = \"run/ctl.sock\"\ntoken_file = \"run/ctl.token\"\n";
    let config = MINIMAL_CONFIG.replace("[opcua]", &format!("{control}\n[opcua]"));
    let workdir = Workdir::new(&config);
    // `ctl` reads the socket and token from its own file: the daemon's may be the broken one.
    std::fs::write(workdir.path().join("ctl.toml"), control).unwrap();
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("control_socket_listening", 1, Duration::from_secs(20));
    let ctl = |config: &str| {
        run_to_end(
            workdir.path(),
            &["ctl", "--config", config, "--json", "reload"],
            &[],
        )
    };
    let leaks = [LEAKY, "81726354453627189"];
    let mut attempts = 0;
    for (broken, key, needle) in broken_secret_configs(&config) {
        workdir.write_config(&broken);
        let line = line_of(&broken, needle);

        attempts += 1;
        let logged = reload(&daemon, attempts);
        assert!(
            logged.contains("event=\"config_reload_failed\"")
                && logged.contains("reason=\"validation\"")
                && logged.contains(key)
                && logged.contains(&line),
            "SIGHUP: {key} at {line} not named: {logged}"
        );

        let (status, stdout, stderr) = ctl("ctl.toml");
        attempts += 1;
        assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
        let outcome: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let error = outcome["error"].as_str().unwrap_or_default();
        assert!(
            outcome["reason"] == "validation" && error.contains(key) && error.contains(&line),
            "ctl reload: {key} at {line} not named: {outcome}"
        );
        for leak in leaks {
            assert!(
                !stdout.contains(leak) && !stderr.contains(leak),
                "ctl leaked: {stdout}{stderr}"
            );
        }
        // `ctl` pointed at the broken file itself refuses it, without quoting it either.
        let (status, stdout, stderr) = ctl("config.toml");
        assert_ne!(status.code(), Some(0));
        if serde_json::from_str::<serde_json::Value>(&stdout).is_ok() {
            // Its [control] section was readable: the daemon got the reload and refused it.
            attempts += 1;
        }
        for leak in leaks {
            assert!(
                !stdout.contains(leak) && !stderr.contains(leak),
                "ctl leaked: {stderr}"
            );
        }
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(WAIT).code(), Some(0));
    assert_eq!(
        daemon.events("config_reload_failed").len(),
        attempts,
        "every reload refused"
    );
    let stderr = daemon.lines().join("\n");
    let files = all_files_text(&workdir.path().join("log"));
    assert!(
        files.contains("config_reload_failed"),
        "the log file holds the reloads"
    );
    for leak in leaks {
        assert!(!stderr.contains(leak), "stderr leaked {leak}:\n{stderr}");
        assert!(
            !files.contains(leak),
            "the log file leaked {leak}:\n{files}"
        );
    }
}

#[test]
fn sighup_reads_the_included_files_again() {
    let config = format!("include = [\"conf.d/*.toml\"]\n{MINIMAL_CONFIG}");
    let workdir = Workdir::new(&config);
    std::fs::create_dir_all(workdir.path().join("conf.d")).unwrap();
    let mut daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("gateway_started", 1, Duration::from_secs(20));

    // A new file with an application (on a template it defines): a live topology change.
    std::fs::write(
        workdir.path().join("conf.d/north.toml"),
        "[[device_template]]\nname = \"meter\"\n\n  [[device_template.read_metric]]\n  \
         metric_name = \"Flow\"\n  chirpstack_metric_name = \"flow\"\n  metric_type = \"Float\"\n\n\
         [[application]]\napplication_name = \"North\"\napplication_id = \"app-north\"\n\n  \
         [[application.device]]\n  device_name = \"Meter\"\n  device_id = \"00000000000000d1\"\n  \
         template = \"meter\"\n",
    )
    .unwrap();
    let line = reload(&daemon, 1);
    assert!(
        line.contains("event=\"config_reload_succeeded\"")
            && line.contains("includes_topology_change=true"),
        "{line}"
    );
    // A broken included file: refused, naming it; the running configuration stays.
    std::fs::write(
        workdir.path().join("conf.d/south.toml"),
        "[opcua]\nhost_port = 4841\n",
    )
    .unwrap();
    let line = reload(&daemon, 2);
    assert!(
        line.contains("event=\"config_reload_failed\"") && line.contains("south.toml"),
        "{line}"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
