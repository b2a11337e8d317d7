//! Edits on the document: every other byte stays, new tables look like their siblings,
//! preconditions refuse with the right reason, validation speaks the request's terms.

use toml_edit::DocumentMut;

use super::*;

fn create_device(app: &str, spec: DeviceSpec) -> ConfigEdit {
    ConfigEdit::CreateDevice {
        application_id: app.into(),
        device: spec,
    }
}

fn delete_device(app: &str, id: &str) -> ConfigEdit {
    ConfigEdit::DeleteDevice {
        application_id: app.into(),
        device_id: id.into(),
    }
}

const EXAMPLE_APP: &str = "00000000-0000-0000-0000-000000000001";
const EXAMPLE_DEVICE: &str = "0000000000000001";

#[test]
fn both_files_survive_a_parse_and_print_unchanged() {
    for text in [EXAMPLE, ODD] {
        let doc: DocumentMut = text.parse().unwrap();
        assert_eq!(doc.to_string(), text);
    }
}

#[test]
fn creating_then_deleting_a_device_gives_back_the_original_bytes() {
    for (text, app) in [(EXAMPLE, EXAMPLE_APP), (ODD, "app-1"), (ODD, "app-2")] {
        let with = ok(text, create_device(app, device("dev-new", "New")));
        assert_ne!(with, text);
        assert!(with.starts_with(&text[..text.find("[[application]]").unwrap()]));
        let without = ok(&with, delete_device(app, "dev-new"));
        assert_eq!(without, text, "after create + delete in {app}");
    }
}

#[test]
fn creating_then_deleting_an_application_gives_back_the_original_bytes() {
    for text in [EXAMPLE, ODD] {
        let with = ok(
            text,
            ConfigEdit::CreateApplication {
                application_id: "app-new".into(),
                application_name: "New".into(),
            },
        );
        assert!(with.contains("application_id = \"app-new\""));
        assert_eq!(
            live(&with).applications.last().unwrap().application_id,
            "app-new"
        );
        let without = ok(
            &with,
            ConfigEdit::DeleteApplication {
                application_id: "app-new".into(),
            },
        );
        assert_eq!(without, text);
    }
}

#[test]
fn creating_then_deleting_a_command_gives_back_the_original_bytes() {
    for (text, app, dev) in [
        (EXAMPLE, EXAMPLE_APP, EXAMPLE_DEVICE),
        (ODD, "app-1", "dev-a"),
        (ODD, "app-1", "dev-b"),
    ] {
        let with = ok(
            text,
            ConfigEdit::CreateCommand {
                application_id: app.into(),
                device_id: dev.into(),
                command: command("Flush", 9),
            },
        );
        let config = live(&with);
        let (_, device) = config.devices().find(|(_, d)| d.device_id == dev).unwrap();
        assert_eq!(device.commands.last().unwrap().command_name, "Flush");
        let without = ok(
            &with,
            ConfigEdit::DeleteCommand {
                application_id: app.into(),
                device_id: dev.into(),
                command_name: "Flush".into(),
            },
        );
        assert_eq!(without, text);
    }
}

#[test]
fn a_rename_changes_exactly_one_line() {
    let after = ok(
        EXAMPLE,
        ConfigEdit::UpdateApplication {
            application_id: EXAMPLE_APP.into(),
            application_name: "Drinking water".into(),
        },
    );
    assert_eq!(
        changed_lines(EXAMPLE, &after),
        vec![(
            "application_name = \"Water\"",
            "application_name = \"Drinking water\""
        )]
    );
    // A trailing comment on the renamed line stays.
    let after = ok(
        ODD,
        ConfigEdit::UpdateDevice {
            application_id: "app-1".into(),
            device_id: "dev-a".into(),
            device: DeviceUpdate {
                device_name: "North pump".into(),
                stale_threshold_seconds: None,
                read_metric: vec![crate::config::MetricConfig {
                    metric_type: MetricType::Float,
                    ..metric("Flow", "flow")
                }],
            },
        },
    );
    assert_eq!(
        changed_lines(ODD, &after),
        vec![(
            "\tdevice_name = \"North\"  # renamed in 2024",
            "\tdevice_name = \"North pump\"  # renamed in 2024"
        )]
    );
}

