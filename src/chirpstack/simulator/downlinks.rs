//! The downlink queue: `Enqueue`, `GetQueue`, `FlushQueue`, and what a transmission produces.
//!
//! ChirpStack semantics (`chirpstack/src/storage/device_queue.rs`, `uplink/data.rs`): an item
//! waits in the queue until transmitted; a transmitted unconfirmed item leaves the queue, a
//! confirmed one stays with `is_pending = true` until the device acknowledges it (`ack` event,
//! item deleted) or the acknowledgement times out (`ack` with `acknowledged = false`). An item
//! whose `expires_at` passes before transmission is dropped with a `log` event `EXPIRED`; one
//! larger than the data rate allows is dropped with `DOWNLINK_PAYLOAD_SIZE`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chirpstack_api::api::DeviceQueueItem;
use tonic::Status;

use super::state::SimState;
use super::{AckBehaviour, RecordedDownlink};
use crate::chirpstack::events::{AckEventJson, LogEventJson, TxAckEventJson};
use crate::model::Timestamp;

/// Largest FRMPayload at the simulated data rate (EU868 DR5).
const MAX_DOWNLINK_PAYLOAD: usize = 242;
/// Larger enqueue requests are refused outright, before anything is stored.
const MAX_ENQUEUE_BYTES: usize = 1_024;
/// Queued items per device.
const MAX_QUEUE_ITEMS: usize = 1_000;
/// The gateway that "transmits" every downlink.
const GATEWAY_ID: &str = "0016c001f1500001";

#[derive(Debug, Clone)]
pub(crate) struct QueuedDownlink {
    id: String,
    confirmed: bool,
    f_port: u32,
    data: Vec<u8>,
    is_pending: bool,
    f_cnt_down: Option<u32>,
    expires_at: Option<Timestamp>,
}

