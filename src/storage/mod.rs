//! Storage on redb: the latest value and the history of every metric, a durable command queue
//! and small gateway status documents (docs/storage.md).
//!
//! One [`Store`] owns one redb file; the storage actor owns the store. Every write is one
//! durable transaction (a batch of samples, one command, one status), so whatever a method
//! reported as written survives a crash or a kill -9, and nothing half-written is ever visible.
//!
//! Failures are [`StorageError`]s that name the file and the remedy; nothing here panics. redb
//! checks some invariants with assertions (debug builds) that a file damaged outside redb can
//! trip, so every operation runs behind a guard that turns such a panic into
//! [`StorageError::Corrupt`] without printing it. After an I/O failure redb refuses further
//! work on the handle, so the next write reopens the database (what was committed is intact) —
//! a disk that filled up and was cleaned resumes without a restart. A database file deleted or
//! replaced while open is noticed before the next write ([`StorageError::FileGone`]): the
//! owner must drop the store and open the path again.
//!
//! History is kept in `history`, keyed by (series, time) (docs/storage.md), plus a staging
//! table in front of it: appends go to `recent`, keyed by (time, series), where a batch covering
//! a thousand series lands on a few pages instead of a thousand, and are folded into `history`
//! in bulk. Reads merge both tables; callers never see the difference. (Measured on 2 cores: a
//! durable 1,000-sample commit over 1,000 series took 30 ms straight into `history`, 2-3 ms
//! into `recent`.)
//!
//! Files: `open` (opening and creating), `ownership` (who holds the file; the start-up
//! preflight), `file_identity` (a file deleted under the store), `guard` (redb panics as
//! errors), `schema` (tables, versions, migrations), `codec` (value encoding), `samples`
//! (append, latest), `fold` (staged rows into history), `staged` (staged rows by series),
//! `history` (paged range reads), `reader` (reads on other tasks), `aggregate` (OPC UA Part 13
//! aggregates over processing intervals), `downsample` (a window in a bounded number of
//! points: raw rows or min/max/avg buckets), `retention` (pruning), `commands` (the command
//! queue), `status` (status documents, counts).

mod aggregate;
mod codec;
mod commands;
mod downsample;
mod error;
mod file_identity;
mod fold;
mod guard;
mod history;
mod open;
mod ownership;
mod pidfile;
mod reader;
mod retention;
mod samples;
mod schema;
mod series;
mod staged;
mod status;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase};

use error::RedbResultExt;
use guard::shield;

pub use aggregate::{
    Aggregate, AggregateConfig, AggregateValue, Interpolation, IntervalPlan, Origin, ProcessedPage,
    ProcessedQuery, RawPoint, RawQuality, ResultQuality, MAX_PROCESSED_PAGE,
};
pub use codec::MAX_STRING_BYTES;
pub use commands::{
    CommandFilter, CommandRecord, MAX_COMMAND_PAGE, MAX_COMMAND_PAYLOAD_BYTES, MAX_DETAIL_BYTES,
};
pub use downsample::{
    Bucket, DownsampleQuery, Downsampled, MAX_DOWNSAMPLE_POINTS, MIN_DOWNSAMPLE_POINTS,
};
pub use error::{Holder, StorageError, StorageErrorKind};
pub use history::{HistoryPage, HistoryQuery, HistoryRow, ResumeKey, MAX_HISTORY_PAGE};
pub use ownership::check_not_in_use;
pub use reader::{ReadSlot, Reader};
pub use retention::PruneReport;
pub use samples::{AppendReport, Fold};
pub use schema::SCHEMA_VERSION;
pub use series::MAX_NAME_BYTES;
pub use status::{SpaceUsage, StoreCounts, MAX_STATUS_BYTES, MAX_STATUS_KEY_BYTES};

