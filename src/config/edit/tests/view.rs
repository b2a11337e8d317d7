//! The console's view: every knob but the tree, its class, where it comes from; no secret.

use super::*;

fn setting<'a>(view: &'a ConfigView, key: &str) -> &'a SettingView {
    view.settings
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("{key} is not in the view"))
}

#[test]
fn every_knob_shows_its_class_and_source_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("opcua.password");
    std::fs::write(&password_file, "file-password-6e1c9d2b").unwrap();
    std::fs::set_permissions(
        &password_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let text = format!(
        "[opcua]\nhost_port = 4841\nuser_password_file = \"{}\"\n\n{ODD}",
        password_file.display()
    );
    let env = EnvSnapshot::from_pairs([
        ("OPCGW_CHIRPSTACK__API_TOKEN", TEST_TOKEN),
        ("OPCGW_CHIRPSTACK__POLLING_FREQUENCY", "5"),
    ]);
    let config = load_text(Path::new("config.toml"), text.clone(), &env)
        .unwrap()
        .config;
    let editing = editing_status(&dir.path().join("config.toml"));
    let view = describe(
        Path::new("/etc/opcgw/config.toml"),
        Some(&text),
        &config,
        &env,
        3,
        editing,
    );
    assert_eq!(view.generation, 3);
    assert_eq!(view.path, "/etc/opcgw/config.toml");
    assert!(!view.editing.enabled, "no such file: editing is off");

    let polling = setting(&view, "chirpstack.polling_frequency");
    assert_eq!(
        (polling.source, polling.class),
        (SettingSource::Env, crate::config::KnobClass::Hot)
    );
    assert_eq!(
        polling.from.as_deref(),
        Some("OPCGW_CHIRPSTACK__POLLING_FREQUENCY")
    );
    assert_eq!(polling.value, serde_json::json!(5));
    let port = setting(&view, "opcua.host_port");
    assert_eq!(
        (port.source, port.class),
        (
            SettingSource::File,
            crate::config::KnobClass::RestartRequired
        )
    );
    assert_eq!(port.value, serde_json::json!(4841));
    assert_eq!(
        setting(&view, "storage.retention_days").source,
        SettingSource::File
    );
    assert_eq!(
        setting(&view, "storage.database_path").source,
        SettingSource::Default
    );
    let token = setting(&view, "chirpstack.api_token");
    assert_eq!(token.source, SettingSource::Env);
    assert_eq!(token.value, serde_json::json!("***REDACTED***"));
    let password = setting(&view, "opcua.user_password");
    assert_eq!(password.source, SettingSource::SecretFile);
    assert_eq!(
        password.from.as_deref(),
        Some(password_file.to_str().unwrap())
    );
    assert_eq!(password.value, serde_json::json!("***REDACTED***"));
    assert_eq!(
        setting(&view, "web.static_dir").value,
        serde_json::Value::Null
    );
    assert!(view
        .settings
        .iter()
        .all(|s| !s.key.starts_with("application")));
    // Sections in file order: opcua first.
    assert!(
        view.settings[0].key.starts_with("opcua."),
        "{}",
        view.settings[0].key
    );
    let json = serde_json::to_string(&view).unwrap();
    assert!(!json.contains(TEST_TOKEN) && !json.contains("file-password-6e1c9d2b"));
    assert!(view.env_locked.is_empty());
}
