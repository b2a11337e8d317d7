//! The tables of the database, its schema version, and the migrations between versions.
//!
//! Every open runs [`prepare`] in one write transaction: it creates missing tables, refuses a
//! file from a newer opcgw, and brings an older file up to [`SCHEMA_VERSION`] step by step. A
//! migration that fails aborts the transaction, so the file stays at its old version.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

/// The schema this binary writes. Bump it together with a new entry in [`MIGRATIONS`].
pub const SCHEMA_VERSION: u64 = 1;

/// `(device_id, metric)` -> series id. Tuple keys compare element-wise, so the metrics of one
/// device are contiguous (the `latest` listing of one device is one range scan).
pub const SERIES: TableDefinition<(&str, &str), u32> = TableDefinition::new("series");
/// Series id -> `(device_id, metric)`, for listings keyed by id.
pub const SERIES_NAMES: TableDefinition<u32, (&str, &str)> = TableDefinition::new("series_names");
/// Series id -> the newest sample (see `codec::encode_latest`).
pub const LATEST: TableDefinition<u32, &[u8]> = TableDefinition::new("latest");
/// `(series id, source time micros)` -> value (see `codec::encode_value`). One series is one
/// contiguous key range, ordered by time: a history page is one range scan.
pub const HISTORY: TableDefinition<(u32, i64), &[u8]> = TableDefinition::new("history");
/// `(source time micros, series id)` -> value: the staging area of history.
///
/// A batch holds one sample of each of a thousand series: keyed by series, it would touch a
/// thousand leaf pages of `history` (a 1,000-sample durable commit measured 30 ms). Keyed by
/// time, it lands at the right edge of this small tree (a few pages). Rows are folded into
/// `history` in bulk (see `fold`); reads merge both tables, and a row present in both is the
/// `recent` one (the later write).
pub const RECENT: TableDefinition<(i64, u32), &[u8]> = TableDefinition::new("recent");
/// Command id -> command record (JSON: few rows, read by people, and free to gain fields).
pub const COMMANDS: TableDefinition<u64, &[u8]> = TableDefinition::new("commands");
/// Status key -> small JSON document.
pub const STATUS: TableDefinition<&str, &str> = TableDefinition::new("status");
/// Counters and versions, by name (the `META_*` keys).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub const META_SCHEMA_VERSION: &str = "schema_version";
/// Logical history rows (a key present in both `recent` and `history` counts once).
pub const META_HISTORY_ROWS: &str = "history_rows";
/// Raised by every transaction that removes staged rows (see `staged`).
pub const META_STAGED_GENERATION: &str = "staged_generation";
/// The id the next enqueued command gets: ids never repeat, even after commands are pruned.
pub const META_NEXT_COMMAND_ID: &str = "next_command_id";
/// No history row (staged or folded) is older than this time (microseconds, stored as the
/// bits of an `i64`): lowered by an append of older samples, set by a retention pass that went
/// through every series. Absent: not known (files from before it, until their first full
/// pass). A retention pass whose horizon is not past it has nothing to read.
pub const META_HISTORY_FLOOR: &str = "history_floor";

/// First command id of a new database.
pub const FIRST_COMMAND_ID: u64 = 1;
/// First series id of a new database.
pub const FIRST_SERIES_ID: u32 = 1;

/// One migration step: brings the tables from version `n` to `n + 1` inside the open's write
/// transaction.
pub type Migration = fn(&WriteTransaction) -> Result<(), redb::Error>;

/// `MIGRATIONS[i]` migrates schema `i + 1` to `i + 2`. Empty while schema 1 is the only one.
pub const MIGRATIONS: &[Migration] = &[];

// A schema bump without its migration would leave old files unreadable.
const _: () = assert!(MIGRATIONS.len() as u64 + 1 == SCHEMA_VERSION);

/// What [`prepare`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// The file was at `found` and is now at the current version (`found` may equal it).
    Ready { found: u64 },
    /// The file was written by a newer opcgw; nothing was changed.
    Newer { found: u64 },
    /// The file has no schema version: a redb file from some other program.
    Foreign,
}

