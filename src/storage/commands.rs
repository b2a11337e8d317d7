//! The durable command queue: every downlink command the gateway accepted, and its lifecycle
//! (`queued` -> `sent` -> `acknowledged` | `failed` | `expired`, see `crate::commands`).
//!
//! A command is on disk before `enqueue_command` returns, so an accepted command survives a
//! restart and the storage actor can hand the unfinished ones back to the poller. Ids come from a
//! counter in `meta`, committed with the command: they increase and never repeat, even after old
//! commands are pruned.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::codec::truncate_to_char_boundary;
use super::error::{RedbResultExt, StorageError};
use super::schema::{COMMANDS, FIRST_COMMAND_ID, META, META_NEXT_COMMAND_ID};
use super::series::{valid_name, MAX_NAME_BYTES};
use super::Store;
use crate::commands::{CommandState, CommandUpdate, Downlink, NewCommand};
use crate::model::Timestamp;

/// Largest payload accepted. LoRaWAN caps a downlink at 242 bytes in the best data rate; the
/// poller checks the region's real limit, this only bounds what a row can hold.
pub const MAX_COMMAND_PAYLOAD_BYTES: usize = 1024;
/// Longest detail text kept (longer ones are cut: they are error messages, not data).
pub const MAX_DETAIL_BYTES: usize = 1024;
/// Most records one [`Store::commands`] call returns.
pub const MAX_COMMAND_PAGE: usize = 10_000;

/// A command and where it is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub id: u64,
    /// Stored flat: the rows keep the same JSON as before the fields were grouped.
    #[serde(flatten)]
    pub downlink: Downlink,
    pub state: CommandState,
    /// ChirpStack's queue item id, once it has one.
    pub queue_item_id: Option<String>,
    /// A gateway transmitted the downlink.
    pub transmitted: bool,
    pub detail: Option<String>,
    pub requested_by: String,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// Which commands [`Store::commands`] lists (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandFilter {
    pub device_id: Option<String>,
    /// Any of these states; `None` for all.
    pub states: Option<Vec<CommandState>>,
    /// 1..=[`MAX_COMMAND_PAGE`].
    pub limit: usize,
}

/// Order of the lifecycle: a state never moves to a lower rank, and final states never change.
fn rank(state: CommandState) -> u8 {
    match state {
        CommandState::Queued => 0,
        CommandState::Sent => 1,
        CommandState::Acknowledged | CommandState::Failed | CommandState::Expired => 2,
    }
}

impl CommandRecord {
    /// Applies an update; returns whether anything changed. A final state is never left, and a
    /// state never moves back (`sent` does not return to `queued`).
    fn apply(&mut self, update: &CommandUpdate) -> bool {
        if self.state.is_final() {
            return false;
        }
        let before = self.clone();
        if rank(update.state) >= rank(self.state) {
            self.state = update.state;
        }
        if update.queue_item_id.is_some() {
            self.queue_item_id.clone_from(&update.queue_item_id);
        }
        self.transmitted |= update.transmitted;
        if let Some(detail) = &update.detail {
            self.detail = Some(truncate_to_char_boundary(detail, MAX_DETAIL_BYTES).to_string());
        }
        self.updated = self.updated.max(update.at);
        *self != before
    }
}

