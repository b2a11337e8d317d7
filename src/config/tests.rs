//! Scenario tests of the configuration contract: load, env overlay, secrets, validation.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

const BASE: &str = r#"
[chirpstack]
server_address = "http://127.0.0.1:8080"
api_token = "test-token-4c8e1f9a"
tenant_id = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"

[opcua]
user_password = "test-password"

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
    metric_unit = "cm"

    [[application.device.command]]
    command_name = "Valve"
    command_id = 1
    command_port = 10
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write_config(toml: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    Fixture { _dir: dir, path }
}

fn load_with(toml: &str, env: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    let fixture = write_config(toml);
    load(&fixture.path, &EnvSnapshot::from_pairs(env.iter().copied()))
}

fn problems(result: Result<LoadedConfig, ConfigError>) -> Vec<ConfigProblem> {
    match result {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
        Ok(_) => panic!("expected validation problems, the configuration loaded"),
    }
}

/// Asserts that replacing `from` by `to` in the base config yields a problem on `key`.
fn assert_rejected(from: &str, to: &str, key: &str) {
    assert!(BASE.contains(from), "fixture does not contain {from:?}");
    let found = problems(load_with(&BASE.replacen(from, to, 1), &[]));
    assert!(
        found.iter().any(|p| p.key == key),
        "{to:?}: expected a problem on {key}, got {found:#?}"
    );
}

/// Asserts that adding `line` to `section` yields a problem on `key`.
fn assert_knob_rejected(section: &str, line: &str, key: &str) {
    let header = format!("[{section}]");
    let toml = if BASE.contains(&header) {
        BASE.replacen(&header, &format!("{header}\n{line}"), 1)
    } else {
        format!("{header}\n{line}\n{BASE}")
    };
    let found = problems(load_with(&toml, &[]));
    assert!(
        found.iter().any(|p| p.key == key),
        "{line}: expected a problem on {key}, got {found:#?}"
    );
}

#[test]
fn the_base_fixture_loads_with_defaults_filled_in() {
    let loaded = load_with(BASE, &[]).unwrap();
    let config = loaded.config;
    assert_eq!(config.chirpstack.polling_frequency, 10);
    assert_eq!(config.opcua.host_port, 4840);
    assert_eq!(config.storage.retention_days, 7);
    assert_eq!(
        config.applications[0].devices[0].metrics[0].metric_type,
        MetricType::Float
    );
    assert_eq!(
        config.applications[0].devices[0].commands[0].command_type,
        MetricType::Int
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn env_beats_toml() {
    let config = load_with(
        BASE,
        &[
            ("OPCGW_CHIRPSTACK__POLLING_FREQUENCY", "42"),
            ("OPCGW_OPCUA__HOST_PORT", "4855"),
            ("OPCGW_WEB__BIND_ADDRESS", "127.0.0.1"),
            ("OPCGW_CHIRPSTACK__API_TOKEN", "from-env-7d2c9b1e"),
        ],
    )
    .unwrap()
    .config;
    assert_eq!(config.chirpstack.polling_frequency, 42);
    assert_eq!(config.opcua.host_port, 4855);
    assert_eq!(config.web.bind_address, "127.0.0.1");
    assert_eq!(config.chirpstack.api_token.expose(), "from-env-7d2c9b1e");
}

#[test]
fn a_numeric_looking_token_from_env_stays_a_string_secret() {
    let config = load_with(
        BASE,
        &[
            ("OPCGW_CHIRPSTACK__API_TOKEN", "0918273645546372"),
            ("OPCGW_OPCUA__USER_PASSWORD", "1e3000000007"),
            ("OPCGW_CONTROL__TOKEN", "1_000_000_000_000_007"),
        ],
    )
    .unwrap()
    .config;
    assert_eq!(config.chirpstack.api_token.expose(), "0918273645546372");
    assert_eq!(config.opcua.user_password.expose(), "1e3000000007");
    assert_eq!(config.control.token.expose(), "1_000_000_000_000_007");
}

#[test]
fn unrelated_opcgw_variables_are_not_config_keys() {
    // The bootstrap short forms and the config path variable must not be read as sections.
    load_with(
        BASE,
        &[
            ("OPCGW_LOG_LEVEL", "debug"),
            ("OPCGW_LOG_DIR", "/tmp"),
            ("OPCGW_CONFIG", "x"),
        ],
    )
    .unwrap();
}

#[test]
fn a_placeholder_secret_without_env_names_the_env_var_and_never_echoes_the_value() {
    let toml = BASE.replace(
        "api_token = \"test-token-4c8e1f9a\"",
        "api_token = \"REPLACE_ME_WITH_OPCGW_CHIRPSTACK__API_TOKEN_my-near-miss\"",
    );
    let err = load_with(&toml, &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("chirpstack.api_token"), "{text}");
    assert!(text.contains("OPCGW_CHIRPSTACK__API_TOKEN"), "{text}");
    assert!(!text.contains("my-near-miss"), "the value leaked: {text}");
    // The env var beats the placeholder.
    load_with(
        &toml,
        &[("OPCGW_CHIRPSTACK__API_TOKEN", "real-token-5b9e2a71")],
    )
    .unwrap();
}

#[test]
fn placeholder_password_and_control_token_are_rejected() {
    let toml = BASE.replace(
        "user_password = \"test-password\"",
        "user_password = \"REPLACE_ME_WITH_OPCGW_OPCUA__USER_PASSWORD_ENV_VAR\"",
    );
    let found = problems(load_with(&toml, &[]));
    assert!(found.iter().any(
        |p| p.key == "opcua.user_password" && p.message.contains("OPCGW_OPCUA__USER_PASSWORD")
    ));
    assert_knob_rejected(
        "control",
        "token = \"REPLACE_ME_WITH_OPCGW_CONTROL__TOKEN\"",
        "control.token",
    );
}

#[test]
fn a_token_that_cannot_travel_in_a_header_is_rejected_without_echo() {
    let found = problems(load_with(
        BASE,
        &[("OPCGW_CHIRPSTACK__API_TOKEN", "abc def\u{7}tok")],
    ));
    let problem = found
        .iter()
        .find(|p| p.key == "chirpstack.api_token")
        .expect("token problem");
    assert!(!problem.message.contains("abc def"), "{problem}");
}

#[test]
fn missing_secrets_are_required() {
    let toml = BASE
        .replace("api_token = \"test-token-4c8e1f9a\"", "")
        .replace("user_password = \"test-password\"", "");
    let found = problems(load_with(&toml, &[]));
    for key in ["chirpstack.api_token", "opcua.user_password"] {
        let problem = found
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{key}: {found:?}"));
        assert!(problem.message.contains(&env_var_for(key)), "{problem}");
    }
}

#[test]
fn secrets_are_absent_from_debug_and_the_rendered_config() {
    let config = load_with(BASE, &[("OPCGW_CONTROL__TOKEN", "ctl-secret-value")])
        .unwrap()
        .config;
    for rendered in [
        format!("{config:?}"),
        format!("{config:#?}"),
        config.to_redacted_toml(),
    ] {
        for secret in ["test-token-4c8e1f9a", "test-password", "ctl-secret-value"] {
            assert!(
                !rendered.contains(secret),
                "{secret} leaked into:\n{rendered}"
            );
        }
        assert!(rendered.contains(REDACTED));
    }
}

#[test]
fn a_secret_file_is_read_when_owner_only_and_refused_when_0644() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "file-token-83a1c6d2\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let toml = BASE.replace(
        "api_token = \"test-token-4c8e1f9a\"",
        &format!("api_token_file = \"{}\"", token.display()),
    );
    assert_eq!(
        load_with(&toml, &[])
            .unwrap()
            .config
            .chirpstack
            .api_token
            .expose(),
        "file-token-83a1c6d2"
    );

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let found = problems(load_with(&toml, &[]));
    let problem = found
        .iter()
        .find(|p| p.key == "chirpstack.api_token_file")
        .expect("file problem");
    assert!(
        problem.message.contains("0644") && problem.message.contains("chmod 600"),
        "{problem}"
    );
    assert!(!problem.message.contains("file-token"));
}

