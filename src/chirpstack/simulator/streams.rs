//! Live delivery of device events to open `StreamDeviceEvents` calls.
//!
//! Each open stream is one task that reads its device's event log by sequence number (replay
//! first, then whatever is appended) and feeds a bounded channel that tonic drains. A stream
//! that is not read only fills its own channel; it never slows the uplink schedule.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chirpstack_api::api::LogItem;
use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::state::SimState;

/// Items buffered per stream between the log reader and tonic.
pub(crate) const STREAM_BUFFER: usize = 32;
/// Log items read per lock of the device.
const READ_BATCH: usize = 64;
/// How long a closing stream waits to hand its final status to a client that is not reading.
const FINAL_STATUS_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) type EventSender = mpsc::Sender<Result<LogItem, Status>>;

pub(crate) struct StreamRegistry {
    open: AtomicUsize,
    /// Bumped to end every open stream (`drop_streams`, outage, shutdown).
    generation: watch::Sender<u64>,
}

impl StreamRegistry {
    pub(crate) fn new() -> Self {
        Self {
            open: AtomicUsize::new(0),
            generation: watch::channel(0).0,
        }
    }

    pub(crate) fn open_count(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Ends every open stream with `UNAVAILABLE`.
    pub(crate) fn end_all(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }
}

/// One open stream: counted for as long as it lives, and bound at open time to the events it
/// starts from and to the current stream generation (so a `drop_streams` right after the
/// open still ends it).
pub(crate) struct OpenStream {
    state: Arc<SimState>,
    index: usize,
    next: u64,
    ended: watch::Receiver<u64>,
    updates: watch::Receiver<u64>,
}

impl OpenStream {
    pub(crate) fn register(state: &Arc<SimState>, index: usize) -> Self {
        state.streams.open.fetch_add(1, Ordering::SeqCst);
        let history = state.config.event_history;
        Self {
            ended: state.streams.generation.subscribe(),
            updates: state.subscribe_events(index),
            next: state.with_device(index, |device| device.events.replay_start(history)),
            state: Arc::clone(state),
            index,
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.state.streams.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Feeds the stream's events into `tx` until the client goes away or streams are ended.
pub(crate) async fn forward_device_events(mut stream: OpenStream, tx: EventSender) {
    let state = Arc::clone(&stream.state);
    loop {
        stream.updates.borrow_and_update();
        let batch = state.with_device(stream.index, |device| {
            device.events.since(stream.next, READ_BATCH)
        });
        if batch.is_empty() {
            tokio::select! {
                changed = stream.updates.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = stream.ended.changed() => return end_with_unavailable(&tx).await,
                _ = tx.closed() => return,
            }
            continue;
        }
        for (seq, item) in batch {
            stream.next = seq + 1;
            tokio::select! {
                sent = tx.send(Ok(item)) => {
                    if sent.is_err() {
                        return;
                    }
                }
                _ = stream.ended.changed() => return end_with_unavailable(&tx).await,
            }
        }
    }
}

async fn end_with_unavailable(tx: &EventSender) {
    let status = Status::unavailable("event stream closed by the server");
    let _ = tokio::time::timeout(FINAL_STATUS_TIMEOUT, tx.send(Err(status))).await;
}
