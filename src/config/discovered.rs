//! The live configuration: the file's, with the devices discovery found added to its
//! `discover = true` applications.
//!
//! What the file says wins. A device written in the file keeps its name, metrics, commands and
//! threshold; discovery only adds the measurements it does not cover (matched by
//! `chirpstack_metric_name`). A device the file does not have is built from its device
//! profile's template (`[[application]] templates`), if any, then from the profile's
//! measurements (each key both `metric_name` and `chirpstack_metric_name`). A device written
//! under another application is left where the file puts it.

use std::collections::{BTreeSet, HashSet};

use super::schema::{AppConfig, ApplicationConfig, DeviceConfig, MetricConfig};
use crate::chirpstack::discovery::{DiscoveredDevice, Topology};

/// `file` with `topology` applied; [`AppConfig::discovered`] names the devices added.
pub fn merge(file: &AppConfig, topology: &Topology) -> AppConfig {
    let mut merged = file.clone();
    merged.discovered = BTreeSet::new();
    if topology.applications.is_empty() {
        return merged;
    }
    // Every device the file writes, wherever: the file decides where it lives.
    let written: HashSet<String> = file
        .devices()
        .map(|(_, d)| d.device_id.to_ascii_lowercase())
        .collect();
    let application_ids: HashSet<&str> = file
        .applications
        .iter()
        .map(|a| a.application_id.as_str())
        .collect();
    // A device listed in one application and kept (gone) in another is the listed one; and
    // no id is added twice, whatever the topology holds.
    let listed: HashSet<String> = topology.listed_ids().map(str::to_ascii_lowercase).collect();
    let mut added: HashSet<String> = HashSet::new();
    for app in merged.applications.iter_mut().filter(|a| a.discover) {
        let Some(found) = topology.applications.get(&app.application_id) else {
            continue;
        };
        let mut names: HashSet<String> =
            app.devices.iter().map(|d| d.device_name.clone()).collect();
        for device in found {
            let id = device.dev_eui.to_ascii_lowercase();
            if let Some(own) = app
                .devices
                .iter_mut()
                .find(|d| d.device_id.eq_ignore_ascii_case(&id))
            {
                add_uncovered(own, device);
                continue;
            }
            if written.contains(&id)
                || (device.gone && listed.contains(&id))
                || !added.insert(id.clone())
                || application_ids.contains(id.as_str())
                || crate::naming::is_reserved(&id)
                || id.contains('/')
                || id.is_empty()
            {
                continue;
            }
            let mut built = build(app, &file.templates, device);
            if !names.insert(built.device_name.clone()) {
                built.device_name = format!("{} ({id})", built.device_name);
                names.insert(built.device_name.clone());
            }
            merged.discovered.insert(built.device_id.clone());
            app.devices.push(built);
        }
    }
    merged
}

/// A device the file does not write.
fn build(
    app: &ApplicationConfig,
    templates: &[super::schema::DeviceTemplate],
    device: &DiscoveredDevice,
) -> DeviceConfig {
    let template = app
        .templates
        .get(&device.device_profile_id)
        .and_then(|name| templates.iter().find(|t| &t.name == name));
    let name = device.name.trim();
    let mut built = DeviceConfig {
        device_name: if name.is_empty() {
            device.dev_eui.clone()
        } else {
            name.to_string()
        },
        device_id: device.dev_eui.to_ascii_lowercase(),
        stale_threshold_seconds: None,
        metrics: template.map(|t| t.metrics.clone()).unwrap_or_default(),
        commands: template.map(|t| t.commands.clone()).unwrap_or_default(),
    };
    add_uncovered(&mut built, device);
    built
}