impl SimState {
    /// Validates and queues one downlink, records it, and schedules its fate; returns its id.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        item: DeviceQueueItem,
        flush_queue: bool,
    ) -> Result<String, Status> {
        let index = self.lookup(&item.dev_eui)?;
        if !(1..=223).contains(&item.f_port) {
            return Err(Status::invalid_argument("f_port must be between 1 and 223"));
        }
        if item.data.len() > MAX_ENQUEUE_BYTES {
            return Err(Status::invalid_argument(format!(
                "data of {} bytes exceeds {MAX_ENQUEUE_BYTES}",
                item.data.len()
            )));
        }
        if item.object.is_some() {
            return Err(Status::invalid_argument(
                "object needs a device-profile codec; the simulated devices have none, send data",
            ));
        }
        let expires_at = match item.expires_at.as_ref() {
            Some(ts) => Some(
                Timestamp::from_prost(ts)
                    .ok_or_else(|| Status::invalid_argument("invalid expires_at"))?,
            ),
            None => None,
        };
        let id = self.new_uuid();
        let queued = QueuedDownlink {
            id: id.clone(),
            confirmed: item.confirmed,
            f_port: item.f_port,
            data: item.data.clone(),
            is_pending: false,
            f_cnt_down: None,
            expires_at,
        };
        self.with_device(index, |device| {
            if flush_queue {
                device.queue.clear();
            }
            if device.queue.len() >= MAX_QUEUE_ITEMS {
                return Err(Status::resource_exhausted(format!(
                    "the queue holds {MAX_QUEUE_ITEMS} items"
                )));
            }
            device.queue.push(queued);
            Ok(())
        })?;
        self.record_downlink(RecordedDownlink {
            queue_item_id: id.clone(),
            dev_eui: self.world.device_at(index).dev_eui.clone(),
            f_port: item.f_port,
            confirmed: item.confirmed,
            data: item.data,
            at: Timestamp::now(),
        });
        tokio::spawn(Arc::clone(self).deliver(index, id.clone(), self.ack_behaviour(), expires_at));
        Ok(id)
    }

    /// The device's queue as `GetQueue` reports it.
    pub(crate) fn queue_items(&self, index: usize) -> Vec<DeviceQueueItem> {
        let dev_eui = &self.world.device_at(index).dev_eui;
        self.with_device(index, |device| {
            device
                .queue
                .iter()
                .map(|q| DeviceQueueItem {
                    id: q.id.clone(),
                    dev_eui: dev_eui.clone(),
                    confirmed: q.confirmed,
                    f_port: q.f_port,
                    data: q.data.clone(),
                    object: None,
                    is_pending: q.is_pending,
                    f_cnt_down: q.f_cnt_down.unwrap_or(0),
                    is_encrypted: false,
                    expires_at: q.expires_at.map(Timestamp::to_prost),
                })
                .collect()
        })
    }

    pub(crate) fn flush_queue(&self, index: usize) {
        self.with_device(index, |device| device.queue.clear());
    }

    /// The fate of one queued item under the behaviour that was set when it was enqueued.
    async fn deliver(
        self: Arc<Self>,
        index: usize,
        id: String,
        behaviour: AckBehaviour,
        expires_at: Option<Timestamp>,
    ) {
        let delay = self.config.downlink_ack_delay;
        if behaviour == AckBehaviour::Silent {
            // Never transmitted (no gateway in range): it waits until it expires, if ever.
            let Some(expires_at) = expires_at else { return };
            let wait = Duration::from_micros(
                expires_at
                    .as_micros()
                    .saturating_sub(Timestamp::now().as_micros())
                    .max(0) as u64,
            );
            tokio::time::sleep(wait).await;
            if self.remove(index, &id).is_some() {
                self.log_event(
                    index,
                    &id,
                    "EXPIRED",
                    "Device queue-item discarded because it has expired",
                );
            }
            return;
        }
        tokio::time::sleep(delay).await;
        let Some(f_cnt_down) = self.transmit(index, &id) else {
            return;
        };
        tokio::time::sleep(delay).await;
        if self.remove(index, &id).is_some() {
            let body = AckEventJson {
                deduplication_id: self.new_uuid(),
                time: Some(Timestamp::now().to_rfc3339()),
                device_info: self.device_info(index),
                queue_item_id: id,
                acknowledged: behaviour == AckBehaviour::Ack,
                f_cnt_down,
            };
            self.append_json(index, "ack", &body);
        }
    }

    /// Transmits item `id` if it is still queued: returns its frame counter when the item is
    /// confirmed and now awaits an acknowledgement.
    fn transmit(&self, index: usize, id: &str) -> Option<u32> {
        let now = Timestamp::now();
        enum Outcome {
            Gone,
            Expired,
            TooLarge,
            Sent { f_cnt_down: u32, confirmed: bool },
        }
        let outcome = self.with_device(index, |device| {
            let Some(pos) = device.queue.iter().position(|q| q.id == id) else {
                return Outcome::Gone;
            };
            let item = &device.queue[pos];
            if item.expires_at.is_some_and(|at| at <= now) {
                device.queue.remove(pos);
                return Outcome::Expired;
            }
            if item.data.len() > MAX_DOWNLINK_PAYLOAD {
                device.queue.remove(pos);
                return Outcome::TooLarge;
            }
            let f_cnt_down = device.f_cnt_down;
            device.f_cnt_down = device.f_cnt_down.wrapping_add(1);
            let confirmed = item.confirmed;
            if confirmed {
                let item = &mut device.queue[pos];
                item.is_pending = true;
                item.f_cnt_down = Some(f_cnt_down);
            } else {
                device.queue.remove(pos);
            }
            Outcome::Sent {
                f_cnt_down,
                confirmed,
            }
        });
        match outcome {
            Outcome::Gone => None,
            Outcome::Expired => {
                self.log_event(
                    index,
                    id,
                    "EXPIRED",
                    "Device queue-item discarded because it has expired",
                );
                None
            }
            Outcome::TooLarge => {
                self.log_event(
                    index,
                    id,
                    "DOWNLINK_PAYLOAD_SIZE",
                    "Device queue-item discarded because it exceeds the max. payload size",
                );
                None
            }
            Outcome::Sent {
                f_cnt_down,
                confirmed,
            } => {
                let body = TxAckEventJson {
                    downlink_id: self.random_u32(),
                    time: Some(now.to_rfc3339()),
                    device_info: self.device_info(index),
                    queue_item_id: id.to_string(),
                    f_cnt_down,
                    gateway_id: GATEWAY_ID.to_string(),
                };
                self.append_json(index, "txack", &body);
                confirmed.then_some(f_cnt_down)
            }
        }
    }

    fn remove(&self, index: usize, id: &str) -> Option<QueuedDownlink> {
        self.with_device(index, |device| {
            let pos = device.queue.iter().position(|q| q.id == id)?;
            Some(device.queue.remove(pos))
        })
    }

    fn log_event(&self, index: usize, id: &str, code: &str, description: &str) {
        let body = LogEventJson {
            time: Some(Timestamp::now().to_rfc3339()),
            device_info: self.device_info(index),
            level: "ERROR".into(),
            code: code.into(),
            description: description.into(),
            context: BTreeMap::from([("queue_item_id".to_string(), id.to_string())]),
        };
        self.append_json(index, "log", &body);
    }

    fn append_json<T: serde::Serialize>(&self, index: usize, kind: &str, body: &T) {
        let body = serde_json::to_string(body).unwrap_or_default();
        self.append_event(index, kind, Timestamp::now(), body, HashMap::new());
    }
}
