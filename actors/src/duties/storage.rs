//! The storage actor: the only owner of the redb file.
//!
//! It appends what the poller's forwarder hands it (one durable commit per batch), answers
//! queries of the OPC UA server, the web console and the control socket, keeps the command
//! queue, and prunes history older than `retention_days` in bounded chunks so that a prune
//! never holds writers up for long.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use opcgw::chirpstack::client::DeviceSummary;
use opcgw::commands::{CommandRequest, CommandState};
use opcgw::metrics::{metrics, observe_since};
use opcgw::model::{Sample, Timestamp};
use opcgw::storage::{
    CommandFilter, CommandRecord, ReadSlot, StorageError, Store, StoreOptions, MAX_STATUS_KEY_BYTES,
};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, ActorStatus};
use tracing::{debug, error, info, warn};

use crate::tree::child::Unrecoverable;
use crate::tree::duty::DutyBase;
use crate::tree::messages::{Common, ConfigUpdate, Feed, PollerMsg, StorageFailure, StorageMsg};

pub const ROLE: &str = "storage";

/// Rows deleted per retention transaction.
pub const PRUNE_CHUNK_ROWS: usize = 20_000;
/// Time between two retention passes.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// The first pass runs a minute after start, not during it: a restart against a ChirpStack
/// that kept running catches up first (10,000 devices replay ~1 million values in 10-20 s),
/// and a pass looks at every series (110,000 seeks there) while appends wait.
const FIRST_PRUNE_DELAY: Duration = Duration::from_secs(60);
/// Commands handed to a (re)started poller, at most.
const MAX_PENDING_COMMANDS: usize = opcgw::storage::MAX_COMMAND_PAGE;

pub struct StorageActor;

pub struct StorageArgs {
    pub config: ConfigUpdate,
    /// Where the open database is published for reads on other tasks (the tree's slot, from
    /// `Peers::reads`).
    pub reads: ReadSlot,
}

#[derive(Debug, Default, Clone, Copy)]
struct StorageCounters {
    appended: u64,
    duplicates: u64,
    failed_writes: u64,
    pruned: u64,
}

pub struct StorageState {
    base: DutyBase,
    myself: ActorRef<StorageMsg>,
    store: Store,
    counters: StorageCounters,
    /// The poller instance that last received the pending commands.
    poller: Option<ActorId>,
    /// Device health from the poller as last persisted (one status document per device,
    /// rewritten only when it changes).
    devices: HashMap<String, DeviceSummary>,
    prune_generation: u64,
}

