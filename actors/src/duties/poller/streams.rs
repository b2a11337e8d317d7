//! Per-device event streams, spread over a pool of HTTP/2 connections opened as devices need
//! them (`streams_per_connection` each, at most `max_stream_connections`: ceilings, whose
//! defaults stream 10,000 devices on 100 connections).
//!
//! Each stream is a task: open `StreamDeviceEvents`, parse every item before it leaves the
//! task, and hand typed events to the poller actor. A failed stream retries with its own
//! backoff; while the poller says ChirpStack is down the streams wait instead of each
//! hammering a dead server, and when it comes back they are told to reconnect at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use opcgw::backoff::Backoff;
use opcgw::chirpstack::client::{ChirpstackClient, UpstreamError};
use opcgw::chirpstack::events::parse_log_item;
use opcgw::model::Timestamp;
use ractor::ActorRef;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

use crate::tree::messages::PollerMsg;
use crate::tree::task::OwnedTask;

/// Reconnects of a failed stream: 500 ms doubling to 60 s, up to a fifth shorter at random.
const RETRY: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(60)).with_jitter(0.2);

/// Whether streams may connect, and a counter bumped to make waiting streams retry now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gate {
    open: bool,
    epoch: u64,
}

struct StreamSlot {
    connection: usize,
    _task: OwnedTask,
}

/// Parsed events of all streams waiting for the poller at once. A stream that would exceed it
/// waits (its next events stay in its small HTTP/2 window, see `STREAM_WINDOW_BYTES`): when
/// 10,000 streams open, ChirpStack replays up to 10 events each, and without a bound ~100,000
/// parsed events queued in the poller's mailbox (~60 MB, fragmenting the heap for good).
pub const MAX_EVENTS_IN_FLIGHT: usize = 512;

/// The streams the poller wants, and the connections that carry them.
pub struct StreamPool {
    base: ChirpstackClient,
    in_flight: Arc<Semaphore>,
    /// Shared by their streams (a stream task holds a reference, not a copy of the settings).
    connections: Vec<Arc<ChirpstackClient>>,
    per_connection: usize,
    max_connections: usize,
    slots: HashMap<String, StreamSlot>,
    open: HashSet<String>,
    failing: HashSet<String>,
    gate: watch::Sender<Gate>,
    /// Devices that could not get a stream (pool full): polled only.
    unserved: HashSet<String>,
    /// Streams per connection, by connection index.
    load: Vec<usize>,
    /// The last (streamed, polled only) logged.
    planned: (usize, usize),
}

impl StreamPool {
    pub fn new(base: ChirpstackClient, per_connection: usize, max_connections: usize) -> Self {
        let (gate, _) = watch::channel(Gate {
            open: true,
            epoch: 0,
        });
        Self {
            base,
            in_flight: Arc::new(Semaphore::new(MAX_EVENTS_IN_FLIGHT)),
            connections: Vec::new(),
            per_connection: per_connection.max(1),
            max_connections: max_connections.max(1),
            slots: HashMap::new(),
            open: HashSet::new(),
            failing: HashSet::new(),
            gate,
            unserved: HashSet::new(),
            load: Vec::new(),
            planned: (0, 0),
        }
    }

    /// Devices the pool can stream at most: `streams_per_connection x max_stream_connections`.
    pub fn capacity(&self) -> usize {
        self.per_connection.saturating_mul(self.max_connections)
    }

    /// Starts the streams of `wanted` devices that have none and stops the others.
    pub fn sync(&mut self, wanted: &[String], poller: &ActorRef<PollerMsg>) {
        let wanted_set: HashSet<&String> = wanted.iter().collect();
        let load = &mut self.load;
        self.slots.retain(|dev, slot| {
            let keep = wanted_set.contains(dev);
            if !keep {
                load[slot.connection] -= 1;
            }
            keep
        });
        self.open.retain(|dev| wanted_set.contains(dev));
        self.failing.retain(|dev| wanted_set.contains(dev));
        self.unserved.clear();
        for dev_eui in wanted {
            if self.slots.contains_key(dev_eui) {
                continue;
            }
            let Some(connection) = self.free_connection() else {
                self.unserved.insert(dev_eui.clone());
                continue;
            };
            self.load[connection] += 1;
            let client = Arc::clone(&self.connections[connection]);
            let task = OwnedTask::spawn(run_stream(
                client,
                dev_eui.clone(),
                poller.clone(),
                self.gate.subscribe(),
                self.in_flight.clone(),
            ));
            self.slots.insert(
                dev_eui.clone(),
                StreamSlot {
                    connection,
                    _task: task,
                },
            );
        }
        self.report_plan();
    }

    /// Says how many devices are streamed and how many only polled, when that changed.
    fn report_plan(&mut self) {
        let plan = (self.slots.len(), self.unserved.len());
        if plan == self.planned {
            return;
        }
        self.planned = plan;
        let (streamed, polled_only) = plan;
        info!(
            event = "event_streams_planned",
            devices = streamed + polled_only,
            streamed,
            polled_only,
            connections = self.connections.len(),
            capacity = self.capacity()
        );
        if polled_only > 0 {
            warn!(
                event = "event_stream_capacity_reached",
                polled_only,
                capacity = self.capacity(),
                "devices beyond the stream pool get no event stream: their values come from \
                 GetMetrics aggregates, at best one per minute bucket and only when it is newer \
                 (raise chirpstack.max_stream_connections or streams_per_connection)"
            );
        }
    }

