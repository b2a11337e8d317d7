//! Discovery: the devices of `discover = true` applications as ChirpStack lists them, each with
//! the measurements its device profile declares.
//!
//! One discovery lists every such application (paginated, applications in parallel), reads each
//! distinct device profile once, and gives a [`Topology`]: what the configuration merge
//! (`config::discovered`) turns into devices and metrics. The last topology is kept on disk
//! beside the database ([`topology_path`]), so a restart during a ChirpStack outage still serves
//! every known device.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chirpstack_api::api::MeasurementKind;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::{ChirpstackClient, DeviceIdentity, ProfileMeasurements, UpstreamError};
use super::poll::paginate;
use crate::config::{AppConfig, DeviceRemoval, MetricType};
use crate::model::Timestamp;

/// Largest topology file read back (10,000 devices x 10 measurements is about 2 MB).
const MAX_TOPOLOGY_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Listings of one application taken before one that did not change while it was paged is
/// given up on (the last one is used).
const MAX_LISTING_ATTEMPTS: u32 = 3;
/// Longest measurement key taken as a metric name.
const MAX_KEY_CHARS: usize = 200;

/// One measurement a discovered device reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    /// The measurement key: both the metric name and the uplink field.
    pub key: String,
    pub metric_type: MetricType,
}

/// One device of a `discover = true` application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredDevice {
    pub dev_eui: String,
    pub name: String,
    pub device_profile_id: String,
    pub measurements: Vec<Measurement>,
    /// No longer listed by ChirpStack; kept because `on_device_removed = "keep"`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

/// The discovered devices of every `discover = true` application, by application id, each
/// application's devices in DevEUI order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// When ChirpStack last answered a whole discovery (None: never).
    #[serde(default)]
    pub discovered_at: Option<Timestamp>,
    #[serde(default)]
    pub applications: BTreeMap<String, Vec<DiscoveredDevice>>,
}

/// Something discovery left out, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub device_profile_id: String,
    pub key: String,
    pub reason: &'static str,
}

/// What one discovery found.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub topology: Topology,
    pub skipped: Vec<Skipped>,
    /// Device profiles read.
    pub profiles: usize,
    /// API calls made.
    pub calls: usize,
}

impl Topology {
    pub fn device_count(&self) -> usize {
        self.applications.values().map(Vec::len).sum()
    }

    /// The DevEUIs ChirpStack listed (every device not marked gone), in any application.
    pub fn listed_ids(&self) -> impl Iterator<Item = &str> {
        self.applications
            .values()
            .flatten()
            .filter(|d| !d.gone)
            .map(|d| d.dev_eui.as_str())
    }

    /// This discovery's answer applied to the `previous` topology: devices no longer listed are
    /// kept, marked gone, under [`DeviceRemoval::Keep`] — unless ChirpStack now lists them in
    /// another application (a device deleted and created again elsewhere). Applications this
    /// discovery did not cover keep their previous devices; one no longer discovered is
    /// dropped by [`Topology::for_config`].
    pub fn succeeding(mut self, previous: &Topology, removal: DeviceRemoval) -> Topology {
        for (application, devices) in &previous.applications {
            self.applications
                .entry(application.clone())
                .or_insert_with(|| devices.clone());
        }
        if removal == DeviceRemoval::Keep {
            let listed: BTreeSet<String> = self.listed_ids().map(str::to_string).collect();
            for (application, devices) in &mut self.applications {
                let Some(before) = previous.applications.get(application) else {
                    continue;
                };
                let here: BTreeSet<&str> = devices.iter().map(|d| d.dev_eui.as_str()).collect();
                let kept: Vec<DiscoveredDevice> = before
                    .iter()
                    .filter(|d| !here.contains(d.dev_eui.as_str()) && !listed.contains(&d.dev_eui))
                    .map(|d| DiscoveredDevice {
                        gone: true,
                        ..d.clone()
                    })
                    .collect();
                if !kept.is_empty() {
                    devices.extend(kept);
                    devices.sort_by(|a, b| a.dev_eui.cmp(&b.dev_eui));
                }
            }
        }
        self
    }