/// Adds the measurements of `found` that `device` does not cover: no metric reads that key,
/// and no metric or command has that name.
fn add_uncovered(device: &mut DeviceConfig, found: &DiscoveredDevice) {
    let mut upstream: HashSet<String> = device
        .metrics
        .iter()
        .map(|m| m.chirpstack_metric_name.clone())
        .collect();
    let mut names: HashSet<String> = device
        .metrics
        .iter()
        .map(|m| m.metric_name.clone())
        .chain(device.commands.iter().map(|c| c.command_name.clone()))
        .collect();
    for measurement in &found.measurements {
        if upstream.contains(&measurement.key) || names.contains(&measurement.key) {
            continue;
        }
        upstream.insert(measurement.key.clone());
        names.insert(measurement.key.clone());
        device.metrics.push(MetricConfig {
            metric_name: measurement.key.clone(),
            chirpstack_metric_name: measurement.key.clone(),
            metric_type: measurement.metric_type,
            metric_unit: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::chirpstack::discovery::Measurement;
    use crate::config::{CommandConfig, DeviceTemplate, MetricType};

    fn measurement(key: &str, metric_type: MetricType) -> Measurement {
        Measurement {
            key: key.into(),
            metric_type,
        }
    }

    fn found(dev_eui: &str, name: &str, profile: &str) -> DiscoveredDevice {
        DiscoveredDevice {
            dev_eui: dev_eui.into(),
            name: name.into(),
            device_profile_id: profile.into(),
            measurements: vec![
                measurement("temperature", MetricType::Float),
                measurement("counter", MetricType::Int),
                measurement("valve_open", MetricType::Float),
            ],
            gone: false,
        }
    }

    fn metric(name: &str, upstream: &str, metric_type: MetricType) -> MetricConfig {
        MetricConfig {
            metric_name: name.into(),
            chirpstack_metric_name: upstream.into(),
            metric_type,
            metric_unit: Some("unit".into()),
        }
    }

    fn file() -> AppConfig {
        AppConfig {
            applications: vec![
                ApplicationConfig {
                    application_name: "Fleet".into(),
                    application_id: "app-1".into(),
                    discover: true,
                    templates: BTreeMap::from([("profile-b".into(), "valve".into())]),
                    devices: vec![DeviceConfig {
                        device_name: "Boiler".into(),
                        device_id: "00000000000000aa".into(),
                        stale_threshold_seconds: Some(30),
                        metrics: vec![metric("valve", "valve_open", MetricType::Bool)],
                        commands: vec![],
                    }],
                },
                ApplicationConfig {
                    application_name: "Listed".into(),
                    application_id: "app-2".into(),
                    discover: false,
                    templates: Default::default(),
                    devices: vec![DeviceConfig {
                        device_name: "Elsewhere".into(),
                        device_id: "00000000000000CC".into(),
                        stale_threshold_seconds: None,
                        metrics: vec![metric("t", "temperature", MetricType::Float)],
                        commands: vec![],
                    }],
                },
            ],
            templates: vec![DeviceTemplate {
                name: "valve".into(),
                metrics: vec![metric("Open", "valve_open", MetricType::Bool)],
                commands: vec![CommandConfig {
                    command_name: "counter".into(),
                    command_id: 1,
                    command_confirmed: false,
                    command_port: 10,
                    command_type: MetricType::Int,
                    command_min: None,
                    command_max: None,
                }],
            }],
            ..Default::default()
        }
    }

    fn topology(devices: Vec<DiscoveredDevice>) -> Topology {
        Topology {
            discovered_at: None,
            applications: BTreeMap::from([("app-1".into(), devices)]),
        }
    }

    #[test]
    fn the_file_wins_and_discovery_adds_what_it_does_not_cover() {
        let file = file();
        let merged = merge(
            &file,
            &topology(vec![
                found("00000000000000aa", "Renamed in ChirpStack", "profile-a"),
                found("00000000000000bb", "Boiler", "profile-a"),
                found("00000000000000cc", "Moved", "profile-a"),
            ]),
        );
        let app = &merged.applications[0];
        // Written device: its name, threshold and typed metric stay; uncovered keys are added.
        let boiler = &app.devices[0];
        assert_eq!(boiler.device_name, "Boiler");
        assert_eq!(boiler.stale_threshold_seconds, Some(30));
        let names: Vec<(&str, MetricType)> = boiler
            .metrics
            .iter()
            .map(|m| (m.metric_name.as_str(), m.metric_type))
            .collect();
        assert_eq!(
            names,
            [
                ("valve", MetricType::Bool),
                ("temperature", MetricType::Float),
                ("counter", MetricType::Int)
            ]
        );
        // A new device: ChirpStack's name (made unique in the application), the measurements.
        let new = &app.devices[1];
        assert_eq!(new.device_name, "Boiler (00000000000000bb)");
        assert_eq!(new.metrics.len(), 3);
        assert_eq!(new.metrics[0].chirpstack_metric_name, "temperature");
        assert_eq!(new.metrics[0].metric_unit, None);
        // A device the file writes under another application stays there, once.
        assert_eq!(app.devices.len(), 2);
        assert_eq!(merged.applications[1], file.applications[1]);
        assert_eq!(
            merged.discovered,
            BTreeSet::from(["00000000000000bb".to_string()])
        );
        let report = crate::config::validate(&merged);
        let topology_errors: Vec<_> = report
            .errors
            .iter()
            .filter(|p| p.key.starts_with("application"))
            .collect();
        assert!(topology_errors.is_empty(), "{topology_errors:?}");
    }

    #[test]
    fn a_device_profile_template_comes_before_the_measurements() {
        let merged = merge(
            &file(),
            &topology(vec![found("00000000000000dd", "Valve 1", "profile-b")]),
        );
        let valve = &merged.applications[0].devices[1];
        let names: Vec<&str> = valve
            .metrics
            .iter()
            .map(|m| m.metric_name.as_str())
            .collect();
        // The template reads valve_open as Bool "Open"; "counter" is a command name.
        assert_eq!(names, ["Open", "temperature"]);
        assert_eq!(valve.metrics[0].metric_type, MetricType::Bool);
        assert_eq!(valve.commands.len(), 1);
    }

    #[test]
    fn a_device_moved_between_applications_is_served_once_where_it_is_listed() {
        let mut file = file();
        file.applications[1].discover = true;
        file.applications[1].devices.clear();
        let mut moved = found("00000000000000ee", "Moved", "profile-a");
        let topology = Topology {
            discovered_at: None,
            applications: BTreeMap::from([
                (
                    "app-1".into(),
                    vec![DiscoveredDevice {
                        gone: true,
                        ..moved.clone()
                    }],
                ),
                ("app-2".into(), vec![moved.clone()]),
            ]),
        };
        let merged = merge(&file, &topology);
        let homes: Vec<&str> = merged
            .devices()
            .filter(|(_, d)| d.device_id == "00000000000000ee")
            .map(|(a, _)| a.application_id.as_str())
            .collect();
        assert_eq!(homes, ["app-2"]);
        // Twice in the topology (a damaged file): once in the configuration.
        moved.gone = false;
        let twice = Topology {
            discovered_at: None,
            applications: BTreeMap::from([
                ("app-1".into(), vec![moved.clone()]),
                ("app-2".into(), vec![moved]),
            ]),
        };
        assert_eq!(merge(&file, &twice).discovered.len(), 1);
        assert_eq!(merge(&file, &twice).devices().count(), 2);
    }

    #[test]
    fn nothing_discovered_is_the_file() {
        let file = file();
        assert_eq!(merge(&file, &Topology::default()), file);
        let mut not_discovering = file.clone();
        not_discovering.applications[0].discover = false;
        let merged = merge(
            &not_discovering,
            &topology(vec![found("00000000000000dd", "New", "profile-a")]),
        );
        assert_eq!(merged, not_discovering);
    }
}
