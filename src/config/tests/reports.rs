//! How problems are reported: unknown keys, wrong types, broken files, the rendered config.

use super::*;

#[test]
fn unknown_keys_are_all_reported_with_their_source() {
    let toml = BASE.replace("[opcua]", "[opcua]\nmax_conections = 5\nhost_prot = 1")
        + "\n[webb]\nport = 1\n"
        + "    [[application.device.read_metric]]\n    metric_name = \"X\"\n    chirpstack_metric_name = \"x\"\n    metric_type = \"Int\"\n    unit = \"cm\"\n";
    let found = problems(load_with(
        &toml,
        &[
            ("OPCGW_STORAGE__RETENTON_DAYS", "30"),
            ("OPCGW_METRICS__ENABELD", "true"),
        ],
    ));
    for key in [
        "opcua.max_conections",
        "opcua.host_prot",
        "webb",
        "storage.retenton_days",
        // Every section is checked, [metrics] included.
        "metrics.enabeld",
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
