//! Folding staged rows from `recent` (keyed by time) into `history` (keyed by series).
//!
//! Appends go to `recent`, where a batch lands on a few pages at the right edge of a small
//! tree. Once `recent` holds [`StoreOptions::fold_trigger_rows`](super::StoreOptions) rows, its
//! oldest rows move to `history` in chunks of `fold_chunk_rows`, each chunk one durable
//! transaction: sorted by (series, time), a chunk of 50,000 rows spread over 1,000 series writes
//! each series' tail pages once, instead of once per batch. A row's key is the same in both
//! tables, so a fold never changes what a read returns, and a reader's resume key stays valid.

use redb::{ReadableTable, ReadableTableMetadata};

use super::error::{RedbResultExt, StorageError};
use super::schema::{HISTORY, RECENT};
use super::Store;

impl Store {
    /// Folds while `recent` is at or above the trigger. Called after an append has committed:
    /// a failure here is logged and left for the next append (the batch is already durable,
    /// and reads see staged rows anyway).
    pub(super) fn fold_if_due(&mut self, staged: u64) {
        let trigger = self.options.fold_trigger_rows.max(1) as u64;
        let mut staged = staged;
        while staged >= trigger {
            let path = self.path.clone();
            match super::shield(&path, || self.fold_chunk()) {
                Ok(left) => staged = left,
                Err(error) => {
                    if error.poisons_handle() {
                        self.needs_reopen = true;
                    }
                    tracing::warn!(
                        event = "storage_fold_failed",
                        path = %self.path.display(),
                        error = %error,
                        "moving staged samples into history failed; retried after the next \
                         append"
                    );
                    return;
                }
            }
        }
    }

    /// Moves up to `fold_chunk_rows` of the oldest staged rows into `history`, in one durable
    /// transaction. Returns the rows still staged.
    pub(super) fn fold_chunk(&mut self) -> Result<u64, StorageError> {
        const ACTION: &str = "move staged samples into history";
        let path = &self.path;
        let chunk = self.options.fold_chunk_rows.max(1);
        let txn = self.db()?.begin_write().at(path, ACTION)?;
        let mut rows: Vec<((u32, i64), Vec<u8>)> = Vec::new();
        let left = {
            let mut recent = txn.open_table(RECENT).at(path, ACTION)?;
            let staged = recent.len().at(path, ACTION)?;
            let everything = staged <= chunk as u64;
            rows.reserve(staged.min(chunk as u64) as usize);
            if everything {
                // The usual case: read it all, then drop the table's pages in one go (cheaper
                // than removing rows one by one).
                for row in recent.iter().at(path, ACTION)? {
                    let (key, value) = row.at(path, ACTION)?;
                    let (time, series) = key.value();
                    rows.push(((series, time), value.value().to_vec()));
                }
            } else {
                // A backlog (batches bigger than a chunk): the oldest `chunk` rows only.
                // extract_if removes exactly the rows the iterator yields.
                for row in recent.extract_if(|_, _| true).at(path, ACTION)?.take(chunk) {
                    let (key, value) = row.at(path, ACTION)?;
                    let (time, series) = key.value();
                    rows.push(((series, time), value.value().to_vec()));
                }
            }
            drop(recent);
            if everything {
                txn.delete_table(RECENT).at(path, ACTION)?;
                txn.open_table(RECENT).at(path, ACTION)?;
            }
            rows.sort_unstable_by_key(|(key, _)| *key);
            let mut history = txn.open_table(HISTORY).at(path, ACTION)?;
            for (key, value) in &rows {
                // A row already in history is an older write of the same key (the append
                // counted it as a duplicate): the staged one replaces it.
                history.insert(*key, value.as_slice()).at(path, ACTION)?;
            }
            staged - rows.len() as u64
        };
        super::staged::bump_generation(&txn).at(path, ACTION)?;
        txn.commit().at(path, ACTION)?;
        self.rebuild_staged();
        // Rows are sorted by (series, time): the last of each series is its newest.
        for pair in rows.windows(2) {
            if pair[0].0 .0 != pair[1].0 .0 {
                self.series.note_folded(pair[0].0 .0, pair[0].0 .1);
            }
        }
        if let Some(((series, time), _)) = rows.last() {
            self.series.note_folded(*series, *time);
        }
        Ok(left)
    }
}
