//! Turning a panic inside redb into a [`StorageError`], quietly.
//!
//! redb checks some invariants with assertions that a file damaged outside redb can trip.
//! `catch_unwind` stops the unwinding, but the process's panic hook has already printed the
//! message (and, with `RUST_BACKTRACE` set, a full backtrace) by then — once per retry of a
//! storage actor that keeps opening the same damaged file. So while a guarded operation runs,
//! the hook installed here records where the panic happened instead of printing it; the error
//! returned names the file and the remedy, and its owner reports it once. Panics anywhere else
//! go to the previous hook unchanged.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use super::error::StorageError;

thread_local! {
    /// Set while a guarded operation runs on this thread.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic of this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL_HOOK: Once = Once::new();

/// Wraps the current panic hook (once per process) so that guarded panics are not printed.
fn install_quiet_hook() {
    INSTALL_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", short_file(l.file()), l.line()));
                LOCATION.with(|slot| *slot.borrow_mut() = location);
                return;
            }
            previous(info);
        }));
    });
}

/// Runs `body`, turning a panic inside it into [`StorageError::Corrupt`] naming `path` (and
/// where redb stopped). Relies on `panic = "unwind"`, which the workspace keeps for ractor
/// anyway.
pub(super) fn shield<T>(
    path: &Path,
    body: impl FnOnce() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    install_quiet_hook();
    let outer = GUARDED.with(|g| g.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(body));
    GUARDED.with(|g| g.set(outer));
    match outcome {
        Ok(result) => result,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let location = LOCATION
                .with(|slot| slot.borrow_mut().take())
                .map(|at| format!(" at {at}"))
                .unwrap_or_default();
            tracing::debug!(
                event = "storage_internal_panic",
                path = %path.display(),
                panic = %message,
                location = location.as_str(),
                "redb stopped on an inconsistency"
            );
            Err(StorageError::corrupt(
                path,
                format!("redb stopped on an inconsistency{location}: {message}"),
            ))
        }
    }
}

/// The last four components of a source path (`redb-4.6.0/src/tree_store/btree.rs`): enough to
/// find the assertion, without the build machine's home directory in the operator's log.
fn short_file(file: &str) -> &str {
    match file.rmatch_indices('/').nth(3) {
        Some((index, _)) => &file[index + 1..],
        None => file,
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_panic_becomes_a_corrupt_error_naming_the_file_and_the_place() {
        let path = Path::new("/var/lib/opcgw/opcgw.redb");
        let error = shield(path, || -> Result<(), StorageError> {
            panic!("assertion failed: page_number < self.len")
        })
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.kind(), super::super::StorageErrorKind::Corrupt);
        assert!(
            text.contains("/var/lib/opcgw/opcgw.redb")
                && text.contains("page_number < self.len")
                && text.contains(" at src/storage/guard.rs:"),
            "{text}"
        );
        // The flag is cleared: a later panic outside a guard is not swallowed by it.
        assert!(!GUARDED.with(Cell::get));
        let nested = shield(path, || shield(path, || Ok(1)));
        assert_eq!(nested.unwrap(), 1);
        assert!(!GUARDED.with(Cell::get));
    }
}
