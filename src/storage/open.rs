//! Opening the database file: refusing what is not ours, creating a new file atomically, and
//! bringing the schema up to date.
//!
//! The rule is that an existing file is never rewritten to make an open succeed: an empty file,
//! a file that is not redb, a truncated redb file or a directory is reported with its path and
//! left exactly as it was. A new database is built under a temporary name and linked into place
//! only once it holds its schema, so an empty or half-made file at the configured path can only
//! come from outside opcgw.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use redb::{Builder, Database, DatabaseError, ReadableDatabase};

use super::error::{RedbResultExt, StorageError};
use super::pidfile;
use super::schema::{self, Prepared, MIGRATIONS, SCHEMA_VERSION};
use super::series::SeriesIndex;
use super::StoreOptions;

/// Opens (or creates) the database at `path` and loads its series index.
pub fn open_database(
    path: &Path,
    options: &StoreOptions,
) -> Result<(Database, SeriesIndex), StorageError> {
    let builder = builder(path, options);
    let db = match fs::metadata(path) {
        Ok(meta) => {
            check_existing(path, &meta)?;
            open_existing(path, &builder)?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => match create_new(path, &builder)? {
            Some(db) => db,
            // Another process created it between our check and our link: open theirs.
            None => open_existing(path, &builder)?,
        },
        Err(e) => return Err(StorageError::io(path, "inspect", e)),
    };
    let txn = db.begin_read().at(path, "read the series")?;
    let index = SeriesIndex::load(&txn).at(path, "read the series")?;
    Ok((db, index))
}

fn builder(path: &Path, options: &StoreOptions) -> Builder {
    let mut builder = Builder::new();
    builder.set_cache_size(options.cache_bytes);
    let shown = path.display().to_string();
    builder.set_repair_callback(move |session| {
        // Called at least once per repair; the first call is the one worth a line in the log.
        if session.progress() == 0.0 {
            tracing::warn!(
                event = "storage_repair",
                path = %shown,
                "database {shown} was not closed cleanly (crash or kill): checking it and \
                 rolling back any unfinished commit"
            );
        }
    });
    builder
}

/// Refuses, before redb sees it, what redb would either reject unclearly or silently
/// initialize (redb turns an empty file into a new database).
fn check_existing(path: &Path, meta: &fs::Metadata) -> Result<(), StorageError> {
    if meta.is_dir() {
        return Err(StorageError::io(
            path,
            "open",
            io::Error::from(io::ErrorKind::IsADirectory),
        ));
    }
    if !meta.is_file() {
        return Err(StorageError::corrupt(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(StorageError::corrupt(
            path,
            "the file is empty (0 bytes), so it was not written by opcgw",
        ));
    }
    Ok(())
}

fn open_existing(path: &Path, builder: &Builder) -> Result<Database, StorageError> {
    let db = builder.open(path).map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => StorageError::locked(path, pidfile::read(path)),
        other => StorageError::from_redb(path, "open", other.into()),
    })?;
    prepare_schema(path, &db)?;
    Ok(db)
}

/// Checks (and if needed migrates) the schema in one write transaction, committed only when the
/// file is ours and at a version this binary understands.
fn prepare_schema(path: &Path, db: &Database) -> Result<(), StorageError> {
    let txn = db.begin_write().at(path, "check the schema")?;
    match schema::prepare(&txn, SCHEMA_VERSION, MIGRATIONS).at(path, "check the schema")? {
        Prepared::Ready { found } => {
            txn.commit().at(path, "record the schema version")?;
            if found != SCHEMA_VERSION {
                tracing::info!(
                    event = "storage_schema_upgraded",
                    path = %path.display(),
                    from = found,
                    to = SCHEMA_VERSION,
                    "database upgraded"
                );
            }
            Ok(())
        }
        Prepared::Newer { found } => Err(StorageError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        }),
        Prepared::Foreign => Err(StorageError::corrupt(
            path,
            "a redb file without an opcgw schema version: not an opcgw database",
        )),
    }
}

/// Builds a new database under a temporary name and links it to `path`. Returns `None` when
/// `path` appeared meanwhile (the caller opens that one instead).
fn create_new(path: &Path, builder: &Builder) -> Result<Option<Database>, StorageError> {
    let Some(file_name) = path.file_name() else {
        return Err(StorageError::io(
            path,
            "create",
            io::Error::from(io::ErrorKind::IsADirectory),
        ));
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| StorageError::io(path, "create the directory", e))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".creating-{}", std::process::id()));
    let temp = dir.join(temp_name);
    // Left over by a crash of an earlier process with our pid: never a live database.
    let _ = fs::remove_file(&temp);

    let result = build_and_link(path, &temp, builder);
    let _ = fs::remove_file(&temp);
    result
}

fn build_and_link(
    path: &Path,
    temp: &PathBuf,
    builder: &Builder,
) -> Result<Option<Database>, StorageError> {
    let db = builder.create(temp).map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => StorageError::locked(path, "unknown".to_string()),
        other => StorageError::from_redb(path, "create", other.into()),
    })?;
    let txn = db.begin_write().at(path, "create")?;
    schema::initialize(&txn).at(path, "create")?;
    txn.commit().at(path, "create")?;

    // A hard link never replaces an existing file, unlike rename: two instances starting at once
    // cannot both believe they created the database.
    match fs::hard_link(temp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(_) if path.exists() => return Ok(None),
        // File systems without hard links: rename, checked just above.
        Err(_) => fs::rename(temp, path).map_err(|e| StorageError::io(path, "create", e))?,
    }
    pidfile::sync_parent(path).map_err(|e| StorageError::io(path, "create", e))?;
    tracing::info!(
        event = "storage_created",
        path = %path.display(),
        schema = SCHEMA_VERSION,
        "new database created"
    );
    Ok(Some(db))
}