/// redb's page cache for a store opened without options ([`Store::open`]: tools, tests and the
/// benches' bulk seeding). redb defaults to 1 GiB. The gateway itself sizes the cache from
/// `[storage] cache_size_mb` (default 2 MiB, chosen from measurements in
/// docs/performance.md, "redb page cache").
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Rows in the `recent` staging table that trigger a fold into `history`. Larger folds cost
/// fewer page writes per row; reads scan at most this many staged rows per page. 50,000 is
/// about a minute of the 1,000-device design load at 10 s.
pub const DEFAULT_FOLD_TRIGGER_ROWS: usize = 50_000;
/// Most rows moved by one fold transaction. Twice the trigger, so that the usual fold (the
/// trigger plus one batch) moves everything staged in one go; more staged rows fold a range
/// of series per append.
pub const DEFAULT_FOLD_CHUNK_ROWS: usize = 2 * DEFAULT_FOLD_TRIGGER_ROWS;
/// Staged rows per staged series a fold waits for (once past the trigger). A fold rewrites the
/// newest `history` page of every series it moves rows of: with a row or two per series (more
/// series than the trigger: 10,000 devices x 11 metrics) it rewrote a 4 KiB page per row.
pub const DEFAULT_FOLD_ROWS_PER_SERIES: usize = 8;
/// Staged rows that trigger a fold whatever the rows per series: bounds the `recent` table
/// and the staged index (~8 bytes per row in memory, 16 MB at the cap). A restart's catch-up
/// is staged whole below it: ChirpStack replays the last 10 events of every device to a new
/// stream, a million rows at 10,000 devices x 10 values, which a cap of one million met
/// with the catch-up's last batches (each then waited for a range fold, 0.3-1.4 s at 110,000
/// series, with the event streams held).
pub const DEFAULT_FOLD_MAX_STAGED_ROWS: usize = 2_000_000;

/// Tuning of a [`Store`]; [`Store::open`] uses the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bytes of redb page cache.
    pub cache_bytes: usize,
    /// Staged rows that trigger a fold (at least 1).
    pub fold_trigger_rows: usize,
    /// Rows per fold transaction (at least 1).
    pub fold_chunk_rows: usize,
    /// Past the trigger, a fold also waits for this many staged rows per staged series (0 or 1:
    /// no wait)...
    pub fold_rows_per_series: usize,
    /// ...unless this many rows are staged.
    pub fold_max_staged_rows: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            fold_trigger_rows: DEFAULT_FOLD_TRIGGER_ROWS,
            fold_chunk_rows: DEFAULT_FOLD_CHUNK_ROWS,
            fold_rows_per_series: DEFAULT_FOLD_ROWS_PER_SERIES,
            fold_max_staged_rows: DEFAULT_FOLD_MAX_STAGED_ROWS,
        }
    }
}

/// An open database, with its registration as open in this process: a [`Reader`] holding it
/// after its store is dropped keeps it registered, so a new store meeting its lock retries
/// ("held by this process") instead of taking it for another opcgw.
pub(crate) struct OpenDatabase {
    db: Database,
    /// The staged rows by series (see `staged`), shared with readers.
    staged: staged::SharedStaged,
    _registration: ownership::Registration,
}

impl OpenDatabase {
    fn new(path: &Path, db: Database) -> Result<Arc<Self>, StorageError> {
        let staged = {
            let txn = db.begin_read().at(path, "read the staged rows")?;
            staged::StagedIndex::load(&txn).at(path, "read the staged rows")?
        };
        Ok(Arc::new(Self {
            db,
            staged: Arc::new(std::sync::RwLock::new(staged)),
            _registration: ownership::register(path),
        }))
    }

    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    pub(crate) fn staged(&self) -> &std::sync::RwLock<staged::StagedIndex> {
        &self.staged
    }
}

/// The gateway's database: one redb file, used by one owner at a time.
pub struct Store {
    path: PathBuf,
    options: StoreOptions,
    /// `None` only after a reopen failed; every operation then reports the reopen's error
    /// until a later write manages to reopen. Shared (weakly) with [`Reader`]s through
    /// `published`.
    db: Option<Arc<OpenDatabase>>,
    /// Where the open database is published for reads on other tasks.
    published: Option<ReadSlot>,
    series: series::SeriesIndex,
    /// Where the next fold of a range of series starts (see `fold`).
    fold_cursor: u32,
    /// Staged indexes rebuilt from `recent` since open (each reads every staged row).
    staged_rebuilds: u64,
    /// Set by an error after which redb refuses the handle: the next write reopens first.
    needs_reopen: bool,
    /// The pid sidecar this store wrote (removed on drop, if still ours).
    pid_file: Option<pidfile::Written>,
    /// The file the handle has open, to notice it being deleted or replaced.
    identity: Option<file_identity::FileIdentity>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("series", &self.series.len())
            .field("needs_reopen", &self.needs_reopen)
            .finish()
    }
}

