//! What a reload may change, and the docs and shipped files that must say the same.

use super::*;

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

    // Turning discovery on, or a template by device profile, modifies the application: the
    // reload is applied (and discovers), not taken for "unchanged".
    let mut discovering = old.clone();
    discovering.applications[0].discover = true;
    let diff = ConfigDiff::between(&old, &discovering);
    assert_eq!(diff.topology.modified_applications, vec!["app-1"]);
    let mut templated = discovering.clone();
    templated.applications[0]
        .templates
        .insert("profile".into(), "tank".into());
    assert!(ConfigDiff::between(&discovering, &templated).includes_topology_change());
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