#[test]
fn a_secret_set_both_inline_and_as_file_is_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "pw").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let toml = BASE.replace(
        "user_password = \"test-password\"",
        &format!(
            "user_password = \"inline\"\nuser_password_file = \"{}\"",
            file.display()
        ),
    );
    let found = problems(load_with(&toml, &[]));
    assert!(
        found
            .iter()
            .any(|p| p.key == "opcua.user_password" && p.message.contains("not both")),
        "{found:?}"
    );
}

#[test]
fn the_control_token_file_is_left_to_the_control_socket() {
    // A token the daemon generated into its token file must not read as a config change.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("control.token");
    std::fs::write(&file, "abc123").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let toml = format!("{BASE}\n[control]\ntoken_file = \"{}\"\n", file.display());
    assert!(load_with(&toml, &[])
        .unwrap()
        .config
        .control
        .token
        .is_empty());
    let env = load_with(
        &toml,
        &[("OPCGW_CONTROL__TOKEN", "from-env-control-7d2c9b1e")],
    )
    .unwrap()
    .config;
    assert_eq!(env.control.token.expose(), "from-env-control-7d2c9b1e");
}

#[test]
fn every_range_rule_rejects_its_bad_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "chirpstack",
            "polling_frequency = 0",
            "chirpstack.polling_frequency",
        ),
        ("chirpstack", "retry = 0", "chirpstack.retry"),
        ("chirpstack", "delay = 0", "chirpstack.delay"),
        (
            "chirpstack",
            "list_page_size = 0",
            "chirpstack.list_page_size",
        ),
        (
            "chirpstack",
            "list_page_size = 1001",
            "chirpstack.list_page_size",
        ),
        ("opcua", "max_connections = 0", "opcua.max_connections"),
        (
            "opcua",
            "max_tcp_connections = 0",
            "opcua.max_tcp_connections",
        ),
        (
            "opcua",
            "max_tcp_connections = 9",
            "opcua.max_tcp_connections",
        ),
        (
            "opcua",
            "max_tcp_connections_per_address = 0",
            "opcua.max_tcp_connections_per_address",
        ),
        (
            "opcua",
            "max_tcp_connections_per_address = 101",
            "opcua.max_tcp_connections_per_address",
        ),
        (
            "opcua",
            "max_rejected_certificates = 0",
            "opcua.max_rejected_certificates",
        ),
        (
            "opcua",
            "rejected_certificates_per_minute = 0",
            "opcua.rejected_certificates_per_minute",
        ),
        ("logging", "max_files = 0", "logging.max_files"),
        (
            "logging",
            "max_file_size_mb = 0",
            "logging.max_file_size_mb",
        ),
        ("opcua", "max_connections = 4097", "opcua.max_connections"),
        (
            "opcua",
            "max_subscriptions_per_session = 0",
            "opcua.max_subscriptions_per_session",
        ),
        (
            "opcua",
            "max_subscriptions_per_session = 1001",
            "opcua.max_subscriptions_per_session",
        ),
        (
            "opcua",
            "max_monitored_items_per_sub = 0",
            "opcua.max_monitored_items_per_sub",
        ),
        (
            "opcua",
            "max_monitored_items_per_sub = 100001",
            "opcua.max_monitored_items_per_sub",
        ),
        ("opcua", "max_message_size = 0", "opcua.max_message_size"),
        (
            "opcua",
            "max_message_size = 268431361",
            "opcua.max_message_size",
        ),
        ("opcua", "max_chunk_count = 0", "opcua.max_chunk_count"),
        ("opcua", "max_chunk_count = 4097", "opcua.max_chunk_count"),
        (
            "opcua",
            "max_history_data_results_per_node = 0",
            "opcua.max_history_data_results_per_node",
        ),
        (
            "opcua",
            "max_history_data_results_per_node = 1000001",
            "opcua.max_history_data_results_per_node",
        ),
        ("opcua", "hello_timeout = 0", "opcua.hello_timeout"),
        ("opcua", "host_port = 0", "opcua.host_port"),
        (
            "opcua",
            "stale_threshold_seconds = 0",
            "opcua.stale_threshold_seconds",
        ),
        (
            "opcua",
            "stale_threshold_seconds = 86401",
            "opcua.stale_threshold_seconds",
        ),
        (
            "opcua",
            "bad_threshold_seconds = 60",
            "opcua.bad_threshold_seconds",
        ),
        ("web", "port = 0", "web.port"),
        ("web", "port = 1023", "web.port"),
        (
            "web",
            "session_idle_minutes = 0",
            "web.session_idle_minutes",
        ),
        (
            "web",
            "session_idle_minutes = 1441",
            "web.session_idle_minutes",
        ),
        ("web", "session_max_hours = 0", "web.session_max_hours"),
        ("web", "session_max_hours = 169", "web.session_max_hours"),
        ("web", "max_body_bytes = 1023", "web.max_body_bytes"),
        ("web", "max_body_bytes = 1048577", "web.max_body_bytes"),
        ("web", "max_connections = 0", "web.max_connections"),
        ("web", "max_connections = 10001", "web.max_connections"),
        (
            "web",
            "header_read_timeout_seconds = 0",
            "web.header_read_timeout_seconds",
        ),
        (
            "web",
            "header_read_timeout_seconds = 301",
            "web.header_read_timeout_seconds",
        ),
        ("storage", "retention_days = 6", "storage.retention_days"),
        ("storage", "retention_days = 366", "storage.retention_days"),
        // Limits against unauthenticated sessions and command floods.
        (
            "opcua",
            "session_activation_timeout_seconds = 0",
            "opcua.session_activation_timeout_seconds",
        ),
        (
            "opcua",
            "session_activation_timeout_seconds = 61",
            "opcua.session_activation_timeout_seconds",
        ),
        (
            "opcua",
            "max_command_writes_per_request = 0",
            "opcua.max_command_writes_per_request",
        ),
        (
            "opcua",
            "max_command_writes_per_request = 10001",
            "opcua.max_command_writes_per_request",
        ),
        (
            "storage",
            "max_queued_commands_per_device = 0",
            "storage.max_queued_commands_per_device",
        ),
        (
            "storage",
            "max_queued_commands_per_device = 10001",
            "storage.max_queued_commands_per_device",
        ),
        (
            "supervisor",
            "backoff_initial_ms = 0",
            "supervisor.backoff_initial_ms",
        ),
        (
            "supervisor",
            "backoff_initial_ms = 500\nbackoff_max_ms = 100",
            "supervisor.backoff_max_ms",
        ),
        (
            "supervisor",
            "healthy_reset_seconds = 0",
            "supervisor.healthy_reset_seconds",
        ),
        ("supervisor", "max_restarts = 0", "supervisor.max_restarts"),
        (
            "supervisor",
            "restart_window_seconds = 0",
            "supervisor.restart_window_seconds",
        ),
        (
            "supervisor",
            "start_timeout_seconds = 0",
            "supervisor.start_timeout_seconds",
        ),
        (
            "supervisor",
            "shutdown_timeout_seconds = 601",
            "supervisor.shutdown_timeout_seconds",
        ),
    ];
    for (section, line, key) in cases {
        assert_knob_rejected(section, line, key);
    }
}

