//! Discovery in the reload actor: the live configuration is the file's with the discovered
//! devices merged in, so the actor that owns the one owns the other. Discoveries run on a task
//! (the mailbox keeps serving reloads and edits meanwhile) and come back as a message; one runs
//! at a time, and requests arriving meanwhile get its answer.
//!
//! A failed discovery changes nothing: the last known topology stays served, and it is retried
//! with backoff (5 s doubling, at most the discovery interval).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opcgw::chirpstack::client::{ChirpstackClient, ClientSettings, UpstreamError};
use opcgw::chirpstack::discovery::{
    discover, discovered_applications, load_topology, save_topology, Discovery, Topology,
};
use opcgw::config::discovered::merge;
use opcgw::config::AppConfig;
use opcgw::security::sanitize_for_log;
use ractor::RpcReplyPort;
use tracing::{info, warn};

use super::{ReloadState, MAX_ERROR_CHARS};
use crate::tree::messages::{DiscoverOutcome, DiscoverTrigger, ReloadMsg};

/// First retry delay after a failed discovery (doubling up to the discovery interval).
const RETRY_FIRST: Duration = Duration::from_secs(5);

pub(super) struct DiscoveryState {
    /// The devices discovery knows (what the live configuration merges in).
    pub(super) topology: Topology,
    /// Where it is kept between runs.
    path: PathBuf,
    running: bool,
    /// Requests answered when the running discovery ends.
    waiting: Vec<RpcReplyPort<DiscoverOutcome>>,
    /// Consecutive failed discoveries (sets the retry delay).
    failures: u32,
    /// The timer in force; older ticks are ignored.
    tick: u64,
    /// What the timer was set for: the interval and the applications discovered.
    armed: Option<(u64, Vec<String>)>,
    /// The applications the running discovery lists.
    covering: Vec<String>,
    /// Skipped measurements already logged (each is logged once per process).
    reported: HashSet<(String, String)>,
}

impl DiscoveryState {
    /// The topology kept beside the database of `config` (nothing when none is kept or it
    /// cannot be read, which is logged).
    pub(super) fn load(config: &AppConfig) -> Self {
        let path = opcgw::chirpstack::discovery::topology_path(&config.storage.database_path);
        let topology = known_topology(&path, config);
        Self {
            topology,
            path,
            running: false,
            waiting: Vec::new(),
            failures: 0,
            tick: 0,
            armed: None,
            covering: Vec::new(),
            reported: HashSet::new(),
        }
    }
}

/// The kept topology for the applications `config` discovers (empty when it discovers none:
/// the file is not even read).
pub fn known_topology(path: &std::path::Path, config: &AppConfig) -> Topology {
    if discovered_applications(config).next().is_none() {
        return Topology::default();
    }
    match load_topology(path) {
        Ok(topology) => topology.for_config(config),
        Err(error) => {
            warn!(
                event = "discovered_topology_unreadable",
                error = error.as_str(),
                "starting without the devices discovered before; the next discovery lists them again"
            );
            Topology::default()
        }
    }
}

/// The live configuration of a gateway starting with `file`: the file's, with the devices
/// discovered before (kept beside the database) merged in, so they are served from the first
/// moment, ChirpStack reachable or not.
pub fn starting_config(file: &Arc<AppConfig>) -> Arc<AppConfig> {
    let path = opcgw::chirpstack::discovery::topology_path(&file.storage.database_path);
    merged_or_file(file, &known_topology(&path, file))
}

/// `file` with `topology` merged in, when that is a valid configuration. With nothing to
/// merge it is `file` itself, shared rather than copied (at 10,000 devices a copy of the
/// configuration is ~12 MB), and not validated again (it was when it was loaded).
fn merged(file: &Arc<AppConfig>, topology: &Topology) -> Result<Arc<AppConfig>, String> {
    if topology.device_count() == 0 {
        return Ok(file_alone(file));
    }
    let merged = merge(file, topology);
    let report = opcgw::config::validate(&merged);
    if report.errors.is_empty() {
        return Ok(Arc::new(merged));
    }
    let problems: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    Err(sanitize_for_log(&problems.join("; "), MAX_ERROR_CHARS))
}

