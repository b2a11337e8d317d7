//! Paged reads of one series' history, for OPC UA HistoryRead (Part 11 §6.4.3: raw values with
//! bounds, `numValuesPerNode` and continuation points), the web console and the control socket.
//!
//! A page is one range scan of the series' `(series, time)` keys in `history`, merged with its
//! rows still staged in `recent` (see `fold`). Its resume key is the time of the last row
//! returned: the next page starts strictly after it (before it, in reverse). Rows are unique per
//! time, and a fold keeps a row's time, so paging never skips or repeats a row, whatever was
//! appended or folded between the pages.

use std::path::Path;

use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};

use super::codec;
use super::error::{RedbResultExt, StorageError};
use super::samples::corrupt_row;
use super::schema::{HISTORY, RECENT, SERIES};
use super::series::SeriesIndex;
use super::Store;
use crate::model::{SampleOrigin, Timestamp, Value};

/// Most rows one page may ask for. Callers cap their own pages (OPC UA message size); this
/// only keeps a mistaken limit from building a huge vector.
pub const MAX_HISTORY_PAGE: usize = 100_000;

/// A range read of one series: rows with `start <= time < end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryQuery {
    pub device_id: String,
    pub metric: String,
    /// Inclusive.
    pub start: Timestamp,
    /// Exclusive. `start == end` is an empty range; `start > end` is an error (OPC UA callers
    /// asking for reverse order pass the bounds in order and set `reverse`).
    pub end: Timestamp,
    /// Rows per page, 1..=[`MAX_HISTORY_PAGE`].
    pub limit: usize,
    /// Newest first.
    pub reverse: bool,
    /// Continue after the last row of a previous page of this same query.
    pub resume: Option<ResumeKey>,
}

/// Where the next page of a query starts. Opaque to callers; serializable so it can travel as a
/// continuation point or in a web request (a forged key can only select rows of the queried
/// series).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeKey {
    series: u32,
    /// Time of the last row returned.
    last: i64,
    reverse: bool,
}

impl ResumeKey {
    /// Time of the last row of the page that produced this key.
    pub fn last_time(&self) -> Timestamp {
        Timestamp(self.last)
    }
}

/// One stored value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    pub time: Timestamp,
    pub value: Value,
    pub origin: SampleOrigin,
}

/// Rows of one page, and where to resume when more remain in the range.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HistoryPage {
    pub rows: Vec<HistoryRow>,
    pub resume: Option<ResumeKey>,
}

impl Store {
    /// Rows of one series in `[start, end)`, at most `limit`, oldest first or newest first,
    /// plus a resume key when more rows remain. An unknown series is
    /// [`StorageError::UnknownSeries`].
    pub fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StorageError> {
        self.read(|db| self.view(db).history(query))
    }

    /// The reads of this store's open database, series found in its in-memory index.
    pub(super) fn view<'a>(&'a self, db: &'a Database) -> ReadView<'a> {
        ReadView {
            path: &self.path,
            db,
            series: SeriesLookup::Index(&self.series),
            staged: self.staged_index(),
        }
    }
}

/// The read-only queries over one open database: the storage actor's own (series from its
/// in-memory index) and those of a [`super::Reader`] on other tasks (series from the table, in
/// the read transaction's snapshot). Every range read of history goes through here.
pub(super) struct ReadView<'a> {
    pub(super) path: &'a Path,
    pub(super) db: &'a Database,
    pub(super) series: SeriesLookup<'a>,
    /// The staged rows by series, when known (see `staged`).
    pub(super) staged: Option<&'a std::sync::RwLock<super::staged::StagedIndex>>,
}

pub(super) enum SeriesLookup<'a> {
    Index(&'a SeriesIndex),
    Table,
}

