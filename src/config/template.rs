//! `[[device_template]]` expansion: a device with `template = "<name>"` takes the template's
//! metrics and commands, and its own `read_metric` / `command` entries win by name (a device
//! refines what the template says: a unit, a scaling, one more metric). Runs in the loader,
//! after extraction and before validation: everything after it (validation, the reload's
//! diff, the address space, the poller) sees plain devices.

use std::collections::HashSet;

use figment::value::Value;

use super::key_path::KeyPath;
use super::load::ConfigProblem;
use super::probe::TEMPLATE_KEY;
use super::schema::{ApplicationConfig, DeviceTemplate};

/// What a device's `template` key holds.
enum Named {
    Nothing,
    Template(String),
    NotAString,
}

/// The template each device names, by (application, device) position in the file (and the
/// environment overlay) as figment sees it.
fn named_templates(raw_applications: Option<&Value>) -> Vec<Vec<Named>> {
    let Some(Value::Array(_, applications)) = raw_applications else {
        return Vec::new();
    };
    applications
        .iter()
        .map(|application| {
            let devices = match application {
                Value::Dict(_, fields) => match fields.get("device") {
                    Some(Value::Array(_, devices)) => devices.as_slice(),
                    _ => &[],
                },
                _ => &[],
            };
            devices
                .iter()
                .map(|device| match device {
                    Value::Dict(_, fields) => match fields.get(TEMPLATE_KEY) {
                        Some(Value::String(_, name)) => Named::Template(name.clone()),
                        Some(_) => Named::NotAString,
                        None => Named::Nothing,
                    },
                    _ => Named::Nothing,
                })
                .collect()
        })
        .collect()
}

/// Expands the templates named by the devices of `applications`. A name that is no template is
/// a problem keyed by the device's `template` (with `origin` saying where it was set); a
/// template not in `valid` (it has problems of its own, already reported) is left out.
pub(super) fn expand_templates(
    applications: &mut [ApplicationConfig],
    raw_applications: Option<&Value>,
    templates: &[DeviceTemplate],
    valid: &HashSet<String>,
    origin: impl Fn(&KeyPath) -> String,
    problems: &mut Vec<ConfigProblem>,
) {
    let named = named_templates(raw_applications);
    for (a, (application, names)) in applications.iter_mut().zip(&named).enumerate() {
        for (d, (device, name)) in application.devices.iter_mut().zip(names).enumerate() {
            let key = || {
                KeyPath::root("application")
                    .index(a)
                    .key("device")
                    .index(d)
                    .key(TEMPLATE_KEY)
            };
            let name = match name {
                Named::Nothing => continue,
                Named::Template(name) => name,
                Named::NotAString => {
                    let key = key();
                    problems.push(ConfigProblem::new(
                        key.to_string(),
                        format!(
                            "invalid type: expected a string, the name of a [[device_template]]{}",
                            origin(&key)
                        ),
                    ));
                    continue;
                }
            };
            let Some(template) = templates.iter().find(|t| &t.name == name) else {
                let key = key();
                let known: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
                let known = if known.is_empty() {
                    "the file defines no [[device_template]]".to_string()
                } else {
                    format!("templates: {}", known.join(", "))
                };
                problems.push(ConfigProblem::new(
                    key.to_string(),
                    format!("no template named {name:?}{}; {known}", origin(&key)),
                ));
                continue;
            };
            if !valid.contains(name) {
                continue;
            }
            device.metrics = merged(&template.metrics, &device.metrics, |m| &m.metric_name);
            device.commands = merged(&template.commands, &device.commands, |c| &c.command_name);
        }
    }
}

/// The template's entries in its order, each replaced by the device's entry of the same name,
/// then the device's other entries in theirs.
fn merged<T: Clone>(from_template: &[T], own: &[T], name: impl Fn(&T) -> &str) -> Vec<T> {
    let mut out: Vec<T> = from_template
        .iter()
        .map(|entry| {
            own.iter()
                .find(|o| name(o) == name(entry))
                .unwrap_or(entry)
                .clone()
        })
        .collect();
    out.extend(
        own.iter()
            .filter(|o| !from_template.iter().any(|t| name(t) == name(o)))
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_entries_replace_the_template_ones_by_name_and_add_the_rest() {
        let template = ["a", "b", "c"];
        let own = ["d", "b"];
        let names: Vec<&str> = merged(&template, &own, |s| s).into_iter().collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        let pairs = [("a", 1), ("b", 1)];
        let own = [("b", 2)];
        assert_eq!(merged(&pairs, &own, |p| p.0), [("a", 1), ("b", 2)]);
    }
}
