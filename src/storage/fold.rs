//! Folding staged rows from `recent` (keyed by time) into `history` (keyed by series).
//!
//! Appends go to `recent`, where a batch lands on a few pages at the right edge of a small
//! tree. A fold moves staged rows to `history`, sorted by (series, time), so each series'
//! newest pages are written once for all its rows instead of once per batch. A fold is due
//! once `recent` holds [`StoreOptions::fold_trigger_rows`](super::StoreOptions) rows *and*
//! `fold_rows_per_series` rows per series it holds rows of (or `fold_max_staged_rows` in all):
//! at 110,000 series a fold at 50,000 rows wrote a page of history per row. Up to
//! `fold_chunk_rows` staged rows fold in one durable transaction (reading everything and
//! dropping the table's pages); more fold a range of series ids at a time (its rows only, at
//! most a chunk: a fold's memory and time stay bounded), one range per append, the next
//! range starting where the last ended. A writer with more batches waiting (the catch-up
//! after a restart) defers the fold ([`Fold::Deferred`]) up to `fold_max_staged_rows`: a fold
//! of a range at 110,000 series takes ~2 s, and the waiting batches hold back the event
//! streams. A row's key is the same in both tables, so a fold never changes what a read
//! returns, and a reader's resume key stays valid.

use redb::{ReadableTable, ReadableTableMetadata};

use super::error::{RedbResultExt, StorageError};
use super::samples::Fold;
use super::schema::{HISTORY, RECENT};
use super::Store;

/// Staged rows as `history` keys them, (series, time), with their encoded values in one
/// buffer. A fold holds up to a chunk of rows (88,000 at 11,000 series): a `Vec` of its own
/// per value was ~70 bytes and an allocation per row (now ~41 bytes), and showed as a step
/// in the resident set at every fold.
#[derive(Debug, Default)]
struct HistoryRows {
    /// (key, start, end) of each row's value in `values`.
    rows: Vec<((u32, i64), usize, usize)>,
    values: Vec<u8>,
}

impl HistoryRows {
    fn with_capacity(rows: usize) -> Self {
        Self {
            rows: Vec::with_capacity(rows),
            // Most encoded values are a tag and 8 bytes.
            values: Vec::with_capacity(rows.saturating_mul(9)),
        }
    }

    /// Adds a row of `recent`, keyed (time, series).
    fn push(&mut self, (time, series): (i64, u32), value: &[u8]) {
        let start = self.values.len();
        self.values.extend_from_slice(value);
        self.rows.push(((series, time), start, self.values.len()));
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn sort(&mut self) {
        self.rows.sort_unstable_by_key(|(key, _, _)| *key);
    }

    fn iter(&self) -> impl Iterator<Item = ((u32, i64), &[u8])> + '_ {
        (self.rows.iter()).map(|&(key, start, end)| (key, &self.values[start..end]))
    }

    /// The newest time of each series, once the rows are sorted.
    fn newest_of_each_series(&self) -> impl Iterator<Item = (u32, i64)> + '_ {
        let keys = self.rows.iter().map(|(key, _, _)| *key);
        let next = keys.clone().skip(1).map(Some).chain(std::iter::once(None));
        keys.zip(next)
            .filter(|((series, _), next)| next.is_none_or(|(other, _)| other != *series))
            .map(|(key, _)| key)
    }
}

impl Store {
    /// Folds when due. Called after an append has committed: a failure here is logged and left
    /// for the next append (the batch is already durable, and reads see staged rows anyway).
    pub(super) fn fold_if_due(&mut self, staged: u64, fold: Fold) {
        if !self.fold_due(staged, fold) {
            return;
        }
        let chunk = self.options.fold_chunk_rows.max(1);
        let path = self.path.clone();
        let folded = if staged <= chunk as u64 {
            super::shield(&path, || self.fold_everything())
        } else {
            super::shield(&path, || self.fold_next_range(chunk))
        };
        if let Err(error) = folded {
            if error.poisons_handle() {
                self.needs_reopen = true;
            }
            tracing::warn!(
                event = "storage_fold_failed",
                path = %self.path.display(),
                error = %error,
                "moving staged samples into history failed; retried after the next append"
            );
        }
    }

    fn fold_due(&self, staged: u64, fold: Fold) -> bool {
        let options = &self.options;
        if staged < options.fold_trigger_rows.max(1) as u64 {
            return false;
        }
        if staged >= options.fold_max_staged_rows as u64 {
            return true;
        }
        if fold == Fold::Deferred {
            return false;
        }
        let series = self.staged_index().map_or(0, |index| {
            index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .series_count()
        });
        staged >= (series as u64).saturating_mul(options.fold_rows_per_series as u64)
    }

    /// Moves every staged row into `history` in one durable transaction, then drops the
    /// table's pages in one go (cheaper than removing rows one by one).
    fn fold_everything(&mut self) -> Result<(), StorageError> {
        const ACTION: &str = "move staged samples into history";
        let path = &self.path;
        let txn = self.db()?.begin_write().at(path, ACTION)?;
        let mut rows;
        {
            let recent = txn.open_table(RECENT).at(path, ACTION)?;
            rows = HistoryRows::with_capacity(recent.len().at(path, ACTION)? as usize);
            for row in recent.iter().at(path, ACTION)? {
                let (key, value) = row.at(path, ACTION)?;
                rows.push(key.value(), value.value());
            }
        }
        txn.delete_table(RECENT).at(path, ACTION)?;
        txn.open_table(RECENT).at(path, ACTION)?;
        self.move_into_history(txn, rows)?;
        self.rebuild_staged();
        Ok(())
    }