    /// The part of this topology that applications of `config` still discover.
    pub fn for_config(mut self, config: &AppConfig) -> Topology {
        let wanted: BTreeSet<&str> = discovered_applications(config).collect();
        self.applications
            .retain(|id, _| wanted.contains(id.as_str()));
        self
    }
}

/// The ids of the applications of `config` with `discover = true`.
pub fn discovered_applications(config: &AppConfig) -> impl Iterator<Item = &str> {
    config
        .applications
        .iter()
        .filter(|a| a.discover)
        .map(|a| a.application_id.as_str())
}

/// The metric type of a measurement kind (`None`: not tracked by ChirpStack, skipped).
pub fn metric_type_of(kind: MeasurementKind) -> Option<MetricType> {
    match kind {
        MeasurementKind::Counter | MeasurementKind::Absolute => Some(MetricType::Int),
        MeasurementKind::Gauge => Some(MetricType::Float),
        MeasurementKind::String => Some(MetricType::String),
        MeasurementKind::Unknown => None,
    }
}

/// Lists the devices of `applications` and reads their device profiles: at most
/// `concurrency` calls in flight, `page_size` devices per listing call. Fails as a whole when
/// any listing fails (a partial answer would look like removed devices); a device profile that
/// no longer exists gives its devices no measurements.
pub async fn discover(
    client: &ChirpstackClient,
    applications: &[String],
    page_size: u32,
    concurrency: usize,
) -> Result<Discovery, UpstreamError> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut calls = 0;
    let mut listings = JoinSet::new();
    for application in applications.iter().cloned() {
        let (client, permits) = (client.clone(), permits.clone());
        listings.spawn(async move {
            let mut calls = 0;
            let mut attempt = 1;
            loop {
                // Every total the pages claimed: a device created or deleted between two pages
                // shifts the offsets, so one may be missed; the listing is then taken again.
                let totals = std::sync::Mutex::new(BTreeSet::new());
                let devices = paginate(page_size, |limit, offset| {
                    calls += 1;
                    let (client, permits, application, totals) =
                        (&client, &permits, &application, &totals);
                    async move {
                        let _permit = permits.acquire().await;
                        let page = client
                            .list_device_identities_page(application, limit, offset)
                            .await?;
                        if let Ok(mut totals) = totals.lock() {
                            totals.insert(page.0);
                        }
                        Ok(page)
                    }
                })
                .await;
                let totals = totals.into_inner().unwrap_or_default();
                let whole = devices
                    .as_ref()
                    .map_or(true, |d| listing_is_whole(&totals, d.len()));
                if whole || attempt == MAX_LISTING_ATTEMPTS {
                    break (application, calls, devices);
                }
                attempt += 1;
            }
        });
    }
    let mut listed: BTreeMap<String, Vec<DeviceIdentity>> = BTreeMap::new();
    while let Some(joined) = listings.join_next().await {
        let (application, count, devices) = joined.map_err(task_failed)?;
        calls += count;
        listed.insert(application, devices?);
    }

    let profile_ids: BTreeSet<String> = listed
        .values()
        .flatten()
        .map(|d| d.device_profile_id.clone())
        .collect();
    let mut reads = JoinSet::new();
    for id in profile_ids.iter().cloned() {
        let (client, permits) = (client.clone(), permits.clone());
        reads.spawn(async move {
            let _permit = permits.acquire().await;
            let answer = client.get_device_profile(&id).await;
            (id, answer)
        });
    }
    let mut profiles: HashMap<String, ProfileMeasurements> = HashMap::new();
    let mut skipped = Vec::new();
    while let Some(joined) = reads.join_next().await {
        let (id, answer) = joined.map_err(task_failed)?;
        calls += 1;
        match answer {
            Ok(profile) => {
                profiles.insert(id, profile);
            }
            Err(UpstreamError::NotFound(_)) => skipped.push(Skipped {
                device_profile_id: id,
                key: String::new(),
                reason: "the device profile does not exist (deleted since the listing?)",
            }),
            Err(error) => return Err(error),
        }
    }

    let mut measurements_of: HashMap<&str, Vec<Measurement>> = HashMap::new();
    for profile in profiles.values() {
        let mut kept = Vec::new();
        for (key, kind) in &profile.measurements {
            match (metric_type_of(*kind), key_problem(key)) {
                (None, _) => skipped.push(Skipped {
                    device_profile_id: profile.id.clone(),
                    key: key.clone(),
                    reason: "its kind is UNKNOWN (ChirpStack does not track it)",
                }),
                (Some(_), Some(reason)) => skipped.push(Skipped {
                    device_profile_id: profile.id.clone(),
                    key: key.clone(),
                    reason,
                }),
                (Some(metric_type), None) => kept.push(Measurement {
                    key: key.clone(),
                    metric_type,
                }),
            }
        }
        measurements_of.insert(profile.id.as_str(), kept);
    }
    let applications = listed
        .into_iter()
        .map(|(application, devices)| {
            let mut devices: Vec<DiscoveredDevice> = devices
                .into_iter()
                .map(|d| DiscoveredDevice {
                    measurements: measurements_of
                        .get(d.device_profile_id.as_str())
                        .cloned()
                        .unwrap_or_default(),
                    dev_eui: d.dev_eui.to_ascii_lowercase(),
                    name: d.name,
                    device_profile_id: d.device_profile_id,
                    gone: false,
                })
                .collect();
            devices.sort_by(|a, b| a.dev_eui.cmp(&b.dev_eui));
            devices.dedup_by(|a, b| a.dev_eui == b.dev_eui);
            (application, devices)
        })
        .collect();
    Ok(Discovery {
        topology: Topology {
            discovered_at: Some(Timestamp::now()),
            applications,
        },
        skipped,
        profiles: profiles.len(),
        calls,
    })
}

