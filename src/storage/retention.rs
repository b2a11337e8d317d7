//! Retention: deleting history older than a horizon, in bounded chunks.
//!
//! redb has one writer at a time, so a prune that deleted a month of history in one transaction
//! would hold up every append behind it. Each call deletes at most `max_rows` rows in one write
//! transaction and says whether more remain; the actor calls again between appends until done.
//! Freed pages are reused by later appends (the file does not shrink).
//!
//! A pass that goes through every series records the oldest row left (the history floor,
//! lowered by appends of older samples). While the horizon is not past it, there is nothing to
//! prune and a pass reads nothing: the pass a minute after start does not walk the first page
//! of every series through the page cache (at 110,000 series, 110,000 pages no one reads
//! otherwise), nor does any pass while the history is younger than its retention.

use redb::ReadableTable;

use super::error::{RedbResultExt, StorageError};
use super::schema::{self, HISTORY, RECENT, SERIES_NAMES};
use super::Store;
use crate::model::Timestamp;

/// What one [`Store::prune`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub removed: usize,
    /// Rows older than the horizon remain: call again.
    pub more: bool,
    /// Series whose history was looked at (none when the floor said there was nothing).
    pub scanned: usize,
}

impl Store {
    /// Deletes history rows with time < `horizon`, at most `max_rows` (> 0) per call, in one
    /// durable write transaction. Staged and folded copies of one key are one row for
    /// `removed`, but each costs one of `max_rows` (the bound is on work).
    pub fn prune(
        &mut self,
        horizon: Timestamp,
        max_rows: usize,
    ) -> Result<PruneReport, StorageError> {
        if max_rows == 0 {
            return Err(StorageError::invalid(
                &self.path,
                "prune max_rows must be > 0",
            ));
        }
        self.write(|store| store.prune_history(horizon.as_micros(), max_rows))
    }

    fn prune_history(
        &mut self,
        horizon: i64,
        max_rows: usize,
    ) -> Result<PruneReport, StorageError> {
        const ACTION: &str = "prune history";
        let path = &self.path;
        let txn = self.db()?.begin_write().at(path, ACTION)?;
        let mut report = PruneReport::default();
        let floor = schema::history_floor(&txn).at(path, ACTION)?;
        if floor.is_some_and(|floor| horizon <= floor) {
            return Ok(report);
        }
        // Rows removed from either table; `report.removed` counts logical rows.
        let mut deleted = 0;
        // The oldest row left, once every series was looked at (`i64::MAX`: none left, so none
        // older than anything).
        let mut oldest_left = i64::MAX;
        {
            let names = txn.open_table(SERIES_NAMES).at(path, ACTION)?;
            let mut history = txn.open_table(HISTORY).at(path, ACTION)?;
            let mut recent = txn.open_table(RECENT).at(path, ACTION)?;

            // Staged rows first: by time, the old ones are one contiguous range.
            let staged_old = (i64::MIN, 0)..(horizon, 0);
            {
                let mut extracted = recent
                    .extract_from_if(staged_old.clone(), |_, _| true)
                    .at(path, ACTION)?;
                while deleted < max_rows {
                    let Some(row) = extracted.next() else { break };
                    let (key, _) = row.at(path, ACTION)?;
                    let (time, series) = key.value();
                    deleted += 1;
                    // A key also in history is counted when that copy goes.
                    if history.get((series, time)).at(path, ACTION)?.is_none() {
                        report.removed += 1;
                    }
                }
            }
            if deleted == max_rows {
                report.more = recent.range(staged_old).at(path, ACTION)?.next().is_some();
            }

            // Series ids first: the scan of `names` cannot stay borrowed while history changes.
            let mut ids = Vec::with_capacity(self.series.len());
            if !report.more {
                for row in names.iter().at(path, ACTION)? {
                    ids.push(row.at(path, ACTION)?.0.value());
                }
            }
            for id in ids {
                report.scanned += 1;
                let old = (id, i64::MIN)..(id, horizon);
                let budget = max_rows - deleted;
                if budget > 0 {
                    // extract_from_if removes exactly the rows the iterator yields.
                    let mut extracted = history
                        .extract_from_if(old.clone(), |_, _| true)
                        .at(path, ACTION)?;
                    while deleted < max_rows {
                        let Some(row) = extracted.next() else { break };
                        row.at(path, ACTION)?;
                        deleted += 1;
                        report.removed += 1;
                    }
                }
                // Out of budget: only find out whether work remains (here or further on).
                if deleted == max_rows && history.range(old).at(path, ACTION)?.next().is_some() {
                    report.more = true;
                    break;
                }
                // Its oldest row left (on the page just read).
                if let Some(row) = history
                    .range((id, horizon)..=(id, i64::MAX))
                    .at(path, ACTION)?
                    .next()
                {
                    oldest_left = oldest_left.min(row.at(path, ACTION)?.0.value().1);
                }
            }
            if !report.more {
                if let Some(row) = recent.first().at(path, ACTION)? {
                    oldest_left = oldest_left.min(row.0.value().0);
                }
            }
        }
        // Every series looked at: the new floor.
        let new_floor = (!report.more).then_some(oldest_left);
        let floor_moved = new_floor.is_some_and(|new_floor| Some(new_floor) != floor);
        if let Some(new_floor) = new_floor.filter(|_| floor_moved) {
            schema::set_history_floor(&txn, new_floor).at(path, ACTION)?;
        }
        if deleted > 0 {
            schema::add_history_rows(&txn, -(report.removed as i64)).at(path, ACTION)?;
            super::staged::bump_generation(&txn).at(path, ACTION)?;
        }
        if deleted > 0 || floor_moved {
            txn.commit().at(path, ACTION)?;
        }
        if deleted > 0 {
            self.rebuild_staged();
        }
        Ok(report)
    }
}