    /// Folds the next range of series (from `fold_cursor`) holding at most `chunk` staged
    /// rows. One range per call: a backlog of many chunks folds over the appends that follow,
    /// each waiting for one chunk's transaction, and the storage actor answers in between
    /// (folding 880,000 rows in one call kept it busy for more than 10 s).
    fn fold_next_range(&mut self, chunk: usize) -> Result<(), StorageError> {
        let next = match self.staged_index() {
            Some(index) => (index.read().unwrap_or_else(|e| e.into_inner()))
                .range_from(self.fold_cursor, chunk),
            None => Some((0, u64::from(u32::MAX) + 1, usize::MAX)),
        };
        let Some((first, end, listed)) = next else {
            return Ok(());
        };
        let (moved, generation) = self.fold_range(first, end, chunk)?;
        self.fold_cursor = u32::try_from(end).unwrap_or(0);
        // The index lists every staged row, so a range it lists at a chunk or less moved
        // whole (at 110,000 series of ten replayed rows each, ranges of exactly a chunk are
        // the rule); only a series with more rows than a chunk is cut and stays staged.
        if moved < chunk || listed <= chunk {
            // The index forgets the range's rows (cheaper than a rebuild from a `recent` of
            // up to two million rows: ~1 s a million at 110,000 series).
            if let Some(index) = self.staged_index() {
                let mut index = index.write().unwrap_or_else(|e| e.into_inner());
                index.forget_range(first, end, generation);
            }
        } else {
            self.rebuild_staged();
        }
        Ok(())
    }

    /// Moves the staged rows of series `[first, end)`, at most `chunk` (the oldest), into
    /// `history` in one durable transaction. `recent` is keyed by (time, series): the rows of a
    /// range of series sit together within each time, so removing them rewrites only the
    /// pages they are on. Returns the rows moved and the staged generation committed.
    fn fold_range(
        &mut self,
        first: u32,
        end: u64,
        chunk: usize,
    ) -> Result<(usize, u64), StorageError> {
        const ACTION: &str = "move staged samples into history";
        let path = &self.path;
        let txn = self.db()?.begin_write().at(path, ACTION)?;
        let mut rows = HistoryRows::with_capacity(chunk);
        {
            let mut recent = txn.open_table(RECENT).at(path, ACTION)?;
            let in_range = |key: (i64, u32), _: &[u8]| first <= key.1 && u64::from(key.1) < end;
            // extract_if removes exactly the rows the iterator yields.
            for row in recent.extract_if(in_range).at(path, ACTION)?.take(chunk) {
                let (key, value) = row.at(path, ACTION)?;
                rows.push(key.value(), value.value());
            }
        }
        let moved = rows.len();
        Ok((moved, self.move_into_history(txn, rows)?))
    }

    /// Inserts `rows` (removed from `recent` in `txn`) into `history` and commits; returns the
    /// staged generation committed.
    fn move_into_history(
        &mut self,
        txn: redb::WriteTransaction,
        mut rows: HistoryRows,
    ) -> Result<u64, StorageError> {
        const ACTION: &str = "move staged samples into history";
        let path = &self.path;
        rows.sort();
        {
            let mut history = txn.open_table(HISTORY).at(path, ACTION)?;
            for (key, value) in rows.iter() {
                // A row already in history is an older write of the same key (the append
                // counted it as a duplicate): the staged one replaces it.
                history.insert(key, value).at(path, ACTION)?;
            }
        }
        let generation = super::staged::bump_generation(&txn).at(path, ACTION)?;
        txn.commit().at(path, ACTION)?;
        for (series, time) in rows.newest_of_each_series() {
            self.series.note_folded(series, time);
        }
        Ok(generation)
    }
}

#[cfg(test)]
mod tests {
    use super::HistoryRows;

    #[test]
    fn rows_sort_by_series_then_time_and_keep_their_own_values() {
        let mut rows = HistoryRows::with_capacity(2);
        for (time, series, value) in [
            (30, 2, &b"c"[..]),
            (10, 1, b"aa"),
            (20, 2, b""),
            (40, 1, b"dddd"),
        ] {
            rows.push((time, series), value);
        }
        assert_eq!(rows.len(), 4);
        rows.sort();
        let sorted: Vec<((u32, i64), &[u8])> = rows.iter().collect();
        assert_eq!(
            sorted,
            vec![
                ((1, 10), &b"aa"[..]),
                ((1, 40), b"dddd"),
                ((2, 20), b""),
                ((2, 30), b"c")
            ]
        );
        let newest: Vec<(u32, i64)> = rows.newest_of_each_series().collect();
        assert_eq!(newest, vec![(1, 40), (2, 30)]);
        assert_eq!(HistoryRows::default().newest_of_each_series().count(), 0);
    }
}
