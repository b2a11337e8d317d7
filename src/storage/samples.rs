//! Writing samples (history and latest) and listing the latest value of every series.

use std::sync::Arc;

use hashbrown::HashMap;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table};

use super::codec::{self, DecodeError};
use super::error::{RedbResultExt, StorageError};
use super::schema::{self, FIRST_SERIES_ID, HISTORY, LATEST, RECENT, SERIES, SERIES_NAMES};
use super::series::{valid_name, MAX_NAME_BYTES};
use super::Store;
use crate::model::{Names, Sample};

/// What one [`Store::append`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppendReport {
    /// Samples stored in history (new rows plus duplicates that replaced a row).
    pub written: usize,
    /// Samples whose series and source time were already stored (in the database or earlier in
    /// the same batch): the row now holds the later sample.
    pub duplicates: usize,
    /// Series whose latest value changed.
    pub latest_updated: usize,
    /// Samples refused because the device id or metric name is empty or longer than
    /// [`MAX_NAME_BYTES`] (logged; the rest of the batch is stored).
    pub rejected: usize,
    /// String values cut to [`codec::MAX_STRING_BYTES`].
    pub truncated: usize,
}

/// Whether an append folds staged rows into `history` when a fold is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// As soon as one is due (see `storage::fold`).
    WhenDue,
    /// Only once `recent` holds `fold_max_staged_rows` (which bounds it and the staged index
    /// whatever the caller says); otherwise the next append that does not defer folds.
    Deferred,
}

impl Store {
    /// One durable write transaction for the whole batch (staged in `recent`; when that table
    /// reaches the fold trigger, the append then folds it into `history`, which can add ~100 ms
    /// to the call — the batch is durable before the fold starts).
    ///
    /// History is keyed by (series, source time): a sample whose series and time are already
    /// stored replaces that row (last write wins) and is counted as a duplicate; an
    /// out-of-order sample lands at its own time. `latest` only moves forward: it takes the
    /// newest sample of the batch for each series when that is at least as new as the stored
    /// one (equal times replace, to agree with history's last write wins).
    pub fn append(&mut self, samples: &[Sample]) -> Result<AppendReport, StorageError> {
        self.append_then(samples, Fold::WhenDue)
    }

    /// [`append`](Self::append), with the fold that may follow it as `fold` says: a caller
    /// with more batches waiting (a catch-up) defers it, so those batches are stored sooner.
    pub fn append_then(
        &mut self,
        samples: &[Sample],
        fold: Fold,
    ) -> Result<AppendReport, StorageError> {
        self.append_pieces(&[samples], fold)
    }

    /// [`append_then`](Self::append_then) of the pieces one after the other, in one
    /// transaction (a caller that gathered many small batches need not copy them into one).
    pub fn append_pieces(
        &mut self,
        pieces: &[&[Sample]],
        fold: Fold,
    ) -> Result<AppendReport, StorageError> {
        if pieces.iter().all(|piece| piece.is_empty()) {
            return Ok(AppendReport::default());
        }
        let (report, staged) = self.write(|store| store.append_batch(pieces))?;
        self.fold_if_due(staged, fold);
        Ok(report)
    }