#[test]
fn every_format_rule_rejects_its_bad_value() {
    let cases: &[(&str, &str, &str)] = &[
        ("logging", "level = \"loud\"", "logging.level"),
        ("logging", "level = \"opcgw=loud\"", "logging.level"),
        ("logging", "level = \"\"", "logging.level"),
        ("logging", "dir = \"\"", "logging.dir"),
        ("opcua", "application_name = \"\"", "opcua.application_name"),
        ("opcua", "application_uri = \" \"", "opcua.application_uri"),
        ("opcua", "product_uri = \"\"", "opcua.product_uri"),
        ("opcua", "host_ip_address = \"\"", "opcua.host_ip_address"),
        ("opcua", "user_name = \"\"", "opcua.user_name"),
        ("opcua", "user_name = \"bad\\nname\"", "opcua.user_name"),
        ("opcua", "pki_dir = \"\"", "opcua.pki_dir"),
        (
            "opcua",
            "certificate_path = \"/abs/cert.der\"",
            "opcua.certificate_path",
        ),
        ("opcua", "private_key_path = \"\"", "opcua.private_key_path"),
        ("opcua", "endpoints = []", "opcua.endpoints"),
        ("opcua", "endpoints = [\"basic128\"]", "opcua.endpoints"),
        (
            "opcua",
            "endpoints = [\"null\", \"null\"]",
            "opcua.endpoints",
        ),
        ("web", "bind_address = \"localhost:80\"", "web.bind_address"),
        ("web", "auth_realm = \"\"", "web.auth_realm"),
        ("web", "auth_realm = \"a\\\"b\"", "web.auth_realm"),
        ("web", "auth_realm = \"a\\\\b\"", "web.auth_realm"),
        ("web", "auth_realm = \" lead\"", "web.auth_realm"),
        ("web", "auth_realm = \"réalm\"", "web.auth_realm"),
        (
            "web",
            "auth_realm = \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
            "web.auth_realm",
        ),
        (
            "web",
            "allowed_origins = [\"http://gw.local:8080/path\"]",
            "web.allowed_origins",
        ),
        (
            "web",
            "allowed_origins = [\"gw.local\"]",
            "web.allowed_origins",
        ),
        ("storage", "database_path = \"\"", "storage.database_path"),
        ("control", "socket_path = \"\"", "control.socket_path"),
        (
            "control",
            &format!("socket_path = \"/{}\"", "s".repeat(120)),
            "control.socket_path",
        ),
        ("control", "token_file = \"\"", "control.token_file"),
        ("control", "socket_group = \" \"", "control.socket_group"),
    ];
    for (section, line, key) in cases {
        assert_knob_rejected(section, line, key);
    }
    assert_rejected(
        "server_address = \"http://127.0.0.1:8080\"",
        "server_address = \"127.0.0.1:8080\"",
        "chirpstack.server_address",
    );
    assert_rejected(
        "server_address = \"http://127.0.0.1:8080\"",
        "server_address = \"http://:8080\"",
        "chirpstack.server_address",
    );
    assert_rejected(
        "server_address = \"http://127.0.0.1:8080\"",
        "server_address = \"http://host:99999\"",
        "chirpstack.server_address",
    );
    assert_rejected(
        "tenant_id = \"52f14cd4-c6f1-4fbd-8f87-4025e1d49242\"",
        "tenant_id = \"not-a-uuid\"",
        "chirpstack.tenant_id",
    );
}