/// `file` with no device marked discovered (what a merge of no device gives).
fn file_alone(file: &Arc<AppConfig>) -> Arc<AppConfig> {
    if file.discovered.is_empty() {
        return Arc::clone(file);
    }
    let mut alone = AppConfig::clone(file);
    alone.discovered.clear();
    Arc::new(alone)
}

/// `file` with `topology` merged in; `file` alone (said in the log) when the merge is not a
/// valid configuration: the file's devices are served whatever discovery kept.
pub(super) fn merged_or_file(file: &Arc<AppConfig>, topology: &Topology) -> Arc<AppConfig> {
    merged(file, topology).unwrap_or_else(|error| {
        warn!(
            event = "discovery_rejected",
            error = error.as_str(),
            "the discovered devices do not make a valid configuration with this file; the \
             file's devices are served alone until the next discovery"
        );
        file_alone(file)
    })
}

impl ReloadState {
    /// Starts a discovery (or joins the running one).
    pub(super) fn discover(
        &mut self,
        trigger: DiscoverTrigger,
        reply: Option<RpcReplyPort<DiscoverOutcome>>,
    ) {
        let applications: Vec<String> = discovered_applications(&self.file)
            .map(str::to_string)
            .collect();
        if applications.is_empty() {
            if let Some(reply) = reply {
                let _ = reply.send(DiscoverOutcome::Failed {
                    error: "no [[application]] has discover = true: every device is the file's"
                        .into(),
                });
            }
            return;
        }
        self.discovery.waiting.extend(reply);
        if self.discovery.running {
            return;
        }
        self.discovery.running = true;
        self.discovery.covering = applications.clone();
        info!(
            event = "discovery_started",
            trigger = trigger.as_str(),
            applications = applications.len()
        );
        let cs = &self.file.chirpstack;
        let settings = ClientSettings::from_config(cs);
        let (page_size, concurrency) = (cs.list_page_size, cs.poll_concurrency as usize);
        let myself = self.myself.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let run = tokio::spawn(async move {
                let client = ChirpstackClient::new(settings)?;
                discover(&client, &applications, page_size, concurrency)
                    .await
                    .map(Box::new)
            });
            let result = run.await.unwrap_or_else(|panic| {
                Err(UpstreamError::Other {
                    code: "Internal".into(),
                    message: format!("the discovery task failed: {panic}"),
                })
            });
            let _ = myself.cast(ReloadMsg::Discovered { result, started });
        });
    }

    /// A discovery ended: adopt what it found, answer whoever asked, set the next one.
    pub(super) fn discovered(
        &mut self,
        result: Result<Box<Discovery>, UpstreamError>,
        started: Instant,
    ) {
        self.discovery.running = false;
        // A reload turned discovery on for an application while this one ran: discover again
        // at once, and let whoever asked wait for that answer.
        let uncovered = discovered_applications(&self.file)
            .any(|id| !self.discovery.covering.iter().any(|c| c == id));
        let outcome = match result {
            Ok(found) => {
                self.discovery.failures = 0;
                self.adopt(*found, started)
            }
            Err(error) => {
                self.discovery.failures = self.discovery.failures.saturating_add(1);
                let error = sanitize_for_log(&error.to_string(), MAX_ERROR_CHARS);
                warn!(
                    event = "discovery_failed",
                    error = error.as_str(),
                    known_devices = self.discovery.topology.device_count(),
                    failures = self.discovery.failures,
                    "the devices discovered before stay served"
                );
                DiscoverOutcome::Failed { error }
            }
        };
        if uncovered {
            self.discover(DiscoverTrigger::Reload, None);
            return;
        }
        for reply in std::mem::take(&mut self.discovery.waiting) {
            let _ = reply.send(outcome.clone());
        }
        self.schedule_discovery();
    }

    /// The periodic discovery, when `generation` is the timer in force.
    pub(super) fn discover_tick(&mut self, generation: u64) {
        if generation == self.discovery.tick {
            self.discover(DiscoverTrigger::Timer, None);
        }
    }

    /// Sets the next periodic discovery again when a reload changed what it is for (the
    /// interval, or the applications discovered), so that frequent reloads do not keep
    /// pushing it back.
    pub(super) fn rearm_if_changed(&mut self) {
        let wanted = (
            self.file.chirpstack.discovery_interval_seconds,
            discovered_applications(&self.file)
                .map(str::to_string)
                .collect::<Vec<_>>(),
        );
        if self.discovery.armed.as_ref() != Some(&wanted) && !self.discovery.running {
            self.schedule_discovery();
        }
    }

    /// Sets the next periodic discovery (none when no application discovers).
    pub(super) fn schedule_discovery(&mut self) {
        self.discovery.tick += 1;
        let applications: Vec<String> = discovered_applications(&self.file)
            .map(str::to_string)
            .collect();
        self.discovery.armed = Some((
            self.file.chirpstack.discovery_interval_seconds,
            applications.clone(),
        ));
        if applications.is_empty() {
            return;
        }
        let interval = Duration::from_secs(self.file.chirpstack.discovery_interval_seconds);
        let delay = match self.discovery.failures {
            0 => interval,
            n => RETRY_FIRST
                .saturating_mul(1 << (n - 1).min(16))
                .min(interval),
        };
        let generation = self.discovery.tick;
        self.myself
            .send_after(delay, move || ReloadMsg::DiscoverTick { generation });
    }

    fn adopt(&mut self, found: Discovery, started: Instant) -> DiscoverOutcome {
        let listed = found.topology.device_count();
        for skipped in &found.skipped {
            let key = (skipped.device_profile_id.clone(), skipped.key.clone());
            if self.discovery.reported.insert(key) {
                info!(
                    event = "discovery_measurement_skipped",
                    device_profile_id = skipped.device_profile_id.as_str(),
                    key = sanitize_for_log(&skipped.key, 200).as_str(),
                    reason = skipped.reason
                );
            }
        }
        let topology = found
            .topology
            .succeeding(
                &self.discovery.topology,
                self.file.chirpstack.on_device_removed,
            )
            .for_config(&self.file);
        // Checked before it is kept or saved: a topology the live configuration cannot take
        // is refused whole, and the devices known before stay.
        let merged = match merged(&self.file, &topology) {
            Ok(merged) => merged,
            Err(error) => {
                warn!(
                    event = "discovery_rejected",
                    error = error.as_str(),
                    "the discovered devices do not make a valid configuration; the live one stays"
                );
                return DiscoverOutcome::Failed {
                    error: format!("the discovered devices were refused: {error}"),
                };
            }
        };
        let gone = topology
            .applications
            .values()
            .flatten()
            .filter(|d| d.gone)
            .count();
        if topology.applications != self.discovery.topology.applications {
            if let Err(error) = save_topology(&self.discovery.path, &topology) {
                warn!(
                    event = "discovered_topology_save_failed",
                    error = error.as_str(),
                    "a restart during a ChirpStack outage would serve the devices kept before"
                );
            }
        }
        self.discovery.topology = topology;
        let diff = opcgw::config::ConfigDiff::between(&self.base.config.config, &merged);
        let (added_devices, removed_devices) = (
            diff.topology.added_devices.clone(),
            diff.topology.removed_devices.clone(),
        );
        self.make_live(merged, diff);
        let duration_ms = started.elapsed().as_millis() as u64;
        info!(
            event = "discovery_succeeded",
            listed,
            gone,
            added_devices = added_devices.len(),
            removed_devices = removed_devices.len(),
            skipped_measurements = found.skipped.len(),
            calls = found.calls,
            duration_ms
        );
        DiscoverOutcome::Succeeded {
            listed,
            gone,
            added_devices,
            removed_devices,
            skipped_measurements: found.skipped.len(),
            calls: found.calls,
            duration_ms,
            generation: self.base.config.generation,
        }
    }

    /// Whether the file `candidate` discovers an application the topology has never seen
    /// (it was just turned on): a discovery should follow.
    pub(super) fn discovers_something_new(&self, candidate: &AppConfig) -> bool {
        discovered_applications(candidate)
            .any(|id| !self.discovery.topology.applications.contains_key(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_nothing_discovered_the_live_configuration_is_the_files_not_a_copy() {
        let file = Arc::new(AppConfig::default());
        let live = merged_or_file(&file, &Topology::default());
        assert!(Arc::ptr_eq(&file, &live));
        assert!(Arc::ptr_eq(&file, &starting_config(&file)));
    }
}