impl Actor for StorageActor {
    type Msg = StorageMsg;
    type State = StorageState;
    type Arguments = StorageArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<StorageMsg>,
        args: StorageArgs,
    ) -> Result<StorageState, ActorProcessingErr> {
        let StorageArgs { config, reads } = args;
        let path = config.config.storage.database_path.clone();
        let options = StoreOptions {
            cache_bytes: config.config.storage.cache_size_mb as usize * 1024 * 1024,
            ..StoreOptions::default()
        };
        let mut store = match blocking(|| Store::open_with(&path, options)) {
            Ok(store) => {
                open_failures::cleared(&path);
                store
            }
            Err(error) => {
                open_failures::report(&path, &error);
                if error.is_locked_by_another_process() {
                    // Retrying cannot help while the other opcgw runs, and running on without
                    // storage forever helps nobody: stop, with the reason, and let the service
                    // manager (or the operator) sort it out.
                    return Err(Unrecoverable(error.to_string()).into());
                }
                return Err(error.into());
            }
        };
        store.publish(&reads);
        let counts = store.counts()?;
        info!(
            event = "storage_opened",
            path = %path.display(),
            series = counts.series,
            history_rows = counts.history_rows,
            commands = counts.commands,
            file_bytes = counts.file_bytes
        );
        let mut state = StorageState {
            base: DutyBase::new(ROLE, config),
            myself: myself.clone(),
            store,
            counters: StorageCounters::default(),
            poller: None,
            devices: HashMap::new(),
            prune_generation: 0,
        };
        state.schedule_prune(FIRST_PRUNE_DELAY);
        state.export_size();
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<StorageMsg>,
        message: StorageMsg,
        state: &mut StorageState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StorageMsg::Common(common) => {
                let retention_changed = matches!(&common, Common::ConfigChanged(u) if u.diff.changed("storage.retention_days"));
                let summary = state.summary();
                state.base.handle_common(common, |_| summary)?;
                if retention_changed {
                    info!(
                        event = "retention_changed",
                        retention_days = state.base.config.config.storage.retention_days
                    );
                    state.schedule_prune(Duration::ZERO);
                }
                state.hand_pending_commands_to_a_new_poller();
            }
            StorageMsg::Append {
                pieces,
                fold,
                reply,
            } => {
                let started = std::time::Instant::now();
                let slices: Vec<&[Sample]> = pieces.iter().map(|piece| &**piece).collect();
                let result = blocking(|| state.store.append_pieces(&slices, fold));
                match &result {
                    Ok(report) => {
                        let m = metrics();
                        observe_since(&m.storage_commit_seconds, started);
                        m.samples_stored.inc_by(report.written as u64);
                        state.export_size();
                        state.counters.appended += report.written as u64;
                        state.counters.duplicates += report.duplicates as u64;
                    }
                    Err(error) => {
                        state.counters.failed_writes += 1;
                        warn!(
                            event = "storage_append_failed",
                            samples = slices.iter().map(|piece| piece.len()).sum::<usize>(),
                            error = error.to_string().as_str()
                        );
                    }
                }
                let gone = file_gone(&result);
                // The poller keeps a batch that was not stored, and replays it after the restart.
                let _ = reply.send(result.map_err(StorageFailure::from));
                gone?;
            }
            StorageMsg::UpdateCommand { update, reply } => {
                let result = blocking(|| state.store.update_command(&update));
                if let Err(error) = &result {
                    warn!(
                        event = "storage_command_update_failed",
                        command_id = update.id,
                        error = error.to_string().as_str()
                    );
                }
                let gone = file_gone(&result);
                let _ = reply.send(result.map_err(StorageFailure::from));
                gone?;
            }
            StorageMsg::Latest { device_id, reply } => {
                let _ = reply.send(
                    state
                        .store
                        .latest(device_id.as_deref())
                        .map_err(StorageFailure::from),
                );
            }
            StorageMsg::History { query, reply } => {
                let _ = reply.send(state.store.history(&query).map_err(StorageFailure::from));
            }
            StorageMsg::Processed { query, reply } => {
                let _ = reply.send(
                    state
                        .store
                        .history_processed(&query)
                        .map_err(StorageFailure::from),
                );
            }
            StorageMsg::Downsample { query, reply } => {
                let _ = reply.send(
                    state
                        .store
                        .history_downsampled(&query)
                        .map_err(StorageFailure::from),
                );
            }
            StorageMsg::EnqueueCommand { command, reply } => {
                // The requester gave up waiting (it told its user the command failed): do not
                // queue it behind their back, or a retry would send it twice.
                if reply.is_closed() {
                    warn!(
                        event = "command_abandoned",
                        device = command.downlink.device_id.as_str(),
                        command = command.downlink.command_name.as_str(),
                        requested_by = command.requested_by.as_str(),
                        "the requester stopped waiting before the command could be stored; not queued"
                    );
                    return Ok(());
                }
                let max_unfinished = state
                    .base
                    .config
                    .config
                    .storage
                    .max_queued_commands_per_device as usize;
                let result = blocking(|| {
                    state
                        .store
                        .enqueue_command(command, Timestamp::now(), max_unfinished)
                });
                if let Ok(record) = &result {
                    info!(
                        event = "command_queued",
                        command_id = record.id,
                        device = record.downlink.device_id.as_str(),
                        requested_by = record.requested_by.as_str()
                    );
                    state.dispatch(record);
                }
                let gone = file_gone(&result);
                let _ = reply.send(result.map_err(StorageFailure::from));
                gone?;
            }
            StorageMsg::Commands { filter, reply } => {
                let _ = reply.send(state.store.commands(&filter).map_err(StorageFailure::from));
            }
            StorageMsg::Counts { reply } => {
                let _ = reply.send(state.store.counts().map_err(StorageFailure::from));
            }
            // Stopping (the tree drains storage's mailbox): the appends queued beside it go
            // first, and retention waits for the next start rather than use the shutdown budget.
            StorageMsg::PruneTick { .. } if myself.get_status() == ActorStatus::Draining => {}
            StorageMsg::PruneTick { generation } => state.prune(generation)?,
            StorageMsg::Feed(feed) => state.feed(feed)?,
        }
        Ok(())
    }
}