#[test]
fn updating_device_b_leaves_every_byte_of_device_a_and_the_rest_of_the_file() {
    let a_start = ODD.find("\t[[application.device]]").unwrap();
    let b_start = ODD.find("# ---- the south pump").unwrap();
    let tail_start = ODD
        .find("[[application]]\napplication_id = \"app-2\"")
        .unwrap();
    let after = ok(
        ODD,
        ConfigEdit::UpdateDevice {
            application_id: "app-1".into(),
            device_id: "dev-b".into(),
            device: DeviceUpdate {
                device_name: "South pump".into(),
                stale_threshold_seconds: None,
                read_metric: vec![
                    crate::config::MetricConfig {
                        metric_unit: Some("l/min".into()),
                        ..metric("Flow", "flow")
                    },
                    metric("Level", "level"),
                ],
            },
        },
    );
    assert_eq!(
        after[..b_start],
        ODD[..b_start],
        "device A or what precedes it changed"
    );
    assert!(after[a_start..].starts_with(&ODD[a_start..b_start]));
    assert!(
        after.ends_with(&ODD[tail_start..]),
        "what follows device B changed:\n{after}"
    );
    // The kept metric keeps its trailing comment; the threshold and Pressure are gone; the
    // new metric is indented like its sibling.
    assert!(after.contains("\t\tmetric_unit = \"l/min\" # unit shown in SCADA\n"));
    assert!(!after.contains("stale_threshold_seconds"));
    assert!(!after.contains("Pressure"));
    assert!(
        after.contains("\n\t\t[[application.device.read_metric]]\n\t\tmetric_name = \"Level\"\n")
    );
    let config = live(&after);
    let b = &config.applications[0].devices[1];
    assert_eq!(b.device_name, "South pump");
    assert_eq!(b.stale_threshold_seconds, None);
    let names: Vec<&str> = b.metrics.iter().map(|m| m.metric_name.as_str()).collect();
    assert_eq!(names, ["Flow", "Level"]);
}

#[test]
fn an_update_that_changes_nothing_changes_no_byte() {
    let config = live(EXAMPLE);
    let current = &config.applications[0].devices[0];
    let after = ok(
        EXAMPLE,
        ConfigEdit::UpdateDevice {
            application_id: EXAMPLE_APP.into(),
            device_id: EXAMPLE_DEVICE.into(),
            device: DeviceUpdate {
                device_name: current.device_name.clone(),
                stale_threshold_seconds: current.stale_threshold_seconds,
                read_metric: current.metrics.clone(),
            },
        },
    );
    assert_eq!(after, EXAMPLE);
    let valve = current.commands[0].clone();
    let after = ok(
        EXAMPLE,
        ConfigEdit::UpdateCommand {
            application_id: EXAMPLE_APP.into(),
            device_id: EXAMPLE_DEVICE.into(),
            command_name: valve.command_name.clone(),
            command: valve,
        },
    );
    assert_eq!(after, EXAMPLE);
}

