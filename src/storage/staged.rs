//! Which staged rows (`recent`, keyed by (time, series)) belong to which series, kept in
//! memory, so that a read of one series' recent window fetches its own staged rows instead of
//! walking every series' rows in that window (up to a fold's worth: 50,000 by default).
//!
//! Appends add their (series, time) before they commit, so the index lists at least every
//! committed staged row (a row of a batch that failed to commit is listed but not found: it is
//! skipped). Every transaction that removes staged rows (a fold, a prune) raises the
//! `staged_generation` counter in `meta`; once it has committed the index is rebuilt from
//! `recent` and takes that generation. A read uses the index only when the generation in its
//! snapshot is the index's; otherwise (a fold in between) it walks `recent` as before.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{META, META_STAGED_GENERATION, RECENT};

#[derive(Debug, Default)]
pub(crate) struct StagedIndex {
    generation: u64,
    /// Per series, the times of its staged rows, ascending.
    by_series: HashMap<u32, Vec<i64>>,
}

pub(crate) type SharedStaged = Arc<RwLock<StagedIndex>>;

impl StagedIndex {
    /// The index of what `txn` sees in `recent`.
    pub(crate) fn load(txn: &ReadTransaction) -> Result<Self, redb::Error> {
        let mut index = Self {
            generation: generation_in(txn)?,
            by_series: HashMap::new(),
        };
        let recent = txn.open_table(RECENT)?;
        for row in recent.iter()? {
            let (key, _) = row?;
            let (time, series) = key.value();
            index.add(series, time);
        }
        Ok(index)
    }

    pub(crate) fn add(&mut self, series: u32, time: i64) {
        let times = self.by_series.entry(series).or_default();
        match times.last() {
            // The usual case: newer than every staged row of the series.
            Some(last) if *last < time => times.push(time),
            None => times.push(time),
            Some(_) => {
                if let Err(at) = times.binary_search(&time) {
                    times.insert(at, time);
                }
            }
        }
    }

    /// Series with staged rows.
    pub(crate) fn series_count(&self) -> usize {
        self.by_series.len()
    }

    /// Consecutive ranges `[first, end)` of series ids covering all ids, each holding at most
    /// `rows` staged rows (a series with more is a range of its own); none when nothing is
    /// staged.
    pub(crate) fn ranges_of(&self, rows: usize) -> Vec<(u32, u64)> {
        let mut ids: Vec<(u32, usize)> = (self.by_series.iter())
            .map(|(id, times)| (*id, times.len()))
            .collect();
        ids.sort_unstable();
        let mut ranges = Vec::new();
        let mut open: Option<(u32, usize)> = None;
        for (id, count) in ids {
            match open {
                Some((first, held)) if held + count <= rows => open = Some((first, held + count)),
                Some((first, _)) => {
                    ranges.push((first, u64::from(id)));
                    open = Some((id, count));
                }
                // From 0: a staged row of a series the index would miss is still in a range.
                None => open = Some((0, count)),
            }
        }
        if let Some((first, _)) = open {
            ranges.push((first, u64::from(u32::MAX) + 1));
        }
        ranges
    }

    /// The staged times of `series` in `[low, high)`, ascending; `None` when the index is not
    /// of `generation` (the snapshot of the read).
    pub(crate) fn times(
        &self,
        generation: u64,
        series: u32,
        low: i64,
        high: i64,
    ) -> Option<Vec<i64>> {
        if self.generation != generation {
            return None;
        }
        let Some(times) = self.by_series.get(&series) else {
            return Some(Vec::new());
        };
        let from = times.partition_point(|t| *t < low);
        let to = times.partition_point(|t| *t < high);
        Some(times[from..to].to_vec())
    }
}

/// The staged generation a snapshot sees.
pub(crate) fn generation_in(txn: &ReadTransaction) -> Result<u64, redb::Error> {
    let meta = txn.open_table(META)?;
    Ok(meta.get(META_STAGED_GENERATION)?.map_or(0, |v| v.value()))
}

/// Raises the staged generation in `txn` (which removes staged rows).
pub(crate) fn bump_generation(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    let next = meta.get(META_STAGED_GENERATION)?.map_or(0, |v| v.value()) + 1;
    meta.insert(META_STAGED_GENERATION, next)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_kept_in_order_per_series_and_only_for_their_generation() {
        let mut index = StagedIndex::default();
        for (series, time) in [(1, 10), (2, 11), (1, 30), (1, 20), (1, 30), (2, 5)] {
            index.add(series, time);
        }
        assert_eq!(
            index.times(0, 1, 0, 100),
            Some(vec![10, 20, 30]),
            "late rows sorted in, one per time"
        );
        assert_eq!(index.times(0, 1, 10, 30), Some(vec![10, 20]), "[low, high)");
        assert_eq!(index.times(0, 2, 0, 100), Some(vec![5, 11]));
        assert_eq!(
            index.times(0, 3, 0, 100),
            Some(vec![]),
            "a series with nothing staged"
        );
        assert_eq!(
            index.times(1, 1, 0, 100),
            None,
            "another generation: walk the table"
        );
    }

    #[test]
    fn ranges_cover_every_staged_series_with_at_most_the_rows_asked() {
        let mut index = StagedIndex::default();
        assert!(index.ranges_of(10).is_empty());
        // Series 3: 4 rows, 5: 1, 9: 12 (more than a range), 12: 2, 20: 3.
        for (series, rows) in [(3, 4), (5, 1), (9, 12), (12, 2), (20, 3)] {
            for time in 0..rows {
                index.add(series, time);
            }
        }
        assert_eq!(index.series_count(), 5);
        let end = u64::from(u32::MAX) + 1;
        assert_eq!(index.ranges_of(5), vec![(0, 9), (9, 12), (12, end)]);
        assert_eq!(index.ranges_of(100), vec![(0, end)]);
        assert_eq!(
            index.ranges_of(1),
            vec![(0, 5), (5, 9), (9, 12), (12, 20), (20, end)]
        );
    }
}