#[test]
fn every_topology_rule_rejects_its_bad_value() {
    let device =
        "  [[application.device]]\n  device_name = \"Tank\"\n  device_id = \"0000000000000001\"\n";
    let second_app = |id: &str, name: &str, dev_id: &str| {
        format!("{BASE}\n[[application]]\napplication_name = \"{name}\"\napplication_id = \"{id}\"\n  [[application.device]]\n  device_name = \"D\"\n  device_id = \"{dev_id}\"\n")
    };
    let cases: Vec<(String, &str)> = vec![
        (second_app("app-1", "Other", "dev-2"), "application[1].application_id"),
        (second_app("app-2", "Water", "dev-2"), "application[1].application_name"),
        (second_app("app-2", "Other", "0000000000000001"), "application[1].device[0].device_id"),
        (BASE.replace("application_id = \"app-1\"", "application_id = \"\""), "application[0].application_id"),
        (BASE.replace("application_name = \"Water\"", "application_name = \"\""), "application[0].application_name"),
        (BASE.replace("device_id = \"0000000000000001\"", "device_id = \"a/b\""), "application[0].device[0].device_id"),
        (BASE.replace("device_name = \"Tank\"", "device_name = \"\""), "application[0].device[0].device_name"),
        (BASE.replace("application_id = \"app-1\"", "application_id = \"a/b\""), "application[0].application_id"),
        (BASE.replace("application_id = \"app-1\"", "application_id = \"Gateway\""), "application[0].application_id"),
        (BASE.replace("device_id = \"0000000000000001\"", "device_id = \"Gateway\""), "application[0].device[0].device_id"),
        (BASE.replace("device_id = \"0000000000000001\"", "device_id = \"app-1\""), "application[0].device[0].device_id"),
        (BASE.replace("metric_name = \"Level\"", "metric_name = \"Level/EngineeringUnits\""), "application[0].device[0].read_metric[0].metric_name"),
        (BASE.replace("command_name = \"Valve\"", "command_name = \"Valve/x\""), "application[0].device[0].command[0].command_name"),
        (BASE.replacen(device, &format!("{device}  stale_threshold_seconds = 0\n"), 1), "application[0].device[0].stale_threshold_seconds"),
        (BASE.replacen(device, &format!("{device}  stale_threshold_seconds = 86400\n"), 1), "application[0].device[0].stale_threshold_seconds"),
        (format!("{BASE}\n  [[application.device]]\n  device_name = \"Tank\"\n  device_id = \"x2\"\n"), "application[0].device[1].device_name"),
        (
            format!("{BASE}\n    [[application.device.read_metric]]\n    metric_name = \"Level\"\n    chirpstack_metric_name = \"other\"\n    metric_type = \"Int\"\n"),
            "application[0].device[0].read_metric[1].metric_name",
        ),
        (
            format!("{BASE}\n    [[application.device.read_metric]]\n    metric_name = \"Level2\"\n    chirpstack_metric_name = \"level_cm\"\n    metric_type = \"Int\"\n"),
            "application[0].device[0].read_metric[1].chirpstack_metric_name",
        ),
        (BASE.replace("metric_name = \"Level\"", "metric_name = \"\""), "application[0].device[0].read_metric[0].metric_name"),
        (BASE.replace("chirpstack_metric_name = \"level_cm\"", "chirpstack_metric_name = \"\""), "application[0].device[0].read_metric[0].chirpstack_metric_name"),
        (BASE.replace("command_name = \"Valve\"", "command_name = \"Level\""), "application[0].device[0].command[0].command_name"),
        (BASE.replace("command_port = 10", "command_port = 0"), "application[0].device[0].command[0].command_port"),
        (BASE.replace("command_port = 10", "command_port = 224"), "application[0].device[0].command[0].command_port"),
        (BASE.replace("command_port = 10", "command_port = 10\n    command_min = 5.0\n    command_max = 1.0"), "application[0].device[0].command[0].command_min"),
        (BASE.replace("command_port = 10", "command_port = 10\n    command_type = \"Bool\"\n    command_max = 1.0"), "application[0].device[0].command[0].command_min"),
        (
            format!("{BASE}\n    [[application.device.command]]\n    command_name = \"Valve2\"\n    command_id = 1\n    command_port = 10\n"),
            "application[0].device[0].command[1].command_id",
        ),
    ];
    for (toml, key) in cases {
        let found = problems(load_with(&toml, &[]));
        assert!(
            found.iter().any(|p| p.key == key),
            "expected a problem on {key}, got {found:#?}"
        );
    }
}

