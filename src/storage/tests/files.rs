//! The file itself: bad files are refused untouched, a held file is reported with its owner's
//! pid, a newer schema is refused, permissions give clear errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use redb::ReadableDatabase;

use super::*;
use crate::storage::schema::{self, Prepared, META, META_SCHEMA_VERSION, SCHEMA_VERSION};
use crate::storage::{StorageError, StorageErrorKind};

/// Opening `path` fails with `kind`, names the path, and leaves the file byte for byte as it
/// was (and creates nothing next to it).
fn assert_refused_untouched(path: &Path, kind: StorageErrorKind, hint: &str) -> StorageError {
    let before = fs::read(path).ok();
    let siblings = |p: &Path| {
        let mut names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let around = siblings(path);
    let error = Store::open(path).unwrap_err();
    assert_eq!(error.kind(), kind, "{error}");
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(hint), "{text}");
    assert_eq!(fs::read(path).ok(), before, "the file was changed");
    assert_eq!(siblings(path), around, "files appeared next to it");
    error
}

/// A closed database holding some history, and its bytes.
fn written_database(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("opcgw.redb");
    let mut store = Store::open(&path).unwrap();
    let samples: Vec<Sample> = (0..20_000)
        .map(|i| {
            sample(
                &format!("dev{}", i % 50),
                "level",
                Value::Float(i as f64 * 0.37),
                i,
            )
        })
        .collect();
    store.append(&samples).unwrap();
    drop(store);
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn a_new_database_is_created_with_its_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/nested/opcgw.redb");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    assert!(path.is_file());
    assert_eq!(store.counts().unwrap().series, 0);
    drop(store);
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["opcgw.redb"],
        "no temporary or pid file left behind"
    );
}

#[test]
fn a_file_that_is_not_redb_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    fs::write(&path, "[storage]\ndatabase_path = \"oops\"\n".repeat(200)).unwrap();
    let error = assert_refused_untouched(&path, StorageErrorKind::Corrupt, "move it aside");
    assert!(error.to_string().contains("mv "), "{error}");
    fs::write(&path, b"x").unwrap();
    assert_refused_untouched(&path, StorageErrorKind::Corrupt, "move it aside");
}

#[test]
fn an_empty_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    fs::write(&path, b"").unwrap();
    let error = assert_refused_untouched(&path, StorageErrorKind::Corrupt, "empty");
    assert!(error.to_string().contains("restore a backup"), "{error}");
}

#[test]
fn a_truncated_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = written_database(dir.path());
    for keep in [bytes.len() / 2, bytes.len() - 4096, 4096, 600] {
        fs::write(&path, &bytes[..keep]).unwrap();
        assert_refused_untouched(&path, StorageErrorKind::Corrupt, "move it aside");
    }
}

#[test]
fn a_directory_path_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    fs::create_dir(&path).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Io);
    assert!(error.to_string().contains("is a directory"), "{error}");
    assert_eq!(fs::read_dir(&path).unwrap().count(), 0);
}

#[test]
fn a_redb_file_of_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<u64, u64>::new("theirs"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
    }
    let error = Store::open(&path).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Corrupt);
    assert!(
        error.to_string().contains("not an opcgw database"),
        "{error}"
    );
}

#[test]
fn a_damaged_page_is_reported_as_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes) = written_database(dir.path());
    let (from, to) = (bytes.len() * 2 / 5, bytes.len() * 3 / 5);
    for byte in &mut bytes[from..to] {
        *byte ^= 0xa5;
    }
    fs::write(&path, &bytes).unwrap();
    let outcome = Store::open(&path).and_then(|store| {
        for device in 0..50 {
            store.history(&query(
                &format!("dev{device}"),
                "level",
                0,
                i64::MAX,
                100_000,
            ))?;
        }
        store.latest(None).map(|_| ())
    });
    let error = outcome.expect_err("a damaged file must not read as fine");
    assert_eq!(error.kind(), StorageErrorKind::Corrupt, "{error}");
    assert!(error.to_string().contains("move it aside"), "{error}");
}