#[test]
fn an_update_keeps_the_command_tables_and_a_reorder_keeps_the_requested_order() {
    let after = ok(
        ODD,
        ConfigEdit::UpdateDevice {
            application_id: "app-1".into(),
            device_id: "dev-b".into(),
            device: DeviceUpdate {
                device_name: "South".into(),
                stale_threshold_seconds: Some(600),
                read_metric: vec![metric("Pressure", "bar"), metric("Flow", "flow")],
            },
        },
    );
    let config = live(&after);
    let names: Vec<&str> = config.applications[0].devices[1]
        .metrics
        .iter()
        .map(|m| m.metric_name.as_str())
        .collect();
    assert_eq!(names, ["Pressure", "Flow"]);
    assert_eq!(
        config.applications[0].devices[0].commands[0].command_name,
        "Run"
    );
    let after = ok(
        EXAMPLE,
        ConfigEdit::UpdateDevice {
            application_id: EXAMPLE_APP.into(),
            device_id: EXAMPLE_DEVICE.into(),
            device: DeviceUpdate {
                device_name: "Tank01".into(),
                stale_threshold_seconds: Some(3600),
                read_metric: vec![],
            },
        },
    );
    let config = live(&after);
    assert!(config.applications[0].devices[0].metrics.is_empty());
    assert_eq!(config.applications[0].devices[0].commands.len(), 1);
    assert!(after.contains("# LoRaWAN FPort, 1-223.\n    command_port = 10"));
}

#[test]
fn a_new_device_looks_like_its_siblings_and_loads_as_given() {
    let after = ok(
        EXAMPLE,
        create_device(EXAMPLE_APP, device("dev-new", "New")),
    );
    let added = &after[EXAMPLE.trim_end().len()..];
    assert!(
        added.starts_with(
            "\n\n  [[application.device]]\n  device_name = \"New\"\n  device_id = \"dev-new\"\n\n    \
             [[application.device.read_metric]]\n    metric_name = \"Level\"\n"
        ),
        "{added}"
    );
    assert!(
        added.contains("\n\n    [[application.device.command]]\n    command_name = \"Reset\"\n")
    );
    let config = live(&after);
    let (app, dev) = config
        .devices()
        .find(|(_, d)| d.device_id == "dev-new")
        .unwrap();
    assert_eq!(app.application_id, EXAMPLE_APP);
    assert_eq!(dev.metrics, device("dev-new", "New").read_metric);
    assert_eq!(dev.commands, device("dev-new", "New").command);
    // In the hand-written file, tabs.
    let after = ok(ODD, create_device("app-2", device("dev-new", "New")));
    assert!(after.contains("\n\t[[application.device]]\n\tdevice_name = \"New\"\n"));
    assert!(
        after.contains("\n\t\t[[application.device.read_metric]]\n\t\tmetric_name = \"Level\"\n")
    );
    // The sections after the tree stay after it.
    assert!(after.ends_with("[storage]   # keep a month\nretention_days = 30\n\n# end of file\n"));
}

#[test]
fn preconditions_refuse_with_their_reason() {
    let reason = |text: &str, edit: ConfigEdit| match edited(text, edit) {
        Err(err) => err.reason(),
        Ok(_) => "accepted",
    };
    let app = |id: &str| ConfigEdit::DeleteApplication {
        application_id: id.into(),
    };
    assert_eq!(reason(ODD, app("nope")), "application_not_found");
    assert_eq!(reason(ODD, app("app-1")), "conflict", "it has devices");
    assert_eq!(
        reason(EXAMPLE, app(EXAMPLE_APP)),
        "conflict",
        "the only one"
    );
    assert_eq!(reason(ODD, app("app-2")), "accepted");
    assert_eq!(
        reason(
            ODD,
            ConfigEdit::CreateApplication {
                application_id: "app-2".into(),
                application_name: "Other".into()
            }
        ),
        "conflict"
    );
    // Ids are case-sensitive.
    assert_eq!(reason(ODD, app("APP-2")), "application_not_found");
    assert_eq!(
        reason(ODD, create_device("app-2", device("dev-a", "Dup"))),
        "conflict"
    );
    assert_eq!(
        reason(ODD, create_device("app-9", device("dev-x", "X"))),
        "application_not_found"
    );
    assert_eq!(
        reason(ODD, delete_device("app-2", "dev-a")),
        "device_not_found"
    );
    let mut twice = device("dev-x", "X");
    twice.command.push(command("Reset", 8));
    assert_eq!(reason(ODD, create_device("app-2", twice)), "conflict");
    let create_command = |name: &str| ConfigEdit::CreateCommand {
        application_id: "app-1".into(),
        device_id: "dev-a".into(),
        command: command(name, 5),
    };
    assert_eq!(reason(ODD, create_command("Run")), "conflict");
    assert_eq!(
        reason(
            ODD,
            ConfigEdit::UpdateCommand {
                application_id: "app-1".into(),
                device_id: "dev-a".into(),
                command_name: "Run".into(),
                command: command("Walk", 1),
            }
        ),
        "immutable_field"
    );
    assert_eq!(
        reason(
            ODD,
            ConfigEdit::DeleteCommand {
                application_id: "app-1".into(),
                device_id: "dev-b".into(),
                command_name: "Run".into(),
            }
        ),
        "command_not_found"
    );
}