#[test]
fn empty_applications_and_devices_are_warnings_not_errors() {
    let toml = BASE.split("[[application]]").next().unwrap().to_string();
    let loaded = load_with(&toml, &[]).unwrap();
    assert!(loaded.warnings.iter().any(|w| w.key == "application"));
    let toml =
        format!("{toml}\n[[application]]\napplication_name = \"E\"\napplication_id = \"e\"\n");
    let loaded = load_with(&toml, &[]).unwrap();
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.key == "application[0].device"));
}

#[test]
fn unknown_keys_are_all_reported_with_their_source() {
    let toml = BASE.replace("[opcua]", "[opcua]\nmax_conections = 5\nhost_prot = 1")
        + "\n[webb]\nport = 1\n"
        + "    [[application.device.read_metric]]\n    metric_name = \"X\"\n    chirpstack_metric_name = \"x\"\n    metric_type = \"Int\"\n    unit = \"cm\"\n";
    let found = problems(load_with(&toml, &[("OPCGW_STORAGE__RETENTON_DAYS", "30")]));
    for key in [
        "opcua.max_conections",
        "opcua.host_prot",
        "webb",
        "storage.retenton_days",
    ] {
        assert!(
            found.iter().any(|p| p.key == key),
            "{key} not reported: {found:#?}"
        );
    }
    assert!(
        found.iter().any(|p| p.key.ends_with("read_metric[1].unit")),
        "{found:#?}"
    );
    let env_problem = found
        .iter()
        .find(|p| p.key == "storage.retenton_days")
        .unwrap();
    assert!(
        env_problem.message.contains("OPCGW_STORAGE__RETENTON_DAYS"),
        "{env_problem}"
    );
    let file_problem = found
        .iter()
        .find(|p| p.key == "opcua.max_conections")
        .unwrap();
    assert!(
        file_problem.message.contains("config.toml"),
        "{file_problem}"
    );
}