impl ReadView<'_> {
    /// The id of a series; `None` when it was never stored.
    pub(super) fn series_id(
        &self,
        device_id: &str,
        metric: &str,
    ) -> Result<Option<u32>, StorageError> {
        const ACTION: &str = "look up a series";
        match self.series {
            SeriesLookup::Index(index) => Ok(index.get(device_id, metric)),
            SeriesLookup::Table => {
                let path = self.path;
                let txn = self.db.begin_read().at(path, ACTION)?;
                let table = txn.open_table(SERIES).at(path, ACTION)?;
                let id = table.get((device_id, metric)).at(path, ACTION)?;
                Ok(id.map(|id| id.value()))
            }
        }
    }

    /// See [`Store::history`].
    pub(super) fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StorageError> {
        let path = self.path;
        if query.limit == 0 || query.limit > MAX_HISTORY_PAGE {
            return Err(StorageError::invalid(
                path,
                format!(
                    "history limit {} is outside 1..={MAX_HISTORY_PAGE}",
                    query.limit
                ),
            ));
        }
        if query.start > query.end {
            return Err(StorageError::invalid(
                path,
                format!(
                    "history range starts ({}) after it ends ({})",
                    query.start, query.end
                ),
            ));
        }
        let Some(series) = self.series_id(&query.device_id, &query.metric)? else {
            return Err(StorageError::UnknownSeries {
                path: path.to_path_buf(),
                device_id: query.device_id.clone(),
                metric: query.metric.clone(),
            });
        };
        let (mut low, mut high) = (query.start.as_micros(), query.end.as_micros());
        if let Some(resume) = &query.resume {
            if resume.series != series || resume.reverse != query.reverse {
                return Err(StorageError::invalid(
                    path,
                    "the resume key belongs to another history query",
                ));
            }
            if query.reverse {
                high = high.min(resume.last);
            } else {
                // A row at i64::MAX can never be returned ([start, end) excludes it), so the
                // saturation cannot skip one.
                low = low.max(resume.last.saturating_add(1));
            }
        }
        if low >= high {
            return Ok(HistoryPage::default());
        }
        self.scan_series(
            "read history",
            series,
            low,
            high,
            query.reverse,
            |rows_iter| {
                let mut rows = Vec::with_capacity(query.limit.min(4096));
                for row in &mut *rows_iter {
                    rows.push(row?);
                    if rows.len() == query.limit {
                        break;
                    }
                }
                let more = rows.len() == query.limit && rows_iter.next().is_some();
                let resume = match rows.last() {
                    Some(last) if more => Some(ResumeKey {
                        series,
                        last: last.time.as_micros(),
                        reverse: query.reverse,
                    }),
                    _ => None,
                };
                Ok(HistoryPage { rows, resume })
            },
        )
    }

    /// Runs `body` over the rows of `series` with `low <= time < high`, both tables merged,
    /// oldest first (newest first with `reverse`), in one read transaction. Every range read
    /// of history goes through here, so the staging merge lives in one place.
    pub(super) fn scan_series<T>(
        &self,
        action: &'static str,
        series: u32,
        low: i64,
        high: i64,
        reverse: bool,
        body: impl FnOnce(
            &mut dyn Iterator<Item = Result<HistoryRow, StorageError>>,
        ) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let path = self.path;
        let txn = self.db.begin_read().at(path, action)?;
        let history = txn.open_table(HISTORY).at(path, action)?;
        let recent = txn.open_table(RECENT).at(path, action)?;
        let decode = |time: i64, bytes: &[u8]| {
            codec::decode_value(bytes)
                .map(|(value, origin)| HistoryRow {
                    time: Timestamp(time),
                    value,
                    origin,
                })
                .map_err(|e| corrupt_row(path, "history", format_args!("({series}, {time})"), e))
        };
        let folded = history
            .range((series, low)..(series, high))
            .at(path, action)?
            .map(|row| {
                let (key, value) = row.at(path, action)?;
                decode(key.value().1, value.value())
            });
        // This series' staged rows: by the staged index when it is of this snapshot's
        // generation, else by walking every series' staged rows in the range.
        let generation = super::staged::generation_in(&txn).at(path, action)?;
        let listed = self.staged.and_then(|index| {
            index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .times(generation, series, low, high)
        });
        let staged: Box<dyn DoubleEndedIterator<Item = Result<HistoryRow, StorageError>>> =
            match listed {
                Some(times) => Box::new(times.into_iter().filter_map(move |time| {
                    match recent.get((time, series)).at(path, action) {
                        Ok(Some(value)) => Some(decode(time, value.value())),
                        // Listed by a batch that did not commit.
                        Ok(None) => None,
                        Err(e) => Some(Err(e)),
                    }
                })),
                // Series ids start at 1, so (high, 0) excludes every row at `high`.
                None => Box::new(
                    recent
                        .range((low, 0)..(high, 0))
                        .at(path, action)?
                        .filter_map(move |row| match row.at(path, action) {
                            Ok((key, value)) => {
                                let (time, id) = key.value();
                                (id == series).then(|| decode(time, value.value()))
                            }
                            Err(e) => Some(Err(e)),
                        }),
                ),
            };
        if reverse {
            body(&mut MergeByTime::new(folded.rev(), staged.rev(), true))
        } else {
            body(&mut MergeByTime::new(folded, staged, false))
        }
    }
}

/// Merges the rows of `history` and of `recent` (each ordered by time) into one ordered stream.
/// A time present in both is the staged row: it is the later write of that key.
struct MergeByTime<F: Iterator, S: Iterator> {
    folded: std::iter::Peekable<F>,
    staged: std::iter::Peekable<S>,
    reverse: bool,
}

impl<F, S> MergeByTime<F, S>
where
    F: Iterator<Item = Result<HistoryRow, StorageError>>,
    S: Iterator<Item = Result<HistoryRow, StorageError>>,
{
    fn new(folded: F, staged: S, reverse: bool) -> Self {
        Self {
            folded: folded.peekable(),
            staged: staged.peekable(),
            reverse,
        }
    }
}

impl<F, S> Iterator for MergeByTime<F, S>
where
    F: Iterator<Item = Result<HistoryRow, StorageError>>,
    S: Iterator<Item = Result<HistoryRow, StorageError>>,
{
    type Item = Result<HistoryRow, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.folded.peek(), self.staged.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => std::cmp::Ordering::Less,
            (None, Some(_)) | (_, Some(Err(_))) => std::cmp::Ordering::Greater,
            (Some(Ok(f)), Some(Ok(s))) => {
                let order = f.time.cmp(&s.time);
                if self.reverse {
                    order.reverse()
                } else {
                    order
                }
            }
        };
        match order {
            std::cmp::Ordering::Less => self.folded.next(),
            std::cmp::Ordering::Greater => self.staged.next(),
            std::cmp::Ordering::Equal => {
                self.folded.next();
                self.staged.next()
            }
        }
    }
}