#[test]
fn layouts_the_editor_cannot_rewrite_safely_are_refused() {
    let live = AppConfig::default();
    let refused = |text: &str, edit: ConfigEdit| {
        let mut doc: DocumentMut = text.parse().unwrap();
        let before = doc.to_string();
        let result = apply(&mut doc, &live, &edit);
        assert_eq!(
            doc.to_string(),
            before,
            "a refused edit changed the document"
        );
        match result {
            Err(err) => err.reason(),
            Ok(()) => "accepted",
        }
    };
    let inline_apps = "application = [{ application_id = \"a\", application_name = \"A\" }]\n";
    assert_eq!(
        refused(
            inline_apps,
            ConfigEdit::CreateApplication {
                application_id: "b".into(),
                application_name: "B".into()
            }
        ),
        "unsupported_layout"
    );
    let inline_metrics = "[[application]]\napplication_id = \"a\"\napplication_name = \"A\"\n\
        [[application.device]]\ndevice_id = \"d\"\ndevice_name = \"D\"\n\
        read_metric = [{ metric_name = \"m\", chirpstack_metric_name = \"m\", metric_type = \"Int\" }]\n";
    let update = ConfigEdit::UpdateDevice {
        application_id: "a".into(),
        device_id: "d".into(),
        device: DeviceUpdate {
            device_name: "D".into(),
            stale_threshold_seconds: None,
            read_metric: vec![metric("m", "m")],
        },
    };
    assert_eq!(
        refused(inline_metrics, update.clone()),
        "unsupported_layout"
    );
    let dotted = "[[application]]\napplication_id = \"a\"\napplication_name = \"A\"\n\
        [[application.device]]\ndevice_id = \"d\"\ndevice.name = \"D\"\n";
    assert_eq!(refused(dotted, update.clone()), "unsupported_layout");
    // A device on a [[device_template]]: its lists are the template's, refined by its own.
    let templated = "[[application]]\napplication_id = \"a\"\napplication_name = \"A\"\n\
        [[application.device]]\ndevice_id = \"d\"\ndevice_name = \"D\"\ntemplate = \"t\"\n";
    assert_eq!(refused(templated, update), "unsupported_layout");
    let command = ConfigEdit::CreateCommand {
        application_id: "a".into(),
        device_id: "d".into(),
        command: CommandConfig {
            command_name: "c".into(),
            command_id: 1,
            command_port: 10,
            command_confirmed: false,
            command_type: MetricType::Int,
            command_min: None,
            command_max: None,
        },
    };
    assert_eq!(refused(templated, command), "unsupported_layout");
    // Deleting it is fine.
    let mut doc: DocumentMut = templated.parse().unwrap();
    assert_eq!(apply(&mut doc, &live, &delete_device("a", "d")), Ok(()));
}

