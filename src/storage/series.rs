//! The in-memory index of series ids: `(device_id, metric)` -> id, mirrored from the `series`
//! table.
//!
//! Every sample of an append needs its series id; looking each one up in redb would cost more
//! than storing the sample. The index is loaded at open and extended only after a commit that
//! created series succeeded, so it never names an id that is not on disk.

use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable};

use super::schema::SERIES;

/// Longest device id or metric name accepted, in bytes. Names are keys: cutting them would merge
/// series, so a sample with a longer name is rejected (and counted) instead.
pub const MAX_NAME_BYTES: usize = 256;

#[derive(Debug, Default)]
pub struct SeriesIndex {
    /// Nested so that a lookup by `(&str, &str)` allocates nothing.
    by_device: HashMap<String, HashMap<String, u32>>,
    len: usize,
}

impl SeriesIndex {
    pub fn load(txn: &ReadTransaction) -> Result<Self, redb::Error> {
        let table = txn.open_table(SERIES)?;
        let mut index = Self::default();
        for row in table.iter()? {
            let (key, id) = row?;
            let (device_id, metric) = key.value();
            index.insert(device_id, metric, id.value());
        }
        Ok(index)
    }

    pub fn get(&self, device_id: &str, metric: &str) -> Option<u32> {
        self.by_device.get(device_id)?.get(metric).copied()
    }

    pub fn insert(&mut self, device_id: &str, metric: &str, id: u32) {
        let metrics = self.by_device.entry(device_id.to_string()).or_default();
        if metrics.insert(metric.to_string(), id).is_none() {
            self.len += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// Whether a device id or metric name can be a series key.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_BYTES
}
