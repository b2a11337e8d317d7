//! The `[[application]]` tree's rules: ids and names, uniqueness across and within
//! applications and devices, metric and command fields. The console's editor relies on them
//! (an edit is validated as a load would).

use std::collections::HashSet;

use super::ValidationReport;
use crate::config::schema::*;

pub(super) fn validate_applications(config: &AppConfig, report: &mut ValidationReport) {
    if config.applications.is_empty() {
        report.warn(
            "application",
            "no application configured: the gateway has nothing to serve",
        );
    }
    let mut app_ids = HashSet::new();
    let mut app_names = HashSet::new();
    let mut device_ids = HashSet::new();
    // Application and device ids are NodeIds in one namespace, beside the `Gateway` folder
    // and its members (`Gateway/...`); metric NodeIds are `<device_id>/<metric_name>`.
    let all_app_ids: HashSet<&str> = config
        .applications
        .iter()
        .map(|a| a.application_id.as_str())
        .collect();
    let reserved = crate::naming::is_reserved;
    for (a, app) in config.applications.iter().enumerate() {
        let at = format!("application[{a}]");
        report.non_empty(&format!("{at}.application_id"), &app.application_id);
        if app.application_id.contains('/') {
            report.error(format!("{at}.application_id"), "must not contain '/'");
        }
        if reserved(&app.application_id) {
            report.error(
                format!("{at}.application_id"),
                "\"Gateway\" is the NodeId of the gateway's own folder",
            );
        }
        report.non_empty(&format!("{at}.application_name"), &app.application_name);
        if !app_ids.insert(app.application_id.as_str()) {
            report.error(
                format!("{at}.application_id"),
                format!("\"{}\" is used twice", app.application_id),
            );
        }
        // Application folders are siblings under Objects: equal browse names would be ambiguous.
        if !app_names.insert(app.application_name.as_str()) {
            report.error(
                format!("{at}.application_name"),
                format!("\"{}\" is used twice", app.application_name),
            );
        }
        for (profile, template) in &app.templates {
            let key = format!("{at}.templates.{profile}");
            if !app.discover {
                report.error(
                    key.clone(),
                    "templates by device profile apply to discovered devices: set discover = true",
                );
            }
            if !config.templates.iter().any(|t| &t.name == template) {
                report.error(
                    key,
                    format!("no [[device_template]] is named \"{template}\""),
                );
            }
        }
        if app.devices.is_empty() && !app.discover {
            report.warn(
                format!("{at}.device"),
                format!("application \"{}\" has no device", app.application_id),
            );
        }
        let mut device_names = HashSet::new();
        for (d, device) in app.devices.iter().enumerate() {
            let at = format!("{at}.device[{d}]");
            report.non_empty(&format!("{at}.device_name"), &device.device_name);
            report.non_empty(&format!("{at}.device_id"), &device.device_id);
            // The metric NodeId is `<device_id>/<metric_name>`: a '/' in the id would make it ambiguous.
            if device.device_id.contains('/') {
                report.error(format!("{at}.device_id"), "must not contain '/'");
            }
            if reserved(&device.device_id) {
                report.error(
                    format!("{at}.device_id"),
                    "\"Gateway\" is the NodeId of the gateway's own folder",
                );
            }
            if all_app_ids.contains(device.device_id.as_str()) {
                report.error(
                    format!("{at}.device_id"),
                    format!(
                        "\"{}\" is also an application_id: both are NodeIds",
                        device.device_id
                    ),
                );
            }
            // Device ids are NodeIds in one namespace, so they are unique across applications.
            if !device_ids.insert(device.device_id.as_str()) {
                report.error(
                    format!("{at}.device_id"),
                    format!("\"{}\" is used twice", device.device_id),
                );
            }
            if !device_names.insert(device.device_name.as_str()) {
                report.error(
                    format!("{at}.device_name"),
                    format!(
                        "\"{}\" is used twice in this application",
                        device.device_name
                    ),
                );
            }
            if let Some(stale) = device.stale_threshold_seconds {
                report.range(&format!("{at}.stale_threshold_seconds"), stale, 1, 86_400);
                if stale >= config.opcua.bad_threshold_seconds {
                    report.error(
                        format!("{at}.stale_threshold_seconds"),
                        "must be less than opcua.bad_threshold_seconds",
                    );
                }
            }
            validate_device_children(device, &at, report);
        }
    }
}

