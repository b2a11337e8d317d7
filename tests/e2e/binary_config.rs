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

/// "line N," for the 1-based line of `text` holding `needle`, as problems print it.
pub fn line_of(text: &str, needle: &str) -> String {
    let index = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the fixture"));
    format!("line {},", index + 1)
}

/// A secret that must never appear in any output.
pub const LEAKY: &str = "Leaky-Secret-Qv7x2m9";

/// Configurations whose secret line is broken, each with the key and the line text an error
/// must name: a missing closing quote (a syntax error, whose parser message quotes the line)
/// and a number where the string belongs (a type error, whose serde message prints the value).
pub fn broken_secret_configs(base: &str) -> Vec<(String, &'static str, &'static str)> {
    vec![
        (
            base.replace("[opcua]", &format!("[opcua]\nuser_password = \"{LEAKY}")),
            "opcua.user_password",
            "user_password =",
        ),
        (
            base.replace(
                "[chirpstack]",
                "[chirpstack]\napi_token = 81726354453627189",
            ),
            "chirpstack.api_token",
            "api_token =",
        ),
    ]
}

/// Every file under `dir` (recursively), as text.
pub fn all_files_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return text;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&all_files_text(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[test]
fn a_broken_secret_line_is_named_never_quoted_by_check_config_and_run() {
    for (config, key, needle) in broken_secret_configs(MINIMAL_CONFIG) {
        let workdir = Workdir::new(&config);
        let line = line_of(&config, needle);
        for command in ["check-config", "run"] {
            let (status, stdout, stderr) = run_to_end(
                workdir.path(),
                &[command, "--config", "config.toml"],
                &gateway_env(),
            );
            assert_eq!(status.code(), Some(1), "{command}: {stderr}");
            assert_clean_failure(&stderr);
            let files = all_files_text(&workdir.path().join("log"));
            for (what, text) in [("stdout", &stdout), ("stderr", &stderr), ("files", &files)] {
                for leak in [LEAKY, "81726354453627189"] {
                    assert!(
                        !text.contains(leak),
                        "{command} {what} leaked {leak}:\n{text}"
                    );
                }
            }
            assert!(
                stderr.contains(&format!("- {key}: ")) && stderr.contains(&line),
                "{command}: {key} at {line} not named:\n{stderr}"
            );
        }
    }
}

#[test]
fn check_config_reports_every_type_error_in_one_run() {
    let config = MINIMAL_CONFIG
        .replace(
            "polling_frequency = 10",
            "polling_frequency = \"often\"\nretry = true\ndelay = [1, 2]",
        )
        .replace(
            "host_port = 4840",
            "host_port = 4840\nmax_connections = \"ten\"",
        );
    let (code, _stdout, stderr) = check(&config, &gateway_env());
    assert_eq!(code, Some(1), "{stderr}");
    assert_clean_failure(&stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    assert_eq!(problems.len(), 4, "four problems expected:\n{stderr}");
    for (key, needle) in [
        ("chirpstack.polling_frequency", "polling_frequency ="),
        ("chirpstack.retry", "retry ="),
        ("chirpstack.delay", "delay ="),
        ("opcua.max_connections", "max_connections ="),
    ] {
        let line = line_of(&config, needle);
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("- {key}: invalid type")) && p.contains(&line)),
            "{key} at {line} missing:\n{stderr}"
        );
    }
}

#[test]
fn check_config_refuses_a_weak_secret_and_names_the_variable() {
    for (var, value, key) in [
        (
            "OPCGW_OPCUA__USER_PASSWORD",
            "changeme",
            "opcua.user_password",
        ),
        (
            "OPCGW_OPCUA__USER_PASSWORD",
            "opcua-user",
            "opcua.user_password",
        ),
        (
            "OPCGW_CHIRPSTACK__API_TOKEN",
            "Sh0rt-tok3n",
            "chirpstack.api_token",
        ),
        (
            "OPCGW_CONTROL__TOKEN",
            "aaaaaaaaaaaaaaaaaaaa",
            "control.token",
        ),
    ] {
        let mut env = gateway_env();
        env.retain(|(k, _)| *k != var);
        env.push((var, value.to_string()));
        let (code, stdout, stderr) = check(MINIMAL_CONFIG, &env);
        assert_eq!(code, Some(1), "{value} accepted: {stdout}");
        assert_clean_failure(&stderr);
        assert!(
            stderr.contains(&format!("- {key}: ")) && stderr.contains(var),
            "{stderr}"
        );
        assert!(
            !stderr.contains(value) && !stdout.contains(value),
            "{stderr}"
        );
    }
}

#[test]
fn check_config_expands_device_templates_and_names_an_unknown_one_with_its_line() {
    let templated = MINIMAL_CONFIG
        .replace(
            "[[application]]",
            "[[device_template]]\nname = \"tank\"\n\n  [[device_template.read_metric]]\n  \
             metric_name = \"Battery\"\n  chirpstack_metric_name = \"battery_mv\"\n  \
             metric_type = \"Int\"\n\n[[application]]",
        )
        .replace(
            "device_id = \"0000000000000001\"",
            "device_id = \"0000000000000001\"\n  template = \"tank\"",
        );
    let (code, stdout, stderr) = check(&templated, &gateway_env());
    assert_eq!(code, Some(0), "{stderr}");
    // The resolved configuration holds the device's own metric and the template's.
    assert!(
        stdout.contains("metric_name = \"Level\"") && stdout.contains("metric_name = \"Battery\""),
        "{stdout}"
    );
    let unknown = templated.replace("template = \"tank\"", "template = \"tnak\"");
    let (code, _, stderr) = check(&unknown, &gateway_env());
    assert_eq!(code, Some(1));
    assert_clean_failure(&stderr);
    let line = unknown
        .lines()
        .position(|l| l.contains("template = \"tnak\""))
        .unwrap()
        + 1;
    assert!(
        stderr.contains("application[0].device[0].template")
            && stderr.contains(&format!("line {line}"))
            && stderr.contains("templates: tank"),
        "{stderr}"
    );
}