/// Whether a paged listing saw one unchanged list: every page claimed the same total, and
/// that many devices were collected (or the collection's cap).
fn listing_is_whole(totals: &BTreeSet<u32>, collected: usize) -> bool {
    match totals.iter().collect::<Vec<_>>().as_slice() {
        [total] => collected == **total as usize || collected >= super::client::MAX_LISTED_ITEMS,
        [] => collected == 0,
        _ => false,
    }
}

fn task_failed(error: tokio::task::JoinError) -> UpstreamError {
    UpstreamError::Other {
        code: "Internal".into(),
        message: format!("a discovery task failed: {error}"),
    }
}

/// Why a measurement key cannot be a metric name (they share the rules of `metric_name`).
fn key_problem(key: &str) -> Option<&'static str> {
    if key.trim().is_empty() {
        Some("its key is empty")
    } else if key.contains('/') {
        Some("its key contains '/', which a metric name (part of a NodeId) must not")
    } else if key.chars().count() > MAX_KEY_CHARS {
        Some("its key is longer than 200 characters")
    } else if key.chars().any(char::is_control) {
        Some("its key contains control characters")
    } else {
        None
    }
}

/// Where the last discovered topology of the database at `database_path` is kept: beside it,
/// `<name>.discovered.json`.
pub fn topology_path(database_path: &Path) -> PathBuf {
    let mut name = database_path
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_else(|| "opcgw".into());
    name.push(".discovered.json");
    database_path.with_file_name(name)
}

/// The topology kept at `path`; an empty one when there is none yet. A file that cannot be
/// read or parsed is an error (the caller says so and starts from nothing).
pub fn load_topology(path: &Path) -> Result<Topology, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Topology::default()),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    use std::io::Read;
    let mut text = Vec::new();
    file.take(MAX_TOPOLOGY_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_TOPOLOGY_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_TOPOLOGY_FILE_BYTES} bytes",
            path.display()
        ));
    }
    serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{} is not a discovered topology ({e}); it is replaced at the next discovery",
            path.display()
        )
    })
}

/// Keeps `topology` at `path`, atomically.
pub fn save_topology(path: &Path, topology: &Topology) -> Result<(), String> {
    let bytes = serde_json::to_vec(topology).map_err(|e| e.to_string())?;
    crate::config::edit::replace_atomically(path, &bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