#[test]
fn a_row_that_does_not_decode_is_an_error_naming_it() {
    use crate::storage::schema::{HISTORY, LATEST};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let mut store = Store::open_with(
        &path,
        StoreOptions {
            fold_trigger_rows: 1,
            fold_rows_per_series: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store
        .append(&[sample("dev", "level", Value::Int(1), 10)])
        .unwrap(); // folded into history at once: series 1, time 10
    drop(store);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let garbage: &[u8] = &[0x7f, 1, 2];
        txn.open_table(HISTORY)
            .unwrap()
            .insert((1, 10), garbage)
            .unwrap();
        txn.open_table(LATEST).unwrap().insert(1, garbage).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let error = store
        .history(&query("dev", "level", 0, 100, 10))
        .unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Corrupt);
    assert!(
        error.to_string().contains("row (1, 10) of table history"),
        "{error}"
    );
    let error = store.latest(None).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Corrupt);
    assert!(
        error.to_string().contains("row 1 of table latest"),
        "{error}"
    );
}

#[test]
fn a_second_open_is_refused_with_the_owners_pid_and_the_pid_file_goes_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let first = Store::open(&path).unwrap();
    let pid_file = dir.path().join("opcgw.redb.pid");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        std::process::id().to_string()
    );
    let error = Store::open(&path).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Locked);
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "in use by another opcgw (pid {})",
            std::process::id()
        )),
        "{text}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    drop(first);
    assert!(!pid_file.exists());
    Store::open(&path).expect("free again once the first store is gone");
}

#[test]
fn a_lock_without_a_pid_file_says_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let _first = Store::open(&path).unwrap();
    fs::remove_file(dir.path().join("opcgw.redb.pid")).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(error.to_string().contains("(pid unknown)"), "{error}");
}

/// Rewrites the schema version of a closed database behind the store's back.
fn set_schema_version(path: &Path, version: u64) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert(META_SCHEMA_VERSION, version)
        .unwrap();
    txn.commit().unwrap();
}

fn schema_version(path: &Path) -> Option<u64> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let version = meta.get(META_SCHEMA_VERSION).unwrap().map(|v| v.value());
    version
}

#[test]
fn a_database_from_a_newer_opcgw_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let mut store = Store::open(&path).unwrap();
    store
        .append(&[sample("dev", "level", Value::Int(1), 1)])
        .unwrap();
    drop(store);
    set_schema_version(&path, SCHEMA_VERSION + 1);

    let error = Store::open(&path).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::NewerSchema);
    assert_eq!(
        error.to_string(),
        format!(
            "database {} was written by a newer opcgw (schema {}, this binary knows {}): \
             upgrade opcgw or restore a backup",
            path.display(),
            SCHEMA_VERSION + 1,
            SCHEMA_VERSION
        )
    );
    assert_eq!(schema_version(&path), Some(SCHEMA_VERSION + 1));

    set_schema_version(&path, SCHEMA_VERSION);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.latest(None).unwrap().len(),
        1,
        "the data was not touched"
    );
}

/// The hook runs each step in order inside the open's transaction; a missing step aborts the
/// whole upgrade and leaves the file at its old version.
#[test]
fn migrations_run_in_order_and_a_failed_upgrade_changes_nothing() {
    const MARKER: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("migrated");
    fn to_two(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        txn.open_table(MARKER)?.insert("to_two", 2)?;
        Ok(())
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    drop(Store::open(&path).unwrap());
    let db = redb::Database::open(&path).unwrap();

    let txn = db.begin_write().unwrap();
    let error = schema::prepare(&txn, 3, &[to_two]).unwrap_err();
    assert!(
        error.to_string().contains("no migration from schema 2"),
        "{error}"
    );
    drop(txn);
    assert_eq!(
        read_version(&db),
        Some(1),
        "an aborted upgrade leaves version 1"
    );

    let txn = db.begin_write().unwrap();
    assert_eq!(
        schema::prepare(&txn, 2, &[to_two]).unwrap(),
        Prepared::Ready { found: 1 }
    );
    txn.commit().unwrap();
    assert_eq!(read_version(&db), Some(2));
    let txn = db.begin_read().unwrap();
    let marker = txn.open_table(MARKER).unwrap();
    assert_eq!(marker.get("to_two").unwrap().map(|v| v.value()), Some(2));
}

fn read_version(db: &redb::Database) -> Option<u64> {
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let version = meta.get(META_SCHEMA_VERSION).unwrap().map(|v| v.value());
    version
}

// --- Permissions: root ignores file modes, so as root the open runs in a child as `nobody`. ---

const NOBODY: u32 = 65_534;

/// Child side: opens the database and prints the outcome.
#[test]
#[ignore = "child-process entry point: run by its parent test, not a test itself"]
fn child_opens_the_database_and_reports() {
    let Some(path) = child_db("open") else { return };
    match Store::open(&path) {
        Ok(_) => println!("outcome: opened"),
        Err(e) => println!("outcome: {:?}: {e}", e.kind()),
    }
}

/// Runs the open in a child process, unprivileged, and returns its outcome line; `None` when
/// running as root in a sandbox that forbids switching to an unprivileged uid.
fn open_unprivileged(path: &Path) -> Option<String> {
    let mut command = child_command(
        module_path!(),
        "child_opens_the_database_and_reports",
        "open",
        path,
    );
    if nix::unistd::geteuid().is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("skipped: cannot run a child as uid {NOBODY}: {e}");
            return None;
        }
        Err(e) => panic!("run the child: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed: {stdout}");
    let outcome = stdout
        .lines()
        .find_map(|l| l.strip_prefix("outcome: "))
        .unwrap_or_else(|| panic!("no outcome in: {stdout}"))
        .to_string();
    Some(outcome)
}