/// Fails the actor when the database file was deleted or replaced under the store (after
/// saying so loudly): the restarted actor opens the path again, recreating the file, instead of
/// writing on into a file nobody will ever read.
fn file_gone<T>(result: &Result<T, StorageError>) -> Result<(), ActorProcessingErr> {
    match result {
        Err(error) if error.requires_reopen_by_owner() => {
            error!(
                event = "storage_file_gone",
                path = %error.path().display(),
                error = error.to_string().as_str()
            );
            Err(error.to_string().into())
        }
        _ => Ok(()),
    }
}

/// Start failures of the database, reported once per change rather than once per retry: the
/// supervisor retries a storage that cannot open its file with backoff, and a corrupt file
/// fails the same way every time. The record outlives the actor instances (each failed start
/// is a new one), hence a process-wide table, keyed by path so trees in one test process do
/// not mix.
mod open_failures {
    use super::*;

    static LAST: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

    pub fn report(path: &Path, failure: &StorageError) {
        let text = failure.to_string();
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        let last = last.get_or_insert_with(HashMap::new);
        if last.get(path) == Some(&text) {
            return;
        }
        error!(
            event = "storage_open_failed",
            path = %path.display(),
            kind = ?failure.kind(),
            error = text.as_str(),
            "the storage actor is retried with backoff; the rest of the gateway keeps running"
        );
        last.insert(path.to_path_buf(), text);
    }

    pub fn cleared(path: &Path) {
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_mut().and_then(|l| l.remove(path)).is_some() {
            info!(event = "storage_open_recovered", path = %path.display());
        }
    }
}