impl Store {
    /// Records a new command in state `queued`, durably, with the next id, unless its device
    /// already has `max_unfinished` commands queued or sent (`CommandQueueFull`): one write
    /// naming a device thousands of times must not queue thousands of downlinks.
    pub fn enqueue_command(
        &mut self,
        new: NewCommand,
        now: Timestamp,
        max_unfinished: usize,
    ) -> Result<CommandRecord, StorageError> {
        self.check_new_command(&new)?;
        self.write(|store| {
            const ACTION: &str = "enqueue a command";
            let path = &store.path;
            let txn = store.db()?.begin_write().at(path, ACTION)?;
            // Counted in the write transaction, so two enqueues cannot both take the last place.
            let unfinished = {
                let commands = txn.open_table(COMMANDS).at(path, ACTION)?;
                unfinished_commands_of(path, &commands, &new.downlink.device_id)?
            };
            if unfinished >= max_unfinished {
                return Err(StorageError::CommandQueueFull {
                    path: path.clone(),
                    device_id: new.downlink.device_id,
                    limit: max_unfinished,
                });
            }
            let record = {
                let mut meta = txn.open_table(META).at(path, ACTION)?;
                let id = meta
                    .get(META_NEXT_COMMAND_ID)
                    .at(path, ACTION)?
                    .map_or(FIRST_COMMAND_ID, |v| v.value());
                let next = id.checked_add(1).ok_or_else(|| {
                    StorageError::corrupt(path, "the command id counter is exhausted")
                })?;
                meta.insert(META_NEXT_COMMAND_ID, next).at(path, ACTION)?;
                let record = CommandRecord {
                    id,
                    downlink: new.downlink,
                    state: CommandState::Queued,
                    queue_item_id: None,
                    transmitted: false,
                    detail: None,
                    requested_by: new.requested_by,
                    created: now,
                    updated: now,
                };
                let mut commands = txn.open_table(COMMANDS).at(path, ACTION)?;
                commands
                    .insert(id, encode(path, &record)?.as_slice())
                    .at(path, ACTION)?;
                record
            };
            txn.commit().at(path, ACTION)?;
            Ok(record)
        })
    }

    /// Applies a state change. `None` for an unknown id (or one of another device); the stored
    /// record otherwise, unchanged when the update would move it back.
    pub fn update_command(
        &mut self,
        update: &CommandUpdate,
    ) -> Result<Option<CommandRecord>, StorageError> {
        self.write(|store| {
            const ACTION: &str = "update a command";
            let path = &store.path;
            let txn = store.db()?.begin_write().at(path, ACTION)?;
            let (record, changed) = {
                let mut commands = txn.open_table(COMMANDS).at(path, ACTION)?;
                let stored = match commands.get(update.id).at(path, ACTION)? {
                    Some(row) => decode(path, update.id, row.value())?,
                    None => return Ok(None),
                };
                if stored.downlink.device_id != update.device_id {
                    tracing::warn!(
                        event = "storage_command_update_ignored",
                        id = update.id,
                        "an update names device {:?} but command {} belongs to {:?}",
                        update.device_id,
                        update.id,
                        stored.downlink.device_id
                    );
                    return Ok(None);
                }
                let mut record = stored;
                let changed = record.apply(update);
                if changed {
                    commands
                        .insert(update.id, encode(path, &record)?.as_slice())
                        .at(path, ACTION)?;
                }
                (record, changed)
            };
            if changed {
                txn.commit().at(path, ACTION)?;
            }
            Ok(Some(record))
        })
    }

    /// Commands, newest first.
    pub fn commands(&self, filter: &CommandFilter) -> Result<Vec<CommandRecord>, StorageError> {
        const ACTION: &str = "list the commands";
        if filter.limit == 0 || filter.limit > MAX_COMMAND_PAGE {
            return Err(StorageError::invalid(
                &self.path,
                format!(
                    "command limit {} is outside 1..={MAX_COMMAND_PAGE}",
                    filter.limit
                ),
            ));
        }
        self.read(|db| {
            let path = &self.path;
            let txn = db.begin_read().at(path, ACTION)?;
            let commands = txn.open_table(COMMANDS).at(path, ACTION)?;
            let mut records = Vec::new();
            for row in commands.iter().at(path, ACTION)?.rev() {
                let (id, bytes) = row.at(path, ACTION)?;
                let record = decode(path, id.value(), bytes.value())?;
                let device_ok = filter
                    .device_id
                    .as_ref()
                    .is_none_or(|d| *d == record.downlink.device_id);
                let state_ok = filter
                    .states
                    .as_ref()
                    .is_none_or(|states| states.contains(&record.state));
                if device_ok && state_ok {
                    records.push(record);
                    if records.len() == filter.limit {
                        break;
                    }
                }
            }
            Ok(records)
        })
    }

    pub fn command(&self, id: u64) -> Result<Option<CommandRecord>, StorageError> {
        const ACTION: &str = "read a command";
        self.read(|db| {
            let path = &self.path;
            let txn = db.begin_read().at(path, ACTION)?;
            let commands = txn.open_table(COMMANDS).at(path, ACTION)?;
            let row = commands.get(id).at(path, ACTION)?;
            row.map(|row| decode(path, id, row.value())).transpose()
        })
    }

