//! Who holds the database: another handle of this process (retry), another process (refuse),
//! and the start-up preflight that tells them apart without touching the file.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use super::*;
use crate::storage::{check_not_in_use, Holder, StorageError, StorageErrorKind};

/// Child side: holds the database open until killed.
#[test]
#[ignore = "child-process entry point: run by its parent test, not a test itself"]
fn child_holds_the_database_until_killed() {
    let Some(path) = child_db("hold") else { return };
    let _store = Store::open(&path).expect("the child opens the database");
    println!("holding");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_database_held_by_another_process_is_refused_by_the_preflight_and_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    drop(Store::open(&path).unwrap());
    let mut child = child_command(
        module_path!(),
        "child_holds_the_database_until_killed",
        "hold",
        &path,
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let held = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "holding");
    assert!(held, "the child did not open the database");

    let preflight = check_not_in_use(&path).unwrap_err();
    let open = Store::open(&path).unwrap_err();
    let _ = child.kill();
    let _ = child.wait();
    for error in [&preflight, &open] {
        assert!(
            matches!(
                error,
                StorageError::Locked {
                    holder: Holder::OtherProcess,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.is_locked_by_another_process());
        let text = error.to_string();
        assert!(
            text.contains(&path.display().to_string())
                && text.contains(&format!("in use by another opcgw (pid {})", child.id())),
            "{text}"
        );
    }
    Store::open(&path).expect("free once the other process is gone");
}

#[test]
fn a_database_held_in_this_process_is_a_passing_lock_not_another_opcgw() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opcgw.redb");
    let first = Store::open(&path).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Locked);
    assert!(!error.is_locked_by_another_process(), "{error:?}");
    assert!(matches!(
        check_not_in_use(&path),
        Err(StorageError::Locked {
            holder: Holder::ThisProcess,
            ..
        })
    ));
    drop(first);
    check_not_in_use(&path).expect("free");
}

#[test]
fn the_preflight_passes_what_the_storage_actor_reports_itself_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.redb");
    check_not_in_use(&missing).unwrap();
    assert!(!missing.exists(), "the preflight created the file");

    let garbage = dir.path().join("garbage.redb");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&garbage, &bytes).unwrap();
    check_not_in_use(&garbage).unwrap();
    assert_eq!(fs::read(&garbage).unwrap(), bytes);

    let empty = dir.path().join("empty.redb");
    fs::write(&empty, b"").unwrap();
    check_not_in_use(&empty).unwrap();
    assert_eq!(fs::read(&empty).unwrap(), b"");

    let good = dir.path().join("good.redb");
    drop(Store::open(&good).unwrap());
    let before = fs::read(&good).unwrap();
    check_not_in_use(&good).unwrap();
    assert_eq!(
        fs::read(&good).unwrap(),
        before,
        "the preflight wrote to the file"
    );
}