/// Runs blocking file I/O without stalling the other tasks of a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl StorageState {
    /// The database file's size, for `/metrics`.
    fn export_size(&self) {
        if let Ok(meta) = std::fs::metadata(self.store.path()) {
            metrics()
                .storage_database_bytes
                .set(i64::try_from(meta.len()).unwrap_or(i64::MAX));
        }
    }

    fn summary(&self) -> String {
        let c = self.counters;
        match self.store.counts() {
            Ok(counts) => format!(
                "database {}: {} series, {} history rows, {} commands, {} bytes; appended {} samples ({} duplicates), {} failed writes, pruned {} rows",
                self.store.path().display(),
                counts.series,
                counts.history_rows,
                counts.commands,
                counts.file_bytes,
                c.appended,
                c.duplicates,
                c.failed_writes,
                c.pruned
            ),
            Err(error) => format!("database {}: {error}", self.store.path().display()),
        }
    }

    fn feed(&mut self, feed: Feed) -> Result<(), ActorProcessingErr> {
        let written = match feed {
            Feed::Upstream(status) => {
                serde_json::to_string(&*status).map(|json| self.store.put_status("upstream", &json))
            }
            Feed::DeviceHealth(devices) => Ok(self.put_device_health(&devices)),
            // Samples and command updates arrive as Append / UpdateCommand, with a reply.
            Feed::Samples(_) | Feed::Command(_) => return Ok(()),
        };
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                warn!(
                    event = "storage_status_write_failed",
                    error = error.to_string().as_str()
                );
                file_gone(&Err::<(), _>(error))
            }
            Err(error) => {
                warn!(
                    event = "storage_status_write_failed",
                    error = error.to_string().as_str()
                );
                Ok(())
            }
        }
    }

    /// Persists the health of the devices whose summary changed, in one transaction. The
    /// first write of this actor also drops the single all-devices document older versions
    /// kept under `devices` (it outgrew the status bound at ~6,500 devices).
    fn put_device_health(&mut self, devices: &[DeviceSummary]) -> Result<(), StorageError> {
        let first = self.devices.is_empty();
        let changed: Vec<(String, String)> = devices
            .iter()
            .filter(|device| self.devices.get(&device.dev_eui) != Some(*device))
            .map(|device| {
                (
                    device_health_key(&device.dev_eui),
                    device_json(device).to_string(),
                )
            })
            .filter(|(key, _)| key.len() <= MAX_STATUS_KEY_BYTES)
            .collect();
        let documents: Vec<(&str, &str)> = changed
            .iter()
            .map(|(key, json)| (key.as_str(), json.as_str()))
            .collect();
        let legacy: &[&str] = if first { &[LEGACY_DEVICES_STATUS] } else { &[] };
        self.store.put_statuses(&documents, legacy)?;
        for device in devices {
            self.devices.insert(device.dev_eui.clone(), device.clone());
        }
        Ok(())
    }

    fn dispatch(&self, record: &CommandRecord) {
        let Some(poller) = self.base.peers.poller() else {
            debug!(event = "command_waits_for_poller", command_id = record.id);
            return;
        };
        let request = CommandRequest {
            id: record.id,
            downlink: record.downlink.clone(),
        };
        let message = match (record.state, &record.queue_item_id) {
            (CommandState::Queued, _) => PollerMsg::Dispatch(request),
            (CommandState::Sent, Some(queue_item_id)) => PollerMsg::Resume {
                request,
                queue_item_id: queue_item_id.clone(),
                transmitted: record.transmitted,
                sent_at: record.updated,
            },
            _ => return,
        };
        poller.cast(message);
    }

    /// A poller that (re)started knows nothing of the commands in flight: hand them over.
    fn hand_pending_commands_to_a_new_poller(&mut self) {
        let current = self.base.peers.poller().map(|p| p.actor().get_id());
        if current.is_none() || current == self.poller {
            return;
        }
        self.poller = current;
        let filter = CommandFilter {
            device_id: None,
            states: Some(vec![CommandState::Queued, CommandState::Sent]),
            limit: MAX_PENDING_COMMANDS,
        };
        match self.store.commands(&filter) {
            Ok(pending) => {
                if !pending.is_empty() {
                    info!(event = "commands_resumed", count = pending.len());
                }
                // Oldest first, as they were queued.
                for record in pending.iter().rev() {
                    self.dispatch(record);
                }
            }
            Err(error) => warn!(
                event = "commands_resume_failed",
                error = error.to_string().as_str()
            ),
        }
    }

    fn schedule_prune(&mut self, after: Duration) {
        self.prune_generation += 1;
        let generation = self.prune_generation;
        if after.is_zero() {
            let _ = self.myself.cast(StorageMsg::PruneTick { generation });
        } else {
            self.myself
                .send_after(after, move || StorageMsg::PruneTick { generation });
        }
    }

    /// One bounded chunk; the next chunk is queued behind the messages already waiting, so
    /// appends interleave with a long prune.
    fn prune(&mut self, generation: u64) -> Result<(), ActorProcessingErr> {
        if generation != self.prune_generation {
            return Ok(());
        }
        let days = u64::from(self.base.config.config.storage.retention_days);
        let horizon = Timestamp::now().saturating_sub(Duration::from_secs(days * 86_400));
        // History first, then finished commands (unfinished ones are kept whatever their age);
        // one bounded chunk of either per tick.
        let started = std::time::Instant::now();
        let result = blocking(|| -> Result<_, opcgw::storage::StorageError> {
            let history = self.store.prune(horizon, PRUNE_CHUNK_ROWS)?;
            if history.more {
                return Ok((history, false));
            }
            let commands = self.store.prune_commands(horizon, PRUNE_CHUNK_ROWS)?;
            Ok((history, commands.more))
        });
        match result {
            Ok((report, commands_more)) => {
                self.counters.pruned += report.removed as u64;
                self.export_size();
                // A chunk that looked at the history (none while the history floor says
                // nothing is older than the horizon).
                if report.removed > 0 || report.scanned > 0 {
                    debug!(
                        event = "history_pruned",
                        removed = report.removed,
                        scanned = report.scanned,
                        ms = started.elapsed().as_millis() as u64,
                        horizon = %horizon,
                        more = report.more
                    );
                }
                self.schedule_prune(if report.more || commands_more {
                    Duration::ZERO
                } else {
                    PRUNE_INTERVAL
                });
            }
            Err(error) => {
                warn!(
                    event = "history_prune_failed",
                    error = error.to_string().as_str()
                );
                self.schedule_prune(PRUNE_INTERVAL);
                file_gone(&Err::<(), _>(error))?;
            }
        }
        Ok(())
    }
}

/// Where a device's health is kept in the status table.
pub fn device_health_key(device_id: &str) -> String {
    format!("device/{device_id}")
}

/// The all-devices health document of earlier versions.
const LEGACY_DEVICES_STATUS: &str = "devices";

fn device_json(device: &DeviceSummary) -> serde_json::Value {
    serde_json::json!({
        "device_id": device.dev_eui,
        "last_seen": device.last_seen.map(|t| t.to_rfc3339()),
        "margin": device.margin,
        "battery_level": device.battery_level,
        "external_power_source": device.external_power_source,
        "rssi": device.rssi,
        "snr": device.snr,
    })
}