    /// Commits the batch into `recent` and `latest`; returns the report and the staged row count.
    fn append_batch(&mut self, pieces: &[&[Sample]]) -> Result<(AppendReport, u64), StorageError> {
        const ACTION: &str = "commit a batch of samples";
        let path = self.path.clone();
        let mut report = AppendReport::default();
        let mut created: Vec<(&str, &str, u32)> = Vec::new();
        let staged;
        let mut new_rows: i64 = 0;
        // Listed in the staged index before the commit: a reader may see them the moment it
        // lands (a listed row that never lands is only not found).
        let count: usize = pieces.iter().map(|piece| piece.len()).sum();
        let mut staged_keys: Vec<(u32, i64)> = Vec::with_capacity(count);
        let txn = self.db()?.begin_write().at(&path, ACTION)?;
        {
            let mut series = txn.open_table(SERIES).at(&path, ACTION)?;
            let mut names = txn.open_table(SERIES_NAMES).at(&path, ACTION)?;
            let history = txn.open_table(HISTORY).at(&path, ACTION)?;
            let mut recent = txn.open_table(RECENT).at(&path, ACTION)?;
            let mut next_id: Option<u32> = None;
            let mut created_ids: HashMap<(&str, &str), u32> = HashMap::new();
            // Each valid sample's row key, then the batch in key order: `recent` is keyed by
            // (time, series), and a catch-up's batch (up to 50,000 samples from thousands of
            // streams, each at its own point of a ten-minute replay) inserted in arrival order
            // lands all over a tree larger than the page cache. The sort is stable, so of two
            // samples with one key the later one is still written last (and wins).
            let mut rows: Vec<((i64, u32), &Sample)> = Vec::with_capacity(count);
            for sample in pieces.iter().flat_map(|piece| piece.iter()) {
                let (device_id, metric) = (&*sample.device_id, &*sample.metric);
                if !valid_name(device_id) || !valid_name(metric) {
                    report.rejected += 1;
                    tracing::warn!(
                        event = "storage_sample_rejected",
                        device_id = %codec::truncate_to_char_boundary(device_id, MAX_NAME_BYTES),
                        metric = %codec::truncate_to_char_boundary(metric, MAX_NAME_BYTES),
                        "sample refused: empty device id or metric name, or longer than \
                         {MAX_NAME_BYTES} bytes"
                    );
                    continue;
                }
                let id = match self.series.get(device_id, metric) {
                    Some(id) => id,
                    None => match created_ids.get(&(device_id, metric)) {
                        Some(&id) => id,
                        None => {
                            let id = create_series(
                                &path,
                                &mut series,
                                &mut names,
                                &mut next_id,
                                device_id,
                                metric,
                            )?;
                            created_ids.insert((device_id, metric), id);
                            created.push((device_id, metric, id));
                            id
                        }
                    },
                };
                rows.push(((sample.source_time.as_micros(), id), sample));
            }
            rows.sort_by_key(|(key, _)| *key);
            // Older than every row so far: retention must look again.
            if let Some(&((oldest, _), _)) = rows.first() {
                let floor = schema::history_floor(&txn).at(&path, ACTION)?;
                if floor.is_some_and(|floor| oldest < floor) {
                    schema::set_history_floor(&txn, oldest).at(&path, ACTION)?;
                }
            }

            // Newest sample of the batch per series.
            let mut newest: HashMap<u32, &Sample> = HashMap::new();
            let mut buffer = Vec::with_capacity(16);
            for &((time, id), sample) in &rows {
                buffer.clear();
                if codec::encode_value(&sample.value, sample.origin, &mut buffer) {
                    report.truncated += 1;
                }
                let replaced_staged = recent
                    .insert((time, id), buffer.as_slice())
                    .at(&path, ACTION)?
                    .is_some();
                staged_keys.push((id, time));
                // The history lookup keeps `duplicates` and the row count exact; a sample newer
                // than everything folded for its series cannot be there.
                if replaced_staged
                    || (self.series.may_be_folded(id, time)
                        && history.get((id, time)).at(&path, ACTION)?.is_some())
                {
                    report.duplicates += 1;
                } else {
                    new_rows += 1;
                }
                report.written += 1;
                // In key order, a series' later row is its newer sample (or, at one time, the
                // later write).
                newest.insert(id, sample);
            }

            // `latest` in id order too (one pass over its leaves).
            let mut newest: Vec<(u32, &Sample)> = newest.into_iter().collect();
            newest.sort_unstable_by_key(|(id, _)| *id);
            let mut latest = txn.open_table(LATEST).at(&path, ACTION)?;
            for (id, sample) in newest {
                let stored = match latest.get(id).at(&path, ACTION)? {
                    Some(row) => Some(
                        codec::latest_source_time(row.value())
                            .map_err(|e| corrupt_row(&path, "latest", id, e))?,
                    ),
                    None => None,
                };
                if stored.is_some_and(|stored| sample.source_time < stored) {
                    continue; // never move back in time
                }
                buffer.clear();
                codec::encode_latest(
                    sample.source_time,
                    sample.received_time,
                    &sample.value,
                    sample.origin,
                    &mut buffer,
                );
                latest.insert(id, buffer.as_slice()).at(&path, ACTION)?;
                report.latest_updated += 1;
            }
            staged = recent.len().at(&path, ACTION)?;
        }
        schema::add_history_rows(&txn, new_rows).at(&path, ACTION)?;
        if let Some(index) = self.staged_index() {
            let mut index = index.write().unwrap_or_else(|e| e.into_inner());
            for (id, time) in staged_keys {
                index.add(id, time);
            }
        }
        txn.commit().at(&path, ACTION)?;
        // Only now are the new ids on disk.
        for (device_id, metric, id) in created {
            self.series.insert(device_id, metric, id);
        }
        if report.truncated > 0 {
            tracing::warn!(
                event = "storage_string_truncated",
                count = report.truncated,
                "string values longer than {} bytes were cut",
                codec::MAX_STRING_BYTES
            );
        }
        Ok((report, staged))
    }

