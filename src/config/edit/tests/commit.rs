//! Write, reload, restore: a refused reload leaves the previous bytes; a failed restore poisons.

use std::cell::Cell;

use super::*;

#[test]
fn a_refused_reload_restores_the_previous_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, ODD).unwrap();
    let prepared = ok(
        ODD,
        ConfigEdit::DeleteApplication {
            application_id: "app-2".into(),
        },
    );
    let seen = Cell::new(String::new());
    let result = commit_edit(&path, ODD, &prepared, write_atomic, || {
        // The reload sees the new file.
        seen.set(std::fs::read_to_string(&path).unwrap());
        Err("opcua.host_port cannot change while the gateway runs".into())
    });
    assert_eq!(seen.take(), prepared);
    match result {
        Err(EditError::ReloadFailed(reason)) => assert!(reason.contains("opcua.host_port")),
        other => panic!("expected reload_failed, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ODD);
}

#[test]
fn an_accepted_reload_keeps_the_new_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, ODD).unwrap();
    let prepared = ok(
        ODD,
        ConfigEdit::DeleteApplication {
            application_id: "app-2".into(),
        },
    );
    assert_eq!(
        commit_edit(&path, ODD, &prepared, write_atomic, || Ok(7)),
        Ok(7)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), prepared);
}

#[test]
fn a_failed_restore_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, ODD).unwrap();
    let prepared = ok(
        ODD,
        ConfigEdit::DeleteApplication {
            application_id: "app-2".into(),
        },
    );
    let writes = Cell::new(0);
    let result = commit_edit(
        &path,
        ODD,
        &prepared,
        |path, bytes| {
            writes.set(writes.get() + 1);
            if writes.get() == 1 {
                write_atomic(path, bytes)
            } else {
                Err(EditError::Io("disk full".into()))
            }
        },
        || Err("refused".into()),
    );
    assert_eq!(writes.get(), 2);
    assert_eq!(result.err().map(|e| e.reason()), Some("poisoned"));
}

#[test]
fn a_failed_write_touches_nothing_and_does_not_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, ODD).unwrap();
    let reloaded = Cell::new(false);
    let result = commit_edit(
        &path,
        ODD,
        "x = 1\n",
        |_, _| Err(EditError::Io("read-only file system".into())),
        || {
            reloaded.set(true);
            Ok(1)
        },
    );
    assert_eq!(result.err().map(|e| e.reason()), Some("io"));
    assert!(!reloaded.get());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ODD);
}