#[test]
fn validation_problems_name_the_request_fields() {
    let mut bad = device("dev-new", "New");
    bad.read_metric[1].metric_name = "a/b".into();
    bad.command[0].command_port = 0;
    let problems = match edited(ODD, create_device("app-2", bad)) {
        Err(EditError::Validation { problems }) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"read_metric[1].metric_name"), "{fields:?}");
    assert!(fields.contains(&"command[0].command_port"), "{fields:?}");
    let problems = match edited(
        ODD,
        ConfigEdit::UpdateApplication {
            application_id: "app-2".into(),
            application_name: "Pumps".into(),
        },
    ) {
        Err(EditError::Validation { problems }) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    };
    assert_eq!(problems[0].field, "application_name");
    let rendered = EditError::Validation { problems }.to_string();
    assert!(!rendered.contains(TEST_TOKEN) && !rendered.contains(TEST_PASSWORD));
    let mut range = command("Dim", 4);
    range.command_min = Some(10.0);
    range.command_max = Some(1.5);
    match edited(
        ODD,
        ConfigEdit::CreateCommand {
            application_id: "app-1".into(),
            device_id: "dev-b".into(),
            command: range,
        },
    ) {
        Err(EditError::Validation { problems }) => assert_eq!(problems[0].field, "command_min"),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

#[test]
fn a_secret_the_environment_supplies_is_never_written_and_placeholders_stay() {
    let after = ok(
        EXAMPLE,
        create_device(EXAMPLE_APP, device("dev-new", "New")),
    );
    assert!(after.contains("api_token = \"REPLACE_ME_WITH_OPCGW_CHIRPSTACK__API_TOKEN_ENV_VAR\""));
    assert!(
        after.contains("user_password = \"REPLACE_ME_WITH_OPCGW_OPCUA__USER_PASSWORD_ENV_VAR\"")
    );
    assert!(!after.contains(TEST_TOKEN) && !after.contains(TEST_PASSWORD));
}

/// The comment block above a list's first table describes the list: deleting that table keeps
/// the block above the new first one.
#[test]
fn deleting_the_first_table_keeps_the_comments_above_the_list() {
    let text = EXAMPLE.replacen(
        "\n[[application]]\n",
        "\n[[application]]\napplication_name = \"Spare\"\napplication_id = \"spare\"\n\n[[application]]\n",
        1,
    );
    assert_ne!(text, EXAMPLE);
    let without = ok(
        &text,
        ConfigEdit::DeleteApplication {
            application_id: "spare".into(),
        },
    );
    assert_eq!(without, EXAMPLE, "the example's [topology] block stays");
}

/// A device only discovered from ChirpStack may be written in the file (that is how an
/// operator refines it); its metrics cannot be edited before, and a written one stays unique.
#[test]
fn a_discovered_device_can_be_written_in_the_file_but_not_edited_before() {
    let text = ODD;
    let mut discovering = live(text);
    let mut found = discovering.applications[0].devices[0].clone();
    found.device_id = "00000000000000dd".into();
    found.device_name = "Found".into();
    discovering.applications[0].devices.push(found);
    discovering.discovered.insert("00000000000000dd".into());
    let prepare = |edit: &ConfigEdit| {
        prepare_edit(Path::new("config.toml"), text, &discovering, &env(), edit)
    };
    let written = prepare(&create_device("app-1", device("00000000000000dd", "Found")))
        .expect("a discovered device is written in the file");
    assert!(written.text.contains("00000000000000dd"));
    let edit = ConfigEdit::DeleteDevice {
        application_id: "app-1".into(),
        device_id: "00000000000000dd".into(),
    };
    let refused = prepare(&edit).unwrap_err().to_string();
    assert!(
        refused.contains("discovered from ChirpStack") && !refused.contains("  "),
        "{refused}"
    );
    let configured = discovering.applications[0].devices[0].device_id.clone();
    let twice = prepare(&create_device("app-1", device(&configured, "Again"))).unwrap_err();
    assert!(twice.to_string().contains("already configured"), "{twice}");
}