/// Adds `delta` to the logical history row count, inside the caller's transaction.
pub fn add_history_rows(txn: &WriteTransaction, delta: i64) -> Result<(), redb::Error> {
    if delta == 0 {
        return Ok(());
    }
    let mut meta = txn.open_table(META)?;
    let rows = meta.get(META_HISTORY_ROWS)?.map_or(0, |v| v.value());
    let rows = rows.saturating_add_signed(delta);
    meta.insert(META_HISTORY_ROWS, rows)?;
    Ok(())
}

/// The history floor ([`META_HISTORY_FLOOR`]), if known.
pub fn history_floor(txn: &WriteTransaction) -> Result<Option<i64>, redb::Error> {
    let meta = txn.open_table(META)?;
    let floor = meta.get(META_HISTORY_FLOOR)?.map(|v| v.value() as i64);
    Ok(floor)
}

/// Records the history floor, inside the caller's transaction.
pub fn set_history_floor(txn: &WriteTransaction, floor: i64) -> Result<(), redb::Error> {
    txn.open_table(META)?
        .insert(META_HISTORY_FLOOR, floor as u64)?;
    Ok(())
}

/// Creates the tables of a new database and records the schema version.
pub fn initialize(txn: &WriteTransaction) -> Result<(), redb::Error> {
    open_all(txn)?;
    let mut meta = txn.open_table(META)?;
    meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
    meta.insert(META_NEXT_COMMAND_ID, FIRST_COMMAND_ID)?;
    meta.insert(META_HISTORY_ROWS, 0)?;
    // No rows: none older than anything (the first append lowers it).
    meta.insert(META_HISTORY_FLOOR, i64::MAX as u64)?;
    Ok(())
}

/// Checks the schema version and migrates an older file with `migrations` (the real list is
/// [`MIGRATIONS`]; tests pass their own). The caller commits only on `Ready`.
pub fn prepare(
    txn: &WriteTransaction,
    current: u64,
    migrations: &[Migration],
) -> Result<Prepared, redb::Error> {
    let found = {
        let meta = txn.open_table(META)?;
        let found = meta.get(META_SCHEMA_VERSION)?.map(|v| v.value());
        found
    };
    let Some(found) = found.filter(|&v| v >= 1) else {
        return Ok(Prepared::Foreign);
    };
    if found > current {
        return Ok(Prepared::Newer { found });
    }
    let mut version = found;
    while version < current {
        let Some(step) = usize::try_from(version - 1)
            .ok()
            .and_then(|i| migrations.get(i))
        else {
            return Err(redb::Error::Corrupted(format!(
                "no migration from schema {version}"
            )));
        };
        step(txn)?;
        version += 1;
        tracing::info!(
            event = "storage_migrated",
            to = version,
            "database migrated to schema {version}"
        );
    }
    open_all(txn)?;
    let mut meta = txn.open_table(META)?;
    meta.insert(META_SCHEMA_VERSION, current)?;
    if meta.get(META_NEXT_COMMAND_ID)?.is_none() {
        meta.insert(META_NEXT_COMMAND_ID, FIRST_COMMAND_ID)?;
    }
    if meta.get(META_HISTORY_ROWS)?.is_none() {
        // Only a file from before the counter: count both tables (a key in both is rare).
        let rows = txn.open_table(HISTORY)?.len()? + txn.open_table(RECENT)?.len()?;
        meta.insert(META_HISTORY_ROWS, rows)?;
    }
    Ok(Prepared::Ready { found })
}

/// Opening a table in a write transaction creates it: after this every read transaction finds
/// every table.
fn open_all(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(SERIES)?;
    txn.open_table(SERIES_NAMES)?;
    txn.open_table(LATEST)?;
    txn.open_table(HISTORY)?;
    txn.open_table(RECENT)?;
    txn.open_table(COMMANDS)?;
    txn.open_table(STATUS)?;
    txn.open_table(META)?;
    Ok(())
}