#[test]
fn wrong_types_are_reported_per_section_with_their_source() {
    let toml = BASE.replace("[opcua]", "[opcua]\nhost_port = \"forty\"")
        + "\n[web]\nenabled = \"yes please\"\n";
    let found = problems(load_with(
        &toml,
        &[("OPCGW_STORAGE__RETENTION_DAYS", "many")],
    ));
    for key in ["opcua.host_port", "web.enabled", "storage.retention_days"] {
        assert!(
            found.iter().any(|p| p.key == key),
            "{key} not reported: {found:#?}"
        );
    }
    let env_problem = found
        .iter()
        .find(|p| p.key == "storage.retention_days")
        .unwrap();
    assert!(
        env_problem
            .message
            .contains("OPCGW_STORAGE__RETENTION_DAYS"),
        "{env_problem}"
    );
    let bad_type = BASE.replace("metric_type = \"Float\"", "metric_type = \"Double\"");
    let found = problems(load_with(&bad_type, &[]));
    assert!(
        found
            .iter()
            .any(|p| p.key.contains("metric_type") && p.message.contains("Float")),
        "{found:#?}"
    );
}

#[test]
fn garbage_truncated_and_missing_files_give_clear_errors() {
    let truncated = &BASE[..BASE.find("metric_type").unwrap() + 14];
    let found = problems(load_with(truncated, &[]));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found.iter().all(|p| !p.message.contains('\n')));

    let found = problems(load_with("\u{0}\u{1}garbage ]]] ===", &[]));
    assert_eq!(found.len(), 1, "{found:#?}");

    let dir = tempfile::tempdir().unwrap();
    let err = load(&dir.path().join("nope.toml"), &EnvSnapshot::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().contains("no such file"), "{err}");
    let err = load(dir.path(), &EnvSnapshot::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err}");
}

#[test]
fn the_rendered_config_loads_back_to_the_same_configuration() {
    let config = load_with(BASE, &[]).unwrap().config;
    let rendered = config.to_redacted_toml();
    let again = load_with(
        &rendered,
        &[
            ("OPCGW_CHIRPSTACK__API_TOKEN", "test-token-4c8e1f9a"),
            ("OPCGW_OPCUA__USER_PASSWORD", "test-password"),
        ],
    )
    .unwrap()
    .config;
    assert_eq!(again, config);
}

#[test]
fn diff_classifies_hot_restart_required_and_topology_changes() {
    let old = load_with(BASE, &[]).unwrap().config;
    let mut new = old.clone();
    new.chirpstack.polling_frequency = 30;
    let diff = ConfigDiff::between(&old, &new);
    assert_eq!(
        diff.changes,
        vec![KnobChange {
            key: "chirpstack.polling_frequency".into(),
            class: KnobClass::Hot
        }]
    );
    assert!(diff.first_restart_required().is_none());

    new.opcua.host_port = 4841;
    new.opcua.user_password = Secret::new("rotated");
    let diff = ConfigDiff::between(&old, &new);
    assert_eq!(
        diff.first_restart_required().unwrap().key,
        "opcua.host_port"
    );
    assert!(diff.changed("opcua.user_password"));
    assert_eq!(
        diff.changed_sections().into_iter().collect::<Vec<_>>(),
        vec!["chirpstack", "opcua"]
    );

    let mut topo = old.clone();
    topo.applications[0].devices[0].metrics.clear();
    let mut extra = topo.applications[0].devices[0].clone();
    extra.device_id = "dev-new".into();
    topo.applications[0].devices.push(extra);
    let diff = ConfigDiff::between(&old, &topo);
    assert!(diff.changes.is_empty());
    assert_eq!(diff.topology.added_devices, vec!["dev-new"]);
    assert_eq!(diff.topology.modified_devices, vec!["0000000000000001"]);
    assert!(ConfigDiff::between(&old, &old).is_empty());
}

#[test]
fn every_knob_is_documented_in_the_example_config() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/config.example.toml"
    ))
    .unwrap();
    let mut config = load_with(BASE, &[]).unwrap().config;
    // Populate the optional knobs so they are listed too.
    config.chirpstack.api_token_file = Some("x".into());
    config.opcua.user_password_file = Some("x".into());
    config.web.static_dir = Some("x".into());
    config.control.socket_group = Some("x".into());
    config.applications[0].devices[0].stale_threshold_seconds = Some(1);
    config.applications[0].devices[0].commands[0].command_min = Some(1.0);
    config.applications[0].devices[0].commands[0].command_max = Some(1.0);
    let toml::Value::Table(root) = toml::Value::try_from(&config).unwrap() else {
        panic!()
    };
    let mut missing = Vec::new();
    fn walk(prefix: &str, value: &toml::Value, example: &str, missing: &mut Vec<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    if !example.contains(&format!("{key} ="))
                        && !value.is_table()
                        && !value.is_array()
                    {
                        missing.push(format!("{prefix}{key}"));
                    }
                    walk(&format!("{prefix}{key}."), value, example, missing);
                }
            }
            toml::Value::Array(items) => {
                items.iter().for_each(|v| walk(prefix, v, example, missing))
            }
            _ => {}
        }
    }
    walk("", &toml::Value::Table(root), &example, &mut missing);
    assert!(
        missing.is_empty(),
        "knobs missing from config/config.example.toml: {missing:?}"
    );
}

