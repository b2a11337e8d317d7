//! Bad configuration on the real binary: clear one-line-per-problem errors, exit 1, no panic.

use crate::support::{gateway_env, run_to_end, Workdir, MINIMAL_CONFIG, TEST_PASSWORD, TEST_TOKEN};

fn check(config: &str, env: &[(&str, String)]) -> (Option<i32>, String, String) {
    let workdir = Workdir::new(config);
    let (status, stdout, stderr) = run_to_end(
        workdir.path(),
        &["check-config", "--config", "config.toml"],
        env,
    );
    (status.code(), stdout, stderr)
}

fn assert_clean_failure(stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}

#[test]
fn check_config_prints_the_resolved_config_without_secrets() {
    let (code, stdout, stderr) = check(MINIMAL_CONFIG, &gateway_env());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("polling_frequency = 10") && stdout.contains("***REDACTED***"),
        "{stdout}"
    );
    for secret in [TEST_TOKEN, TEST_PASSWORD] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "secret leaked"
        );
    }
}

#[test]
fn a_placeholder_without_env_names_the_variable_and_hides_the_value() {
    let config = MINIMAL_CONFIG.replace(
        "[opcua]",
        "[opcua]\nuser_password = \"REPLACE_ME_WITH_almost-my-password\"",
    );
    let env = vec![("OPCGW_CHIRPSTACK__API_TOKEN", TEST_TOKEN.to_string())];
    let (code, stdout, stderr) = check(&config, &env);
    assert_eq!(code, Some(1));
    assert_clean_failure(&stderr);
    assert!(
        stderr.contains("opcua.user_password") && stderr.contains("OPCGW_OPCUA__USER_PASSWORD"),
        "{stderr}"
    );
    assert!(!stderr.contains("almost-my-password") && !stdout.contains("almost-my-password"));
}

#[test]
fn garbage_truncated_unknown_and_mistyped_configs_fail_with_one_line_per_problem() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "garbage",
            "\u{1}\u{2}\u{3} not toml at all ]]]".into(),
            vec!["line 1"],
        ),
        (
            "truncated",
            MINIMAL_CONFIG[..MINIMAL_CONFIG.find("metric_type").unwrap() + 15].into(),
            vec!["line"],
        ),
        (
            "unknown keys",
            MINIMAL_CONFIG.replace("[opcua]", "[opcua]\nhots_port = 1\nmax_conections = 3")
                + "\n[nonsense]\nx = 1\n",
            vec![
                "opcua.hots_port: unknown key",
                "opcua.max_conections: unknown key",
                "nonsense: unknown section",
            ],
        ),
        (
            "wrong types",
            MINIMAL_CONFIG
                .replace("polling_frequency = 10", "polling_frequency = \"often\"")
                .replace("host_port = 4840", "host_port = 70000"),
            vec![
                "chirpstack.polling_frequency: invalid type",
                "opcua.host_port",
            ],
        ),
    ];
    for (name, config, expected) in cases {
        let (code, _stdout, stderr) = check(&config, &gateway_env());
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert_clean_failure(&stderr);
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| l.trim_start().starts_with("- "))
            .collect();
        assert_eq!(
            problems.len(),
            expected.len(),
            "{name}: one line per problem expected:\n{stderr}"
        );
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{name}: missing {needle:?} in:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_missing_config_file_is_a_clear_error_for_run_and_check_config() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    for command in ["check-config", "run"] {
        let (status, _stdout, stderr) = run_to_end(
            workdir.path(),
            &[command, "--config", "does/not/exist.toml"],
            &gateway_env(),
        );
        assert_eq!(status.code(), Some(1), "{command}: {stderr}");
        assert_clean_failure(&stderr);
        assert!(
            stderr.contains("does/not/exist.toml") && stderr.contains("no such file"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn run_refuses_an_invalid_config_before_starting_anything() {
    let workdir =
        Workdir::new(&MINIMAL_CONFIG.replace("polling_frequency = 10", "polling_frequency = 0"));
    let (status, _stdout, stderr) = run_to_end(
        workdir.path(),
        &["run", "--config", "config.toml"],
        &gateway_env(),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("chirpstack.polling_frequency: 0 is out of range; allowed 1-86400"),
        "{stderr}"
    );
    assert!(
        !workdir.path().join("log").exists(),
        "nothing is created for a refused config"
    );
}