/// The rules of `[[device_template]]`: a unique, non-empty name, and the metric and command
/// rules of a device. Returns the names of the templates that passed (only those are expanded,
/// so a mistake in a template is reported once, not once per device using it).
pub(in crate::config) fn validate_templates(
    templates: &[DeviceTemplate],
    report: &mut ValidationReport,
) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut valid = HashSet::new();
    for (t, template) in templates.iter().enumerate() {
        let at = format!("device_template[{t}]");
        let errors_before = report.errors.len();
        report.non_empty(&format!("{at}.name"), &template.name);
        if !names.insert(template.name.as_str()) {
            report.error(
                format!("{at}.name"),
                format!("template \"{}\" is defined twice", template.name),
            );
        }
        let as_device = DeviceConfig {
            device_name: template.name.clone(),
            device_id: template.name.clone(),
            stale_threshold_seconds: None,
            metrics: template.metrics.clone(),
            commands: template.commands.clone(),
        };
        validate_device_children(&as_device, &at, report);
        if report.errors.len() == errors_before {
            valid.insert(template.name.clone());
        }
    }
    valid
}

fn validate_device_children(device: &DeviceConfig, at: &str, report: &mut ValidationReport) {
    if device.metrics.is_empty() && device.commands.is_empty() {
        report.warn(
            format!("{at}.read_metric"),
            format!("device \"{}\" has no metric", device.device_id),
        );
    }
    // Metrics and commands are siblings under the device node: their browse names share one space.
    let mut child_names = HashSet::new();
    let mut upstream_names = HashSet::new();
    for (m, metric) in device.metrics.iter().enumerate() {
        let at = format!("{at}.read_metric[{m}]");
        report.non_empty(&format!("{at}.metric_name"), &metric.metric_name);
        // `<device_id>/<metric_name>/EngineeringUnits` and `<device>/<command>/Status` are
        // NodeIds too: a '/' in a name could collide with them.
        if metric.metric_name.contains('/') {
            report.error(format!("{at}.metric_name"), "must not contain '/'");
        }
        report.non_empty(
            &format!("{at}.chirpstack_metric_name"),
            &metric.chirpstack_metric_name,
        );
        if !child_names.insert(metric.metric_name.as_str()) {
            report.error(
                format!("{at}.metric_name"),
                format!("\"{}\" is used twice in this device", metric.metric_name),
            );
        }
        if !upstream_names.insert(metric.chirpstack_metric_name.as_str()) {
            report.error(
                format!("{at}.chirpstack_metric_name"),
                format!(
                    "\"{}\" is used twice in this device",
                    metric.chirpstack_metric_name
                ),
            );
        }
    }
    let mut command_ids = HashSet::new();
    for (c, command) in device.commands.iter().enumerate() {
        let at = format!("{at}.command[{c}]");
        report.non_empty(&format!("{at}.command_name"), &command.command_name);
        if command.command_name.contains('/') {
            report.error(format!("{at}.command_name"), "must not contain '/'");
        }
        if !child_names.insert(command.command_name.as_str()) {
            report.error(
                format!("{at}.command_name"),
                format!(
                    "\"{}\" is already used by a metric or command of this device",
                    command.command_name
                ),
            );
        }
        if !command_ids.insert(command.command_id) {
            report.error(
                format!("{at}.command_id"),
                format!("{} is used twice in this device", command.command_id),
            );
        }
        // LoRaWAN application FPorts are 1-223; 0 is MAC commands, 224+ are reserved.
        report.range(&format!("{at}.command_port"), command.command_port, 1, 223);
        for (key, bound) in [
            ("command_min", command.command_min),
            ("command_max", command.command_max),
        ] {
            if bound.is_some_and(|b| !b.is_finite()) {
                report.error(
                    format!("{at}.{key}"),
                    "must be a finite number (nan and inf are not accepted)",
                );
            }
        }
        if let (Some(min), Some(max)) = (command.command_min, command.command_max) {
            if min > max {
                report.error(
                    format!("{at}.command_min"),
                    "must not be greater than command_max",
                );
            }
        }
        if (command.command_min.is_some() || command.command_max.is_some())
            && !matches!(command.command_type, MetricType::Int | MetricType::Float)
        {
            report.error(
                format!("{at}.command_min"),
                "a range applies only to Int or Float commands",
            );
        }
    }
}