impl Store {
    /// Opens (creating parent dirs and the file when missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        Self::open_with(path, StoreOptions::default())
    }

    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StorageError> {
        let (db, series) = shield(path, || open::open_database(path, &options))?;
        let identity = file_identity::FileIdentity::of(path).ok();
        // The pid only improves the "in use" message of a second instance: failing to write it
        // (a read-only directory holding a writable file) is not a reason to refuse to run.
        let pid_file = match pidfile::write(path) {
            Ok(written) => Some(written),
            Err(e) => {
                tracing::warn!(
                    event = "storage_pid_file_failed",
                    path = %path.display(),
                    error = %e,
                    "cannot write the pid file next to the database"
                );
                None
            }
        };
        tracing::info!(
            event = "storage_opened",
            path = %path.display(),
            series = series.len(),
            "database opened"
        );
        Ok(Store {
            path: path.to_path_buf(),
            options,
            db: Some(shield(path, || OpenDatabase::new(path, db))?),
            published: None,
            series,
            fold_cursor: 0,
            staged_rebuilds: 0,
            needs_reopen: false,
            pid_file,
            identity,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the database and reopens it (after an I/O error, redb refuses a handle until
    /// then). Writes call this by themselves when needed.
    pub fn reopen(&mut self) -> Result<(), StorageError> {
        // Drop first: the file lock is per handle, even within one process. (A reader still
        // holding the old handle makes this open fail; the next write tries again.)
        self.db = None;
        let (db, series) = shield(&self.path, || {
            open::open_database(&self.path, &self.options)
        })?;
        let db = shield(&self.path, || OpenDatabase::new(&self.path, db))?;
        if let Some(slot) = &self.published {
            slot.publish(&self.path, &db);
        }
        self.db = Some(db);
        self.series = series;
        self.needs_reopen = false;
        self.identity = file_identity::FileIdentity::of(&self.path).ok();
        tracing::info!(
            event = "storage_reopened",
            path = %self.path.display(),
            "database reopened"
        );
        Ok(())
    }

    /// Publishes the open database in `slot` (and again after every reopen), so that reads
    /// on other tasks need not wait for this store's owner: see [`Reader`].
    pub fn publish(&mut self, slot: &ReadSlot) {
        if let Some(db) = &self.db {
            slot.publish(&self.path, db);
        }
        self.published = Some(slot.clone());
    }

    /// Closes the database, reporting an error that dropping the store would ignore.
    pub fn close(mut self) -> Result<(), StorageError> {
        match self.db.take().map(Arc::try_unwrap) {
            Some(Ok(open)) => open
                .db
                .close()
                .map_err(|e| StorageError::from_redb(&self.path, "close", redb::Error::from(e))),
            // A reader holds it for a moment: it closes when the reader lets go.
            Some(Err(_)) | None => Ok(()),
        }
    }

    /// Rebuilds the staged index after a transaction that removed staged rows committed.
    fn rebuild_staged(&mut self) {
        let Some(open) = &self.db else { return };
        self.staged_rebuilds += 1;
        let loaded = open
            .db
            .begin_read()
            .map_err(redb::Error::from)
            .and_then(|txn| staged::StagedIndex::load(&txn));
        match loaded {
            Ok(index) => *open.staged.write().unwrap_or_else(|e| e.into_inner()) = index,
            // Reads fall back to walking `recent` while the index is of an older generation.
            Err(error) => tracing::warn!(
                event = "storage_staged_index_failed",
                path = %self.path.display(),
                error = %error,
                "the index of staged rows could not be rebuilt; reads of recent windows are slower until the next fold"
            ),
        }
    }

    /// The staged index of the open database (appends add to it).
    fn staged_index(&self) -> Option<&std::sync::RwLock<staged::StagedIndex>> {
        self.db.as_deref().map(OpenDatabase::staged)
    }

    fn db(&self) -> Result<&Database, StorageError> {
        self.db
            .as_deref()
            .map(OpenDatabase::database)
            .ok_or_else(|| {
                StorageError::io(
                    &self.path,
                    "use",
                    io::Error::other(
                        "the database was closed after an error and is not reopened yet",
                    ),
                )
            })
    }

    /// Runs a read behind the panic guard.
    fn read<T>(
        &self,
        body: impl FnOnce(&Database) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        shield(&self.path, || body(self.db()?))
    }

    /// Runs a write behind the panic guard, reopening first when an earlier error left the
    /// handle unusable, and noting when this one does.
    fn write<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        // Before a reopen too: reopening would quietly create a new, empty file at the path.
        if let Some(identity) = &self.identity {
            identity.check(&self.path)?;
        }
        if self.needs_reopen || self.db.is_none() {
            self.reopen()?;
        }
        let path = self.path.clone();
        let result = shield(&path, || body(self));
        if let Err(error) = &result {
            if error.poisons_handle() {
                self.needs_reopen = true;
            }
        }
        result
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(pid_file) = self.pid_file.take() {
            pid_file.remove_if_ours();
        }
    }
}

// The storage actor moves its store into the actor's task.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Store>();
};