    /// Deletes finished commands (acknowledged, failed, expired) last updated before `horizon`,
    /// oldest first, at most `max_rows` (> 0) per call. Unfinished commands are kept whatever
    /// their age: they are still owed an outcome.
    pub fn prune_commands(
        &mut self,
        horizon: Timestamp,
        max_rows: usize,
    ) -> Result<super::PruneReport, StorageError> {
        if max_rows == 0 {
            return Err(StorageError::invalid(
                &self.path,
                "prune max_rows must be > 0",
            ));
        }
        self.write(|store| {
            const ACTION: &str = "prune the commands";
            let path = &store.path;
            let txn = store.db()?.begin_write().at(path, ACTION)?;
            let mut report = super::PruneReport::default();
            {
                let mut commands = txn.open_table(COMMANDS).at(path, ACTION)?;
                let mut expired = Vec::new();
                for row in commands.iter().at(path, ACTION)? {
                    let (id, bytes) = row.at(path, ACTION)?;
                    let record = decode(path, id.value(), bytes.value())?;
                    if record.state.is_final() && record.updated < horizon {
                        if expired.len() == max_rows {
                            report.more = true;
                            break;
                        }
                        expired.push(record.id);
                    }
                }
                for id in &expired {
                    commands.remove(*id).at(path, ACTION)?;
                }
                report.removed = expired.len();
            }
            if report.removed > 0 {
                txn.commit().at(path, ACTION)?;
            }
            Ok(report)
        })
    }

    /// Number of stored commands.
    pub(super) fn command_count(
        txn: &redb::ReadTransaction,
        path: &std::path::Path,
    ) -> Result<u64, StorageError> {
        const ACTION: &str = "count the commands";
        let commands = txn.open_table(COMMANDS).at(path, ACTION)?;
        commands.len().at(path, ACTION)
    }

    fn check_new_command(&self, new: &NewCommand) -> Result<(), StorageError> {
        let new_downlink = &new.downlink;
        let problem = if !valid_name(&new_downlink.device_id) {
            Some(format!("device id must be 1..={MAX_NAME_BYTES} bytes"))
        } else if !valid_name(&new_downlink.command_name) {
            Some(format!("command name must be 1..={MAX_NAME_BYTES} bytes"))
        } else if new.requested_by.len() > MAX_NAME_BYTES {
            Some(format!(
                "requested_by must be at most {MAX_NAME_BYTES} bytes"
            ))
        } else if new_downlink.payload.len() > MAX_COMMAND_PAYLOAD_BYTES {
            Some(format!(
                "payload of {} bytes exceeds {MAX_COMMAND_PAYLOAD_BYTES}",
                new_downlink.payload.len()
            ))
        } else {
            None
        };
        match problem {
            Some(reason) => Err(StorageError::invalid(&self.path, reason)),
            None => Ok(()),
        }
    }
}

/// The fields of a stored command that say whose it is and whether it is finished (decoded
/// without the rest, borrowing the device id: this runs over the table at each enqueue).
#[derive(Deserialize)]
struct CommandOwnerAndState<'a> {
    #[serde(borrow)]
    device_id: std::borrow::Cow<'a, str>,
    state: CommandState,
}

/// Commands of `device_id` not in a final state.
fn unfinished_commands_of(
    path: &std::path::Path,
    commands: &impl ReadableTable<u64, &'static [u8]>,
    device_id: &str,
) -> Result<usize, StorageError> {
    const ACTION: &str = "count a device's unfinished commands";
    let mut count = 0;
    for row in commands.iter().at(path, ACTION)? {
        let (id, bytes) = row.at(path, ACTION)?;
        let brief: CommandOwnerAndState = serde_json::from_slice(bytes.value()).map_err(|e| {
            StorageError::corrupt(path, format!("row {} of table commands: {e}", id.value()))
        })?;
        if brief.device_id == device_id && !brief.state.is_final() {
            count += 1;
        }
    }
    Ok(count)
}

fn encode(path: &std::path::Path, record: &CommandRecord) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(record).map_err(|e| {
        StorageError::invalid(
            path,
            format!("command {} cannot be encoded: {e}", record.id),
        )
    })
}

fn decode(path: &std::path::Path, id: u64, bytes: &[u8]) -> Result<CommandRecord, StorageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StorageError::corrupt(path, format!("row {id} of table commands: {e}")))
}