/// The "hot" row of the reload table in docs/configuration.md names exactly the knobs that
/// `classify_knob` treats as hot (a knob made hot must be documented as such, and back).
#[test]
fn the_hot_row_of_the_reload_docs_lists_exactly_the_hot_knobs() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let row = docs
        .lines()
        .find(|l| l.starts_with("| hot |"))
        .expect("the hot row of the reload table");
    let documented: std::collections::BTreeSet<&str> = row.split('`').skip(1).step_by(2).collect();
    let config = load_with(BASE, &[]).unwrap().config;
    let toml::Value::Table(root) = toml::Value::try_from(&config).unwrap() else {
        panic!()
    };
    let mut hot = std::collections::BTreeSet::new();
    for (section, table) in root.iter().filter(|(k, _)| *k != "application") {
        let keys: Vec<String> = match table {
            toml::Value::Table(t) => t.keys().map(|k| format!("{section}.{k}")).collect(),
            _ => vec![section.clone()],
        };
        hot.extend(
            keys.into_iter()
                .filter(|k| classify_knob(k) == KnobClass::Hot),
        );
    }
    let hot: std::collections::BTreeSet<&str> = hot.iter().map(String::as_str).collect();
    assert_eq!(documented, hot, "docs/configuration.md, hot row");
}

#[test]
fn the_shipped_config_files_hold_placeholders_only_and_load_with_env() {
    let root = env!("CARGO_MANIFEST_DIR");
    for name in ["config/config.toml", "config/config.example.toml"] {
        let path = std::path::Path::new(root).join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            if line.starts_with("api_token =") || line.starts_with("user_password =") {
                assert!(line.contains("REPLACE_ME_WITH_"), "{name}: {line}");
            }
        }
        let err = load(&path, &EnvSnapshot::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OPCGW_CHIRPSTACK__API_TOKEN")
                && err.contains("OPCGW_OPCUA__USER_PASSWORD"),
            "{err}"
        );
        let env = EnvSnapshot::from_pairs([
            ("OPCGW_CHIRPSTACK__API_TOKEN", "test-token-4c8e1f9a"),
            ("OPCGW_OPCUA__USER_PASSWORD", "test-password"),
        ]);
        load(&path, &env).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The text of every problem of a refused configuration.
fn error_text(toml: &str, env: &[(&str, &str)]) -> String {
    load_with(toml, env).unwrap_err().to_string()
}

/// "line N," for the 1-based line of `toml` that holds `needle`, as problems print it.
fn line_of(toml: &str, needle: &str) -> String {
    let index = toml
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the fixture"));
    format!("line {},", index + 1)
}

#[test]
fn no_config_error_quotes_a_secret_value() {
    const SECRET: &str = "Zx9-leaky-secret-value-41";
    let token_line = "api_token = \"test-token-4c8e1f9a\"";
    let password_line = "user_password = \"test-password\"";
    // (broken config, key named, text on the line named)
    let cases: Vec<(String, &str, &str)> = vec![
        // A missing closing quote: the parser's own error quotes the line.
        (
            BASE.replace(token_line, &format!("api_token = \"{SECRET}")),
            "chirpstack.api_token",
            "api_token",
        ),
        (
            BASE.replace(password_line, &format!("user_password = '{SECRET}")),
            "opcua.user_password",
            "user_password",
        ),
        // No quotes at all.
        (
            BASE.replace(password_line, &format!("user_password = {SECRET}")),
            "opcua.user_password",
            "user_password",
        ),
        // A number (or an array) where the string belongs: serde prints the value.
        (
            BASE.replace(token_line, "api_token = 12345678901234"),
            "chirpstack.api_token",
            "api_token",
        ),
        (
            BASE.replace(password_line, &format!("user_password = [\"{SECRET}\"]")),
            "opcua.user_password",
            "user_password",
        ),
        (
            format!("{BASE}\n[control]\ntoken = 98765432109876543\n"),
            "control.token",
            "token = 98765432109876543",
        ),
        // A misspelled secret key is unknown: named, never with its value.
        (
            BASE.replace(password_line, &format!("user_pasword = \"{SECRET}\"")),
            "opcua.user_pasword",
            "user_pasword",
        ),
        // The secret pasted under a non-secret key of another type.
        (
            BASE.replace("[opcua]", &format!("[opcua]\nhost_port = \"{SECRET}\"")),
            "opcua.host_port",
            "host_port",
        ),
    ];
    for (toml, key, needle) in &cases {
        let text = error_text(toml, &[]);
        for leak in [SECRET, "12345678901234", "98765432109876543", "leaky"] {
            assert!(!text.contains(leak), "leaked {leak}:\n{text}");
        }
        let line = line_of(toml, needle);
        assert!(
            text.contains(&format!("- {key}: ")) && text.contains(&line),
            "{key} at {line} not named:\n{text}"
        );
    }
    // From the environment: the variable is named, its value is not.
    let text = error_text(BASE, &[("OPCGW_OPCUA__HOST_PORT", SECRET)]);
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        text.contains("opcua.host_port") && text.contains("OPCGW_OPCUA__HOST_PORT"),
        "{text}"
    );
}

