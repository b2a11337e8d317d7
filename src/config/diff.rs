//! What changed between two configurations, and what a reload may do about it.
//!
//! Every knob is one of three classes (docs/configuration.md, "Reload (SIGHUP)"): *hot* knobs are applied by the
//! running actors, *restart-required* knobs are bound at start (sockets, identities, files) so
//! a reload that changes one is rejected, and *topology* (applications, devices, metrics,
//! commands) is applied live to the address space and the console.

use std::collections::{BTreeMap, BTreeSet};

use super::schema::{AppConfig, ApplicationConfig, DeviceConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KnobClass {
    Hot,
    RestartRequired,
    Topology,
}

/// Knobs the running gateway applies without a restart.
const HOT_KNOBS: &[&str] = &[
    "logging.level",
    "chirpstack.polling_frequency",
    "chirpstack.retry",
    "chirpstack.delay",
    "chirpstack.list_page_size",
    "chirpstack.poll_concurrency",
    "chirpstack.command_timeout_seconds",
    "chirpstack.discovery_interval_seconds",
    "chirpstack.on_device_removed",
    "opcua.stale_threshold_seconds",
    "opcua.bad_threshold_seconds",
    "opcua.max_history_data_results_per_node",
    "storage.retention_days",
];

/// The class of a knob by its dotted key. Anything not known to be hot is restart-required,
/// so a new knob is safe until someone makes it hot on purpose.
pub fn classify_knob(key: &str) -> KnobClass {
    if key == "application" || key.starts_with("application.") || key.starts_with("application[") {
        KnobClass::Topology
    } else if HOT_KNOBS.contains(&key) {
        KnobClass::Hot
    } else {
        KnobClass::RestartRequired
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KnobChange {
    pub key: String,
    pub class: KnobClass,
}

/// Topology changes by identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TopologyDiff {
    pub added_applications: Vec<String>,
    pub removed_applications: Vec<String>,
    pub modified_applications: Vec<String>,
    pub added_devices: Vec<String>,
    pub removed_devices: Vec<String>,
    /// Devices whose name, metrics, commands, threshold or application changed.
    pub modified_devices: Vec<String>,
}

impl TopologyDiff {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The difference between a live configuration and a candidate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConfigDiff {
    /// Changed non-topology knobs, in key order.
    pub changes: Vec<KnobChange>,
    pub topology: TopologyDiff,
}

impl ConfigDiff {
    pub fn between(old: &AppConfig, new: &AppConfig) -> Self {
        let before = flatten(old);
        let after = flatten(new);
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let mut changes: Vec<KnobChange> = keys
            .into_iter()
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| KnobChange {
                key: k.clone(),
                class: classify_knob(k),
            })
            .collect();
        // Secrets serialise redacted, so they are compared here, by value, in constant time.
        let secrets = [
            (
                "chirpstack.api_token",
                old.chirpstack.api_token != new.chirpstack.api_token,
            ),
            (
                "opcua.user_password",
                old.opcua.user_password != new.opcua.user_password,
            ),
            ("control.token", old.control.token != new.control.token),
        ];
        for (key, changed) in secrets {
            if changed && !changes.iter().any(|c| c.key == key) {
                changes.push(KnobChange {
                    key: key.into(),
                    class: classify_knob(key),
                });
            }
        }
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        Self {
            changes,
            topology: topology_diff(old, new),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.topology.is_empty()
    }

    pub fn includes_topology_change(&self) -> bool {
        !self.topology.is_empty()
    }

    /// Sections with at least one change (`application` for topology).
    pub fn changed_sections(&self) -> BTreeSet<&str> {
        let mut sections: BTreeSet<&str> = self
            .changes
            .iter()
            .map(|c| c.key.split('.').next().unwrap_or(c.key.as_str()))
            .collect();
        if self.includes_topology_change() {
            sections.insert("application");
        }
        sections
    }

    /// The first (in key order) change a running gateway cannot apply.
    pub fn first_restart_required(&self) -> Option<&KnobChange> {
        self.changes
            .iter()
            .find(|c| c.class == KnobClass::RestartRequired)
    }

    pub fn changed(&self, key: &str) -> bool {
        self.changes.iter().any(|c| c.key == key)
    }
}

/// `section.knob` -> rendered value for every non-topology knob.
fn flatten(config: &AppConfig) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(toml::Value::Table(root)) = toml::Value::try_from(config) else {
        return out;
    };
    for (section, value) in root {
        // Topology is diffed by id below; templates only matter through the devices they
        // expanded into (or a discovered device takes), which that diff sees.
        if section == "application" || section == "device_template" {
            continue;
        }
        match value {
            toml::Value::Table(table) => {
                for (knob, value) in table {
                    out.insert(format!("{section}.{knob}"), value.to_string());
                }
            }
            other => {
                out.insert(section, other.to_string());
            }
        }
    }
    out
}

/// What makes an application modified: its name, and whether and how it discovers devices.
type AppShape<'a> = (&'a str, bool, &'a BTreeMap<String, String>);

fn shape(app: &ApplicationConfig) -> AppShape<'_> {
    (app.application_name.as_str(), app.discover, &app.templates)
}

fn topology_diff(old: &AppConfig, new: &AppConfig) -> TopologyDiff {
    let mut diff = TopologyDiff::default();
    let old_apps: BTreeMap<&str, AppShape> = old
        .applications
        .iter()
        .map(|a| (a.application_id.as_str(), shape(a)))
        .collect();
    let new_apps: BTreeMap<&str, AppShape> = new
        .applications
        .iter()
        .map(|a| (a.application_id.as_str(), shape(a)))
        .collect();
    for (id, now) in &new_apps {
        match old_apps.get(id) {
            None => diff.added_applications.push(id.to_string()),
            Some(before) if before != now => diff.modified_applications.push(id.to_string()),
            Some(_) => {}
        }
    }
    diff.removed_applications = old_apps
        .keys()
        .filter(|id| !new_apps.contains_key(*id))
        .map(|id| id.to_string())
        .collect();

    let devices = |config: &'_ AppConfig| -> BTreeMap<String, (String, DeviceConfig)> {
        config
            .devices()
            .map(|(app, dev)| {
                (
                    dev.device_id.clone(),
                    (app.application_id.clone(), dev.clone()),
                )
            })
            .collect()
    };
    let (old_devices, new_devices) = (devices(old), devices(new));
    for (id, device) in &new_devices {
        match old_devices.get(id) {
            None => diff.added_devices.push(id.clone()),
            Some(old_device) if old_device != device => diff.modified_devices.push(id.clone()),
            Some(_) => {}
        }
    }
    diff.removed_devices = old_devices
        .keys()
        .filter(|id| !new_devices.contains_key(*id))
        .cloned()
        .collect();
    diff
}