    /// The newest sample of every series, or of one device's series, ordered by device id and
    /// metric name.
    pub fn latest(&self, device_id: Option<&str>) -> Result<Vec<Sample>, StorageError> {
        const ACTION: &str = "read the latest values";
        self.read(|db| {
            let path = &self.path;
            let txn = db.begin_read().at(path, ACTION)?;
            let series = txn.open_table(SERIES).at(path, ACTION)?;
            let latest = txn.open_table(LATEST).at(path, ACTION)?;
            let rows = match device_id {
                Some(device_id) => series.range((device_id, "")..).at(path, ACTION)?,
                None => series.iter().at(path, ACTION)?,
            };
            let mut values = Vec::new();
            // Rows come device by device: one shared id per device, one per metric name.
            let mut device: Option<Arc<str>> = None;
            let mut names = Names::default();
            for row in rows {
                let (key, id) = row.at(path, ACTION)?;
                let (row_device, metric) = key.value();
                if device_id.is_some_and(|wanted| wanted != row_device) {
                    break; // past the device's contiguous range
                }
                let id = id.value();
                let Some(stored) = latest.get(id).at(path, ACTION)? else {
                    continue;
                };
                let row = codec::decode_latest(stored.value())
                    .map_err(|e| corrupt_row(path, "latest", id, e))?;
                let device = match &device {
                    Some(known) if **known == *row_device => Arc::clone(known),
                    _ => Arc::clone(device.insert(row_device.into())),
                };
                values.push(Sample {
                    device_id: device,
                    metric: names.get(metric),
                    value: row.value,
                    source_time: row.source_time,
                    received_time: row.received_time,
                    origin: row.origin,
                });
            }
            Ok(values)
        })
    }
}

/// Allocates the next series id (ids are never reused: series are never deleted).
fn create_series(
    path: &std::path::Path,
    series: &mut Table<(&str, &str), u32>,
    names: &mut Table<u32, (&str, &str)>,
    next_id: &mut Option<u32>,
    device_id: &str,
    metric: &str,
) -> Result<u32, StorageError> {
    const ACTION: &str = "create a series";
    // The index is complete, but a miss costs one lookup: check before allocating.
    if let Some(id) = series.get((device_id, metric)).at(path, ACTION)? {
        return Ok(id.value());
    }
    let id = match *next_id {
        Some(id) => id,
        None => match names.last().at(path, ACTION)? {
            Some((last, _)) => last.value().checked_add(1).ok_or_else(|| {
                StorageError::invalid(path, "the database holds the maximum number of series")
            })?,
            None => FIRST_SERIES_ID,
        },
    };
    series.insert((device_id, metric), id).at(path, ACTION)?;
    names.insert(id, (device_id, metric)).at(path, ACTION)?;
    // At u32::MAX this is None: the next creation reads names.last() again and reports it.
    *next_id = id.checked_add(1);
    Ok(id)
}

pub(super) fn corrupt_row(
    path: &std::path::Path,
    table: &str,
    key: impl std::fmt::Display,
    error: DecodeError,
) -> StorageError {
    StorageError::corrupt(path, format!("row {key} of table {table}: {error}"))
}
