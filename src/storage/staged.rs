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

use std::sync::{Arc, RwLock};

use hashbrown::HashMap;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{META, META_STAGED_GENERATION, RECENT};

#[derive(Debug, Default)]
pub(crate) struct StagedIndex {
    generation: u64,
    /// Per series, the times of its staged rows, ascending (foldhash, hashbrown's default:
    /// every appended row is added here).
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

    /// The next range `[first, end)` of series ids, from the first series with staged rows at
    /// or after `cursor` (wrapping to the lowest), holding at most `rows` staged rows (a
    /// series with more is a range of its own), and the rows listed in it; `None` when
    /// nothing is staged.
    pub(crate) fn range_from(&self, cursor: u32, rows: usize) -> Option<(u32, u64, usize)> {
        let mut ids: Vec<(u32, usize)> = (self.by_series.iter())
            .map(|(id, times)| (*id, times.len()))
            .collect();
        ids.sort_unstable();
        let start = match ids.partition_point(|(id, _)| *id < cursor) {
            at if at < ids.len() => at,
            _ => 0,
        };
        let (first, mut held) = *ids.get(start)?;
        for (id, count) in &ids[start + 1..] {
            if held + count > rows {
                return Some((first, u64::from(*id), held));
            }
            held += count;
        }
        Some((first, u64::from(u32::MAX) + 1, held))
    }

    /// After a fold that moved every staged row of the series in `[first, end)`: forgets them
    /// and takes the fold's `generation`.
    pub(crate) fn forget_range(&mut self, first: u32, end: u64, generation: u64) {
        self.by_series
            .retain(|id, _| !(first <= *id && u64::from(*id) < end));
        self.generation = generation;
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

/// Raises the staged generation in `txn` (which removes staged rows); returns the new one.
pub(crate) fn bump_generation(txn: &WriteTransaction) -> Result<u64, redb::Error> {
    let mut meta = txn.open_table(META)?;
    let next = meta.get(META_STAGED_GENERATION)?.map_or(0, |v| v.value()) + 1;
    meta.insert(META_STAGED_GENERATION, next)?;
    Ok(next)
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
    fn ranges_run_from_the_cursor_with_at_most_the_rows_asked_and_wrap() {
        let mut index = StagedIndex::default();
        assert_eq!(index.range_from(0, 10), None);
        // Series 3: 4 rows, 5: 1, 9: 12 (more than a range), 12: 2, 20: 3.
        for (series, rows) in [(3, 4), (5, 1), (9, 12), (12, 2), (20, 3)] {
            for time in 0..rows {
                index.add(series, time);
            }
        }
        assert_eq!(index.series_count(), 5);
        let end = u64::from(u32::MAX) + 1;
        assert_eq!(index.range_from(0, 5), Some((3, 9, 5)));
        assert_eq!(
            index.range_from(9, 5),
            Some((9, 12, 12)),
            "a series of its own"
        );
        assert_eq!(index.range_from(10, 5), Some((12, end, 5)));
        assert_eq!(
            index.range_from(21, 5),
            Some((3, 9, 5)),
            "past the last: wraps"
        );
        assert_eq!(index.range_from(4, 100), Some((5, end, 18)));
        index.forget_range(3, 9, 7);
        assert_eq!(index.series_count(), 3);
        assert_eq!(
            index.times(7, 3, 0, 100),
            Some(vec![]),
            "forgotten, new generation"
        );
        assert_eq!(index.times(7, 9, 0, 2), Some(vec![0, 1]));
        assert_eq!(index.range_from(0, 100), Some((9, end, 17)));
    }
}
