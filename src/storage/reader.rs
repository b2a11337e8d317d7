//! Reads that never wait behind writes. The storage actor owns the database and does every
//! write, retention and reopen; queries (OPC UA HistoryRead, the console's history and charts,
//! `opcgw ctl history`) open their own read transaction on the same database from the task
//! that asks, so a long commit or a burst of appends in the actor's mailbox does not hold
//! them up. redb serves any number of read transactions beside its one writer, each on a
//! consistent snapshot.
//!
//! The store publishes its open database in a [`ReadSlot`] as a weak handle: a read holds the
//! database only for its own duration, and once the store closes it (a restart of the storage
//! actor, a reopen after an I/O error) the slot yields nothing until the store publishes the
//! new handle; callers then ask the storage actor, which answers or says it is unavailable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};

use super::guard::shield;
use super::history::{ReadView, SeriesLookup};
use super::OpenDatabase;
use super::{
    DownsampleQuery, Downsampled, HistoryPage, HistoryQuery, ProcessedPage, ProcessedQuery,
    StorageError,
};

/// Where the storage actor publishes the database it has open, for [`Reader`]s. One per tree:
/// it outlives restarts of the storage actor.
#[derive(Clone, Default)]
pub struct ReadSlot(Arc<RwLock<Option<Published>>>);

struct Published {
    path: PathBuf,
    db: Weak<OpenDatabase>,
}

impl std::fmt::Debug for ReadSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSlot")
            .field("open", &self.reader().is_some())
            .finish()
    }
}

impl ReadSlot {
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn publish(&self, path: &Path, db: &Arc<OpenDatabase>) {
        let published = Published {
            path: path.to_path_buf(),
            db: Arc::downgrade(db),
        };
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(published);
    }

    /// A reader of the database as it is open now; `None` while no store has it open.
    pub fn reader(&self) -> Option<Reader> {
        let slot = self.0.read().unwrap_or_else(|e| e.into_inner());
        let published = slot.as_ref()?;
        Some(Reader {
            path: published.path.clone(),
            db: published.db.upgrade()?,
        })
    }
}

/// The database for the span of one or a few reads. Keep it briefly: while it lives, the store
/// cannot reopen the file.
pub struct Reader {
    path: PathBuf,
    db: Arc<OpenDatabase>,
}

impl Reader {
    fn view(&self) -> ReadView<'_> {
        ReadView {
            path: &self.path,
            db: self.db.database(),
            series: SeriesLookup::Table,
            staged: Some(self.db.staged()),
        }
    }

    /// [`super::Store::history`], on this task.
    pub fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StorageError> {
        shield(&self.path, || self.view().history(query))
    }

    /// [`super::Store::history_processed`], on this task.
    pub fn history_processed(&self, query: &ProcessedQuery) -> Result<ProcessedPage, StorageError> {
        shield(&self.path, || self.view().history_processed(query))
    }

    /// [`super::Store::history_downsampled`], on this task.
    pub fn history_downsampled(
        &self,
        query: &DownsampleQuery,
    ) -> Result<Downsampled, StorageError> {
        shield(&self.path, || self.view().history_downsampled(query))
    }
}