#[test]
fn a_read_only_directory_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let read_only = dir.path().join("ro");
    fs::create_dir(&read_only).unwrap();
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).unwrap();
    let path = read_only.join("opcgw.redb");
    let Some(outcome) = open_unprivileged(&path) else {
        return;
    };
    assert!(outcome.starts_with("Io: "), "{outcome}");
    assert!(outcome.contains(&path.display().to_string()), "{outcome}");
    assert!(outcome.contains("Permission denied"), "{outcome}");
    assert!(outcome.contains("may read and write"), "{outcome}");
    assert_eq!(fs::read_dir(&read_only).unwrap().count(), 0);
}

#[test]
fn a_database_file_without_write_permission_gives_a_clear_error_and_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (path, bytes) = written_database(dir.path());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let Some(outcome) = open_unprivileged(&path) else {
        return;
    };
    assert!(outcome.starts_with("Io: "), "{outcome}");
    assert!(outcome.contains("Permission denied"), "{outcome}");
    assert!(outcome.contains(&path.display().to_string()), "{outcome}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.counts().unwrap().history_rows, 20_000);
}

#[test]
fn a_database_deleted_while_open_is_noticed_before_the_next_write_and_is_recreated_by_a_new_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let mut store = Store::open(&path).unwrap();
    store
        .append(&[sample("dev", "level", Value::Int(1), 10)])
        .unwrap();
    fs::remove_file(&path).unwrap();

    let error = store
        .append(&[sample("dev", "level", Value::Int(2), 20)])
        .unwrap_err();
    assert!(matches!(error, StorageError::FileGone { .. }), "{error}");
    assert!(error.requires_reopen_by_owner());
    let text = error.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("was deleted"),
        "{text}"
    );
    // Every write refuses (none is committed into the unlinked file), and none recreates it.
    assert!(store.put_status("upstream", "{}").is_err());
    assert!(store.prune(Timestamp(0), 10).is_err());
    assert!(
        !path.exists(),
        "a write recreated the file behind the owner's back"
    );

    // The owner opens the path again: a new, empty database that takes the writes. The old
    // store going away afterwards leaves the new store's pid file alone.
    let mut fresh = Store::open(&path).unwrap();
    drop(store);
    assert!(dir.path().join("opcgw.redb.pid").exists());
    fresh
        .append(&[sample("dev", "level", Value::Int(3), 30)])
        .unwrap();
    let rows = all_rows(&fresh, query("dev", "level", 0, 100, 10));
    assert_eq!(rows.len(), 1);
    drop(fresh);
    assert!(!dir.path().join("opcgw.redb.pid").exists());
}

#[test]
fn a_database_replaced_while_open_is_noticed_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let mut store = Store::open(&path).unwrap();
    let copy = dir.path().join("copy.redb");
    fs::copy(&path, &copy).unwrap();
    fs::rename(&copy, &path).unwrap();
    let error = store
        .append(&[sample("dev", "level", Value::Int(1), 10)])
        .unwrap_err();
    assert!(
        error.to_string().contains("was replaced by another file"),
        "{error}"
    );
}