    /// A connection with room for one more stream (opened when all are full, up to the
    /// ceiling): connections follow the number of devices.
    fn free_connection(&mut self) -> Option<usize> {
        if let Some(index) = self.load.iter().position(|n| *n < self.per_connection) {
            return Some(index);
        }
        if self.connections.len() >= self.max_connections {
            return None;
        }
        // Never the base client's connection: unary calls want the default window.
        self.connections
            .push(Arc::new(self.base.new_stream_connection().ok()?));
        self.load.push(0);
        Some(self.connections.len() - 1)
    }

    /// Lets streams connect (ChirpStack is up) or makes them wait (it is down).
    pub fn set_open(&self, open: bool) {
        self.gate.send_if_modified(|gate| {
            let changed = gate.open != open;
            gate.open = open;
            changed
        });
    }

    /// Makes every waiting stream retry now.
    pub fn reconnect_now(&self) {
        self.gate.send_modify(|gate| gate.epoch += 1);
    }

    pub fn mark(&mut self, dev_eui: &str, open: bool, failed: bool) {
        if !self.slots.contains_key(dev_eui) {
            return;
        }
        if open {
            self.open.insert(dev_eui.to_string());
            self.failing.remove(dev_eui);
        } else {
            self.open.remove(dev_eui);
            if failed {
                self.failing.insert(dev_eui.to_string());
            }
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Devices given a stream (open or not).
    pub fn wanted_count(&self) -> usize {
        self.slots.len()
    }

    /// Devices without a stream because the pool is full.
    pub fn polled_only_count(&self) -> usize {
        self.unserved.len()
    }

    pub fn failing_count(&self) -> usize {
        self.failing.len()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }
}

async fn run_stream(
    client: Arc<ChirpstackClient>,
    dev_eui: String,
    poller: ActorRef<PollerMsg>,
    mut gate: watch::Receiver<Gate>,
    in_flight: Arc<Semaphore>,
) {
    let mut attempt: u32 = 0;
    loop {
        // Wait while ChirpStack is known to be down; the poller opens the gate on recovery.
        while !gate.borrow().open {
            if gate.changed().await.is_err() {
                return;
            }
        }
        let epoch = gate.borrow().epoch;
        // Boxed: the call's future is large and only lives while the stream opens; unboxed
        // it sized every one of the (up to 10,000) stream tasks for good.
        let error = match Box::pin(client.stream_device_events(&dev_eui)).await {
            Ok(mut stream) => {
                attempt = 0;
                if poller
                    .cast(PollerMsg::StreamState {
                        dev_eui: dev_eui.clone(),
                        open: true,
                        error: None,
                    })
                    .is_err()
                {
                    return;
                }
                loop {
                    tokio::select! {
                        item = stream.message() => match item {
                            Ok(Some(item)) => {
                                let received = Timestamp::now();
                                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                                    return;
                                };
                                let message = match parse_log_item(&dev_eui, &item) {
                                    Ok(event) => PollerMsg::DeviceEvent {
                                        dev_eui: dev_eui.clone(),
                                        event,
                                        received,
                                        in_flight: Some(permit),
                                    },
                                    Err(error) => PollerMsg::BadEvent { dev_eui: dev_eui.clone(), error },
                                };
                                if poller.cast(message).is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break UpstreamError::Unavailable("the server ended the event stream".into()),
                            Err(status) => break UpstreamError::from_status(&status),
                        },
                        changed = gate.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            if !gate.borrow().open {
                                break UpstreamError::Unavailable("ChirpStack is down".into());
                            }
                        }
                    }
                }
            }
            Err(error) => error,
        };
        let failed = PollerMsg::StreamState {
            dev_eui: dev_eui.clone(),
            open: false,
            error: Some(error),
        };
        if poller.cast(failed).is_err() {
            return;
        }
        let wait = RETRY.random_delay(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            woke = wait_for_epoch_change(&mut gate, epoch) => if !woke { return },
        }
    }
}

/// Resolves true when the gate's epoch moves past `epoch`, false when the gate is gone.
async fn wait_for_epoch_change(gate: &mut watch::Receiver<Gate>, epoch: u64) -> bool {
    loop {
        if gate.borrow().epoch != epoch {
            return true;
        }
        if gate.changed().await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns.
    fn future_size<A, B, C, D, E, F: std::future::Future>(
        _: impl FnOnce(A, B, C, D, E) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each of up to 10,000 stream tasks holds this future for its life: a large future
    /// awaited inline sizes every task (the stream call's, unboxed: 1,208 bytes in a test build).
    #[test]
    fn a_stream_task_stays_small() {
        let size = future_size(run_stream);
        assert!(
            size <= 800,
            "a stream task's future is {size} bytes (776 on 2026-12-01)"
        );
    }
}
