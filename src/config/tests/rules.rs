//! Every validation rule rejects its bad value; empty trees are warnings.

use super::*;

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
        ("storage", "cache_size_mb = 0", "storage.cache_size_mb"),
        ("storage", "cache_size_mb = 4097", "storage.cache_size_mb"),
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