#[test]
fn every_type_error_of_the_file_is_reported_in_one_run_with_its_line() {
    let toml = BASE
        .replace(
            "[opcua]",
            "[opcua]\nhost_port = \"x\"\nallow_anonymous = \"no\"\nmax_connections = [1]",
        )
        .replace("[chirpstack]", "[chirpstack]\nretry = false")
        .replace("command_id = 1\n", "command_id = \"one\"\n");
    let found = problems(load_with(&toml, &[]));
    let expected = [
        ("chirpstack.retry", "retry ="),
        ("opcua.host_port", "host_port ="),
        ("opcua.allow_anonymous", "allow_anonymous ="),
        ("opcua.max_connections", "max_connections ="),
        (
            "application[0].device[0].command[0].command_id",
            "command_id =",
        ),
    ];
    for (key, needle) in expected {
        let problem = found
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{key} not reported: {found:#?}"));
        assert!(
            problem.message.starts_with("invalid type")
                && problem.message.contains(&line_of(&toml, needle)),
            "{problem}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn weak_secrets_are_refused_from_toml_env_and_file_without_echo() {
    let weak = [
        "changeme",
        "Password123!",
        "admin",
        "opcua-user",
        "aaaaaaaaaaaaaaaa",
        "123456789012",
        "short-1a",
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    for value in weak {
        // TOML.
        let toml = BASE.replace(
            "user_password = \"test-password\"",
            &format!("user_password = \"{value}\""),
        );
        let found = problems(load_with(&toml, &[]));
        let problem = found
            .iter()
            .find(|p| p.key == "opcua.user_password")
            .unwrap_or_else(|| panic!("{value} accepted: {found:#?}"));
        assert!(
            problem.message.contains("OPCGW_OPCUA__USER_PASSWORD")
                && problem.message.contains("at least 12 characters")
                && !problem.message.contains(value),
            "{problem}"
        );
        // Environment.
        let found = problems(load_with(BASE, &[("OPCGW_CHIRPSTACK__API_TOKEN", value)]));
        let problem = found
            .iter()
            .find(|p| p.key == "chirpstack.api_token")
            .unwrap_or_else(|| panic!("{value} accepted from env: {found:#?}"));
        assert!(
            problem.message.contains("OPCGW_CHIRPSTACK__API_TOKEN")
                && !problem.message.contains(value),
            "{problem}"
        );
        // File.
        std::fs::write(&file, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let toml = BASE.replace(
            "api_token = \"test-token-4c8e1f9a\"",
            &format!("api_token_file = \"{}\"", file.display()),
        );
        let found = problems(load_with(&toml, &[]));
        assert!(
            found.iter().any(|p| p.key == "chirpstack.api_token"),
            "{value} accepted from a file: {found:#?}"
        );
    }
    // The password equal to the user name, whatever the user name.
    let toml = BASE.replace(
        "user_password = \"test-password\"",
        "user_name = \"plant-operator\"\nuser_password = \"Plant-Operator\"",
    );
    let found = problems(load_with(&toml, &[]));
    assert!(
        found
            .iter()
            .any(|p| p.key == "opcua.user_password" && p.message.contains("user name")),
        "{found:#?}"
    );
    // The control token: the control socket's own floor of 16 characters, and no weak value.
    for value in ["6f1e2d3c4b5a69", "changemechangeme", "0000000000000000"] {
        let found = problems(load_with(BASE, &[("OPCGW_CONTROL__TOKEN", value)]));
        let problem = found
            .iter()
            .find(|p| p.key == "control.token")
            .unwrap_or_else(|| panic!("control token {value} accepted: {found:#?}"));
        assert!(
            problem.message.contains("OPCGW_CONTROL__TOKEN") && !problem.message.contains(value),
            "{problem}"
        );
    }
    load_with(BASE, &[("OPCGW_CONTROL__TOKEN", "6f1e2d3c4b5a6978")]).unwrap();
}

#[test]
fn non_finite_floats_are_refused_with_their_key() {
    for (line, key) in [
        ("command_min = nan", "command_min"),
        ("command_max = inf", "command_max"),
        ("command_min = -inf", "command_min"),
        ("command_max = -nan", "command_max"),
    ] {
        let toml = BASE.replace(
            "command_port = 10",
            &format!("command_port = 10\n    command_type = \"Float\"\n    {line}"),
        );
        let found = problems(load_with(&toml, &[]));
        let key = format!("application[0].device[0].command[0].{key}");
        assert!(
            found
                .iter()
                .any(|p| p.key == key && p.message.contains("finite")),
            "{line}: {found:#?}"
        );
    }
    let toml = BASE.replace(
        "command_port = 10",
        "command_port = 10\n    command_type = \"Float\"\n    command_min = -1.5e3\n    command_max = 2.5",
    );
    load_with(&toml, &[]).unwrap();
}

#[test]
fn a_credential_in_the_server_address_is_never_echoed() {
    for address in [
        "http://admin:Hunter2-pass@chirpstack:99999",
        "ftp://admin:Hunter2-pass@chirpstack:8080",
        "admin:Hunter2-pass@chirpstack:8080",
    ] {
        let toml = BASE.replace(
            "server_address = \"http://127.0.0.1:8080\"",
            &format!("server_address = \"{address}\""),
        );
        let text = error_text(&toml, &[]);
        assert!(text.contains("chirpstack.server_address"), "{text}");
        assert!(!text.contains("Hunter2"), "{text}");
    }
}
