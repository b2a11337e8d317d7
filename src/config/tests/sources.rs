//! Loading, the env overlay and where secrets come from (inline, env, files).

use super::*;

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

/// BASE with a second application of two devices.
fn two_applications() -> String {
    format!(
        r#"{BASE}
[[application]]
application_name = "Power"
application_id = "app-2"

  [[application.device]]
  device_name = "Meter A"
  device_id = "0000000000000002"

  [[application.device]]
  device_name = "Meter B"
  device_id = "0000000000000003"
"#
    )
}

#[test]
fn indexed_variables_override_entries_of_the_lists_in_the_file() {
    let config = load_with(
        &two_applications(),
        &[
            ("OPCGW_APPLICATION__0__APPLICATION_NAME", "Water (env)"),
            (
                "OPCGW_APPLICATION__1__DEVICE__1__DEVICE_NAME",
                "Meter B (env)",
            ),
            (
                "OPCGW_APPLICATION__1__DEVICE__1__STALE_THRESHOLD_SECONDS",
                "900",
            ),
            (
                "OPCGW_APPLICATION__0__DEVICE__0__READ_METRIC__0__METRIC_UNIT",
                "mm",
            ),
            // An id of digits stays a string where the file has a string.
            ("OPCGW_APPLICATION__1__APPLICATION_ID", "42"),
            ("OPCGW_CHIRPSTACK__POLLING_FREQUENCY", "30"),
        ],
    )
    .unwrap()
    .config;
    let [water, power] = &config.applications[..] else {
        panic!(
            "expected the file's two applications, got {:?}",
            config.applications
        );
    };
    assert_eq!(water.application_name, "Water (env)");
    assert_eq!(water.application_id, "app-1");
    assert_eq!(
        water.devices[0].metrics[0].metric_unit.as_deref(),
        Some("mm")
    );
    assert_eq!(water.devices[0].metrics[0].metric_name, "Level");
    assert_eq!(water.devices[0].commands[0].command_name, "Valve");
    assert_eq!(power.application_name, "Power");
    assert_eq!(power.application_id, "42");
    assert_eq!(power.devices[0].device_name, "Meter A");
    assert_eq!(power.devices[1].device_name, "Meter B (env)");
    assert_eq!(power.devices[1].device_id, "0000000000000003");
    assert_eq!(power.devices[1].stale_threshold_seconds, Some(900));
    assert_eq!(config.chirpstack.polling_frequency, 30);
}

#[test]
fn an_indexed_variable_naming_an_entry_the_file_lacks_is_refused_with_the_index() {
    let found = problems(load_with(
        &two_applications(),
        &[
            ("OPCGW_APPLICATION__2__APPLICATION_NAME", "Gas"),
            ("OPCGW_APPLICATION__1__DEVICE__5__DEVICE_NAME", "Meter F"),
            (
                "OPCGW_APPLICATION__0__DEVICE__0__COMMAND__1__COMMAND_PORT",
                "9",
            ),
            ("OPCGW_APPLICATION__FIRST__APPLICATION_NAME", "x"),
        ],
    ));
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    let expect = [
        (
            "application[2]",
            "OPCGW_APPLICATION__2__APPLICATION_NAME names application[2], which does not exist: \
             the file has 2 application entries, [0] to [1]",
        ),
        (
            "application[1].device[5]",
            "OPCGW_APPLICATION__1__DEVICE__5__DEVICE_NAME names application[1].device[5], which \
             does not exist: the file has 2 application[1].device entries, [0] to [1]",
        ),
        (
            "application[0].device[0].command[1]",
            "the file has one application[0].device[0].command entry, [0]",
        ),
        (
            "application",
            "OPCGW_APPLICATION__FIRST__APPLICATION_NAME does not name a position in application \
             (expected a number: OPCGW_APPLICATION__0__...",
        ),
    ];
    for (key, message) in expect {
        assert!(
            found
                .iter()
                .any(|p| p.key == key && p.message.contains(message)),
            "no problem at {key} saying {message:?} in {text:#?}"
        );
    }
    assert_eq!(found.len(), 4, "{text:#?}");
}

#[test]
fn an_indexed_variable_without_any_entry_in_the_file_says_so() {
    let without_applications = &BASE[..BASE.find("[[application]]").unwrap()];
    let found = problems(load_with(
        without_applications,
        &[("OPCGW_APPLICATION__0__APPLICATION_NAME", "Water")],
    ));
    assert!(
        found.iter().any(|p| p.key == "application[0]"
            && p.message.contains("the file has no application entries")),
        "{found:#?}"
    );
    assert_eq!(found.len(), 1, "that problem only: {found:#?}");
}

#[test]
fn a_mistyped_indexed_variable_is_reported_at_its_key_from_the_variable() {
    let found = problems(load_with(
        &two_applications(),
        &[(
            "OPCGW_APPLICATION__1__DEVICE__0__STALE_THRESHOLD_SECONDS",
            "soon",
        )],
    ));
    assert!(
        found.iter().any(
            |p| p.key == "application[1].device[0].stale_threshold_seconds"
                && p.message
                    .contains("(from OPCGW_APPLICATION__1__DEVICE__0__STALE_THRESHOLD_SECONDS)")
        ),
        "{found:#?}"
    );
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
