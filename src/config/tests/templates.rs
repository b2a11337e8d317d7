//! `[[device_template]]`: devices that share one metric list, the device's own entries
//! winning by name, and problems named where they are written.

use super::*;

const TEMPLATED: &str = concat!(
    sections!(),
    r#"
[[device_template]]
name = "tank-sensor"

  [[device_template.read_metric]]
  metric_name = "Level"
  chirpstack_metric_name = "level_cm"
  metric_type = "Float"
  metric_unit = "cm"

  [[device_template.read_metric]]
  metric_name = "Battery"
  chirpstack_metric_name = "battery_mv"
  metric_type = "Int"

  [[device_template.command]]
  command_name = "Valve"
  command_id = 1
  command_port = 10

[[application]]
application_name = "Water"
application_id = "app-1"

  [[application.device]]
  device_name = "Tank 1"
  device_id = "0000000000000001"
  template = "tank-sensor"

  [[application.device]]
  device_name = "Tank 2"
  device_id = "0000000000000002"
  template = "tank-sensor"

    [[application.device.read_metric]]
    metric_name = "Level"
    chirpstack_metric_name = "level_mm"
    metric_type = "Float"
    metric_unit = "mm"

    [[application.device.read_metric]]
    metric_name = "Temperature"
    chirpstack_metric_name = "temp"
    metric_type = "Float"

  [[application.device]]
  device_name = "Pump"
  device_id = "0000000000000003"

    [[application.device.read_metric]]
    metric_name = "Running"
    chirpstack_metric_name = "running"
    metric_type = "Bool"
"#
);

fn names(device: &DeviceConfig) -> Vec<(&str, &str)> {
    device
        .metrics
        .iter()
        .map(|m| (m.metric_name.as_str(), m.chirpstack_metric_name.as_str()))
        .collect()
}

#[test]
fn devices_take_the_template_and_their_own_entries_win_by_name() {
    let loaded = load_with(TEMPLATED, &[]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let devices = &loaded.config.applications[0].devices;
    assert_eq!(
        names(&devices[0]),
        [("Level", "level_cm"), ("Battery", "battery_mv")]
    );
    assert_eq!(devices[0].commands[0].command_name, "Valve");
    // Tank 2 refines Level (another field, another unit) and adds Temperature.
    assert_eq!(
        names(&devices[1]),
        [
            ("Level", "level_mm"),
            ("Battery", "battery_mv"),
            ("Temperature", "temp")
        ]
    );
    assert_eq!(devices[1].metrics[0].metric_unit.as_deref(), Some("mm"));
    assert_eq!(devices[1].commands.len(), 1);
    // A device without a template is untouched.
    assert_eq!(names(&devices[2]), [("Running", "running")]);
}

#[test]
fn an_unknown_template_is_named_with_its_line_and_the_templates_there_are() {
    let text = TEMPLATED.replacen("template = \"tank-sensor\"", "template = \"tank-sensr\"", 1);
    let found = problems(load_with(&text, &[]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "application[0].device[0].template");
    let line = line_of(&text, "template = \"tank-sensr\"");
    assert!(found[0].message.contains(&line), "{}", found[0].message);
    assert!(
        found[0].message.contains("\"tank-sensr\"") && found[0].message.contains("tank-sensor"),
        "{}",
        found[0].message
    );
}

#[test]
fn a_mistake_in_a_template_is_reported_once_at_the_template() {
    // Two metrics of the template read the same field: one error, keyed by the template,
    // not one per device using it.
    let text = TEMPLATED.replacen(
        "chirpstack_metric_name = \"battery_mv\"",
        "chirpstack_metric_name = \"level_cm\"",
        1,
    );
    let found = problems(load_with(&text, &[]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].key,
        "device_template[0].read_metric[1].chirpstack_metric_name"
    );
    // A mistyped key inside a template: with the template's line.
    let text = TEMPLATED.replacen("metric_unit = \"cm\"", "metric_units = \"cm\"", 1);
    let found = problems(load_with(&text, &[]));
    assert_eq!(
        found[0].key,
        "device_template[0].read_metric[0].metric_units"
    );
    assert!(
        found[0].message.contains(&line_of(&text, "metric_units")),
        "{}",
        found[0].message
    );
    // Two templates of one name; a template name that is not a string.
    let twice = format!("{TEMPLATED}\n[[device_template]]\nname = \"tank-sensor\"\n");
    let found = problems(load_with(&twice, &[]));
    assert!(
        found
            .iter()
            .any(|p| p.key == "device_template[1].name" && p.message.contains("twice")),
        "{found:?}"
    );
    let number = TEMPLATED.replacen("template = \"tank-sensor\"", "template = 7", 1);
    let found = problems(load_with(&number, &[]));
    assert_eq!(
        found[0].key, "application[0].device[0].template",
        "{found:?}"
    );
}

#[test]
fn the_environment_can_point_a_device_at_a_template_and_change_a_template() {
    let config = load_with(
        TEMPLATED,
        &[
            ("OPCGW_APPLICATION__0__DEVICE__2__TEMPLATE", "tank-sensor"),
            (
                "OPCGW_DEVICE_TEMPLATE__0__READ_METRIC__1__CHIRPSTACK_METRIC_NAME",
                "vbat",
            ),
        ],
    )
    .unwrap()
    .config;
    let pump = &config.applications[0].devices[2];
    assert_eq!(
        names(pump),
        [
            ("Level", "level_cm"),
            ("Battery", "vbat"),
            ("Running", "running")
        ]
    );
}

#[test]
fn a_reload_sees_a_changed_template_as_a_change_of_every_device_using_it() {
    let before = load_with(TEMPLATED, &[]).unwrap().config;
    let after = load_with(
        &TEMPLATED.replacen("metric_unit = \"cm\"", "metric_unit = \"m\"", 1),
        &[],
    )
    .unwrap()
    .config;
    let changed: Vec<&str> = before.applications[0]
        .devices
        .iter()
        .zip(&after.applications[0].devices)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| b.device_name.as_str())
        .collect();
    // Tank 2 has its own Level.
    assert_eq!(changed, ["Tank 1"]);
}
