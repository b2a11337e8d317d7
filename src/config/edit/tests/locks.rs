//! What the environment sets in the application tree is not edited, nor shifted.

use super::*;

fn check(vars: &[(&str, &str)], edit: ConfigEdit) -> Result<(), EditError> {
    check_env_locks(&env_with(vars), &live(ODD), &edit)
}

fn rename(app: &str) -> ConfigEdit {
    ConfigEdit::UpdateApplication {
        application_id: app.into(),
        application_name: "Renamed".into(),
    }
}

fn update_device(app: &str, dev: &str) -> ConfigEdit {
    ConfigEdit::UpdateDevice {
        application_id: app.into(),
        device_id: dev.into(),
        device: DeviceUpdate {
            device_name: "Renamed".into(),
            stale_threshold_seconds: None,
            read_metric: vec![metric("Flow", "flow")],
        },
    }
}

#[test]
fn an_edit_of_what_a_variable_sets_is_refused_naming_the_variable() {
    let name = [("OPCGW_APPLICATION__0__APPLICATION_NAME", "Env name")];
    match check(&name, rename("app-1")) {
        Err(EditError::EnvOverride { variable, .. }) => {
            assert_eq!(variable, "OPCGW_APPLICATION__0__APPLICATION_NAME")
        }
        other => panic!("expected env_override, got {other:?}"),
    }
    // Other applications, and the devices of this one, stay editable.
    assert_eq!(check(&name, rename("app-2")), Ok(()));
    assert_eq!(check(&name, update_device("app-1", "dev-b")), Ok(()));

    let device_b = [("OPCGW_APPLICATION__0__DEVICE__1__DEVICE_NAME", "Env")];
    assert!(matches!(
        check(&device_b, update_device("app-1", "dev-b")),
        Err(EditError::EnvOverride { .. })
    ));
    assert_eq!(check(&device_b, update_device("app-1", "dev-a")), Ok(()));
    // Deleting device A would move device B's variable onto nothing: refused too.
    assert!(check(
        &device_b,
        ConfigEdit::DeleteDevice {
            application_id: "app-1".into(),
            device_id: "dev-a".into()
        }
    )
    .is_err());
    let whole_list = [("OPCGW_APPLICATION", "[]")];
    assert!(check(&whole_list, rename("app-2")).is_err());
}

#[test]
fn deleting_or_creating_at_a_position_a_variable_names_is_refused() {
    let second = [("OPCGW_APPLICATION__1__APPLICATION_NAME", "Env")];
    let delete_first = ConfigEdit::DeleteApplication {
        application_id: "app-1".into(),
    };
    assert!(check(&second, delete_first).is_err());
    let third = [("OPCGW_APPLICATION__2__APPLICATION_NAME", "Env")];
    let create = ConfigEdit::CreateApplication {
        application_id: "app-3".into(),
        application_name: "Third".into(),
    };
    assert!(check(&third, create.clone()).is_err());
    assert_eq!(check(&[], create), Ok(()));
}

#[test]
fn a_refused_edit_is_refused_before_anything_is_edited_and_locks_are_listed_by_id() {
    let vars = [("OPCGW_APPLICATION__0__DEVICE__1__DEVICE_NAME", "Env")];
    let env = env_with(&vars);
    let config = live(ODD);
    let result = prepare_edit(
        Path::new("config.toml"),
        ODD,
        &config,
        &env,
        &update_device("app-1", "dev-b"),
    );
    assert_eq!(result.err().map(|e| e.reason()), Some("env_override"));
    assert_eq!(
        env_locks(&env, &config),
        vec![EnvLock {
            application_id: "app-1".into(),
            device_id: Some("dev-b".into()),
            variable: "OPCGW_APPLICATION__0__DEVICE__1__DEVICE_NAME".into(),
        }]
    );
    // Variables of other sections lock nothing here.
    assert!(env_locks(&super::env(), &config).is_empty());
}
