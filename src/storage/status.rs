//! Small gateway status documents (e.g. `"upstream"`: ChirpStack reachability), kept so the
//! web console and the control socket can show the last known state after a restart, and the
//! counts of what the database holds.

use redb::{ReadableDatabase, ReadableTableMetadata};

use super::error::{RedbResultExt, StorageError};
use super::schema::{META, META_HISTORY_ROWS, SERIES, STATUS};
use super::Store;

/// Longest status key, in bytes.
pub const MAX_STATUS_KEY_BYTES: usize = 64;
/// Largest status document, in bytes: these are summaries, not logs (device health is one
/// ~150-byte document per device, under `device/<device_id>`).
pub const MAX_STATUS_BYTES: usize = 1024 * 1024;

/// What the database holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    pub series: u64,
    pub history_rows: u64,
    pub commands: u64,
    /// Size of the file on disk (it grows, and is reused after pruning, but never shrinks).
    pub file_bytes: u64,
}

/// How the file's space is used (see [`Store::space_usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpaceUsage {
    pub file_bytes: u64,
    /// Pages in use: the rest of the file is free space redb reuses before growing the file.
    pub allocated_bytes: u64,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Unused bytes inside allocated pages.
    pub fragmented_bytes: u64,
}

impl Store {
    /// Stores a status document (opaque JSON text), durably.
    pub fn put_status(&mut self, key: &str, json: &str) -> Result<(), StorageError> {
        self.put_statuses(&[(key, json)], &[])
    }

    /// Stores several status documents and removes others, durably, in one transaction
    /// (per-device documents: only those that changed, however many devices there are).
    /// Nothing is written when one of them is out of bounds.
    pub fn put_statuses(
        &mut self,
        documents: &[(&str, &str)],
        remove: &[&str],
    ) -> Result<(), StorageError> {
        for (key, json) in documents {
            self.check_status(key, json)?;
        }
        if documents.is_empty() && remove.is_empty() {
            return Ok(());
        }
        self.write(|store| {
            const ACTION: &str = "store a status";
            let path = &store.path;
            let txn = store.db()?.begin_write().at(path, ACTION)?;
            {
                let mut table = txn.open_table(STATUS).at(path, ACTION)?;
                for (key, json) in documents {
                    table.insert(*key, *json).at(path, ACTION)?;
                }
                for key in remove {
                    table.remove(*key).at(path, ACTION)?;
                }
            }
            txn.commit().at(path, ACTION)
        })
    }

    fn check_status(&self, key: &str, json: &str) -> Result<(), StorageError> {
        if key.is_empty() || key.len() > MAX_STATUS_KEY_BYTES {
            return Err(StorageError::invalid(
                &self.path,
                format!("status key must be 1..={MAX_STATUS_KEY_BYTES} bytes"),
            ));
        }
        if json.len() > MAX_STATUS_BYTES {
            return Err(StorageError::invalid(
                &self.path,
                format!(
                    "status {key:?} of {} bytes exceeds {MAX_STATUS_BYTES}",
                    json.len()
                ),
            ));
        }
        Ok(())
    }

    pub fn status(&self, key: &str) -> Result<Option<String>, StorageError> {
        const ACTION: &str = "read a status";
        self.read(|db| {
            let path = &self.path;
            let txn = db.begin_read().at(path, ACTION)?;
            let table = txn.open_table(STATUS).at(path, ACTION)?;
            let value = table.get(key).at(path, ACTION)?;
            Ok(value.map(|v| v.value().to_string()))
        })
    }

    /// How much of the file holds data. Walks every page of every table: for diagnostics and
    /// benchmarks, not for a dashboard that refreshes every second.
    pub fn space_usage(&mut self) -> Result<SpaceUsage, StorageError> {
        self.write(|store| {
            const ACTION: &str = "measure the space used";
            let path = &store.path;
            let txn = store.db()?.begin_write().at(path, ACTION)?;
            let stats = txn.stats().at(path, ACTION)?;
            txn.abort().at(path, ACTION)?;
            let file_bytes = std::fs::metadata(path)
                .map_err(|e| StorageError::io(path, "read the size", e))?
                .len();
            Ok(SpaceUsage {
                file_bytes,
                allocated_bytes: stats.allocated_pages() * stats.page_size() as u64,
                stored_bytes: stats.stored_bytes(),
                fragmented_bytes: stats.fragmented_bytes(),
            })
        })
    }

    /// Row counts (cheap: redb keeps each table's length, and the history row count is a
    /// counter maintained by append and prune) and the file size.
    pub fn counts(&self) -> Result<StoreCounts, StorageError> {
        const ACTION: &str = "count the rows";
        self.read(|db| {
            let path = &self.path;
            let txn = db.begin_read().at(path, ACTION)?;
            let series = txn
                .open_table(SERIES)
                .at(path, ACTION)?
                .len()
                .at(path, ACTION)?;
            let history_rows = txn
                .open_table(META)
                .at(path, ACTION)?
                .get(META_HISTORY_ROWS)
                .at(path, ACTION)?
                .map_or(0, |v| v.value());
            let commands = Self::command_count(&txn, path)?;
            let file_bytes = std::fs::metadata(path)
                .map_err(|e| StorageError::io(path, "read the size", e))?
                .len();
            Ok(StoreCounts {
                series,
                history_rows,
                commands,
                file_bytes,
            })
        })
    }
}
