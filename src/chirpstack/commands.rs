//! Dispatching downlink commands to ChirpStack: the poller's book of the commands it enqueued,
//! and how device events and ChirpStack's queue move them through their lifecycle (see
//! `crate::commands` for the lifecycle and the types).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::client::{QueueItem, UpstreamError};
use super::events::DeviceEvent;
use crate::commands::{CommandRequest, CommandState, CommandUpdate};
use crate::model::Timestamp;

/// Transient `Enqueue` failures (ChirpStack unreachable) tolerated before a command fails.
pub const MAX_ENQUEUE_ATTEMPTS: u32 = 5;
/// Finished commands kept for late events and status queries.
const MAX_FINISHED_KEPT: usize = 10_000;

#[derive(Debug, Clone)]
struct Tracked {
    request: CommandRequest,
    state: CommandState,
    queue_item_id: Option<String>,
    transmitted: bool,
    sent_at: Option<Timestamp>,
    attempts: u32,
    /// Waiting for a dispatch (first one, or a retry after a transient failure).
    dispatch_due: bool,
    /// An `Enqueue` call is running for it: never start a second one.
    in_flight: bool,
}

impl Tracked {
    /// Sent and still waiting for its acknowledgement (confirmed) or transmission (unconfirmed).
    fn awaits_final_event(&self) -> bool {
        self.state == CommandState::Sent && (self.request.downlink.confirmed || !self.transmitted)
    }

    fn overdue(&self, now: Timestamp, timeout: Duration) -> bool {
        self.awaits_final_event()
            && self
                .sent_at
                .is_some_and(|s| s.saturating_add(timeout) <= now)
    }
}

/// The commands the poller is responsible for, by the gateway's id and by ChirpStack's queue
/// item id.
#[derive(Debug, Default)]
pub struct CommandBook {
    by_id: HashMap<u64, Tracked>,
    by_queue_item: HashMap<String, u64>,
    finished: VecDeque<u64>,
}

impl CommandBook {
    fn update(tracked: &Tracked, detail: Option<String>, at: Timestamp) -> CommandUpdate {
        CommandUpdate {
            id: tracked.request.id,
            device_id: tracked.request.downlink.device_id.clone(),
            command_name: tracked.request.downlink.command_name.clone(),
            state: tracked.state,
            queue_item_id: tracked.queue_item_id.clone(),
            transmitted: tracked.transmitted,
            detail,
            at,
        }
    }

    /// Accepts a command for dispatch (a repeated id is ignored: dispatch is idempotent).
    pub fn accept(&mut self, request: CommandRequest, now: Timestamp) -> Option<CommandUpdate> {
        if self.by_id.contains_key(&request.id) {
            return None;
        }
        let tracked = Tracked {
            request,
            state: CommandState::Queued,
            queue_item_id: None,
            transmitted: false,
            sent_at: None,
            attempts: 0,
            dispatch_due: true,
            in_flight: false,
        };
        let update = Self::update(&tracked, None, now);
        self.by_id.insert(tracked.request.id, tracked);
        Some(update)
    }

    /// Takes over a command that was already sent (before a restart): it is tracked for its
    /// acknowledgement, never enqueued again (that would send the downlink twice).
    pub fn resume(
        &mut self,
        request: CommandRequest,
        queue_item_id: String,
        transmitted: bool,
        sent_at: Timestamp,
    ) {
        if self.by_id.contains_key(&request.id) {
            return;
        }
        let id = request.id;
        self.by_queue_item.insert(queue_item_id.clone(), id);
        self.by_id.insert(
            id,
            Tracked {
                request,
                state: CommandState::Sent,
                queue_item_id: Some(queue_item_id),
                transmitted,
                sent_at: Some(sent_at),
                attempts: 1,
                dispatch_due: false,
                in_flight: false,
            },
        );
    }

    /// Commands to enqueue now; each is marked in flight until [`Self::enqueued`].
    pub fn take_due(&mut self) -> Vec<CommandRequest> {
        self.by_id
            .values_mut()
            .filter(|t| t.dispatch_due && !t.in_flight && t.state == CommandState::Queued)
            .map(|t| {
                t.dispatch_due = false;
                t.in_flight = true;
                t.attempts += 1;
                t.request.clone()
            })
            .collect()
    }

    /// The outcome of an `Enqueue` call.
    pub fn enqueued(
        &mut self,
        id: u64,
        result: Result<String, UpstreamError>,
        now: Timestamp,
    ) -> Option<CommandUpdate> {
        let tracked = self.by_id.get_mut(&id)?;
        tracked.in_flight = false;
        if tracked.state != CommandState::Queued {
            return None;
        }
        let detail = match result {
            Ok(queue_item_id) => {
                tracked.state = CommandState::Sent;
                tracked.sent_at = Some(now);
                self.by_queue_item.insert(queue_item_id.clone(), id);
                tracked.queue_item_id = Some(queue_item_id);
                None
            }
            Err(error)
                if (error.is_connectivity() || error == UpstreamError::Unauthenticated)
                    && tracked.attempts < MAX_ENQUEUE_ATTEMPTS =>
            {
                // Stays queued; retried on the next successful poll.
                tracked.dispatch_due = false;
                return Some(Self::update(
                    tracked,
                    Some(format!("enqueue will be retried: {error}")),
                    now,
                ));
            }
            Err(error) => {
                tracked.state = CommandState::Failed;
                Some(error.to_string())
            }
        };
        let update = Self::update(tracked, detail, now);
        self.note_finished(id);
        Some(update)
    }

    /// Makes commands that failed transiently due again (called when ChirpStack is reachable).
    pub fn retry_transient(&mut self) {
        for tracked in self
            .by_id
            .values_mut()
            .filter(|t| t.state == CommandState::Queued && t.attempts > 0)
        {
            tracked.dispatch_due = true;
        }
    }

    /// Applies a device event; returns the resulting change, if any.
    pub fn on_event(&mut self, event: &DeviceEvent) -> Option<CommandUpdate> {
        let (queue_item_id, time) = match event {
            DeviceEvent::Ack {
                queue_item_id,
                time,
                ..
            }
            | DeviceEvent::TxAck {
                queue_item_id,
                time,
                ..
            } => (queue_item_id, *time),
            DeviceEvent::Log {
                queue_item_id: Some(queue_item_id),
                time,
                level,
                ..
            } if level == "ERROR" => (queue_item_id, *time),
            _ => return None,
        };
        let id = *self.by_queue_item.get(queue_item_id)?;
        let tracked = self.by_id.get_mut(&id)?;
        if tracked.state.is_final() {
            return None; // a replayed event of a finished command
        }
        let detail = match event {
            DeviceEvent::TxAck { .. } => {
                if tracked.transmitted {
                    return None;
                }
                tracked.transmitted = true;
                Some("transmitted".to_string())
            }
            DeviceEvent::Ack {
                acknowledged: true, ..
            } => {
                tracked.state = CommandState::Acknowledged;
                None
            }
            DeviceEvent::Ack {
                acknowledged: false,
                ..
            } => {
                tracked.state = CommandState::Failed;
                Some("the device did not acknowledge the downlink".to_string())
            }
            DeviceEvent::Log {
                code, description, ..
            } => {
                tracked.state = CommandState::Failed;
                Some(format!("{code}: {description}"))
            }
            _ => return None,
        };
        let update = Self::update(tracked, detail, time);
        if update.state.is_final() {
            self.note_finished(id);
        }
        Some(update)
    }

    /// Devices with sent commands older than `timeout` that still lack their final event.
    pub fn overdue_devices(&self, now: Timestamp, timeout: Duration) -> Vec<String> {
        let mut devices: Vec<String> = self
            .by_id
            .values()
            .filter(|t| t.overdue(now, timeout))
            .map(|t| t.request.downlink.device_id.clone())
            .collect();
        devices.sort();
        devices.dedup();
        devices
    }

    /// Expires the overdue commands of `device_id` that ChirpStack no longer queues.
    pub fn expire_overdue(
        &mut self,
        device_id: &str,
        queue: &[QueueItem],
        now: Timestamp,
        timeout: Duration,
    ) -> Vec<CommandUpdate> {
        let mut updates = Vec::new();
        let mut finished = Vec::new();
        for tracked in self.by_id.values_mut() {
            let overdue =
                tracked.request.downlink.device_id == device_id && tracked.overdue(now, timeout);
            let still_queued = tracked
                .queue_item_id
                .as_ref()
                .is_some_and(|q| queue.iter().any(|item| &item.id == q));
            if overdue && !still_queued {
                tracked.state = CommandState::Expired;
                updates.push(Self::update(
                    tracked,
                    Some(format!("no acknowledgement within {} s", timeout.as_secs())),
                    now,
                ));
                finished.push(tracked.request.id);
            }
        }
        for id in finished {
            self.note_finished(id);
        }
        updates
    }

    pub fn state(&self, id: u64) -> Option<CommandState> {
        self.by_id.get(&id).map(|t| t.state)
    }

    pub fn in_progress(&self) -> usize {
        self.by_id.values().filter(|t| !t.state.is_final()).count()
    }

    fn note_finished(&mut self, id: u64) {
        if !self.by_id.get(&id).is_some_and(|t| t.state.is_final()) {
            return;
        }
        self.finished.push_back(id);
        while self.finished.len() > MAX_FINISHED_KEPT {
            if let Some(old) = self.finished.pop_front() {
                if let Some(t) = self.by_id.remove(&old) {
                    if let Some(q) = t.queue_item_id {
                        self.by_queue_item.remove(&q);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: u64, confirmed: bool) -> CommandRequest {
        CommandRequest {
            id,
            downlink: crate::commands::Downlink {
                device_id: "dev".into(),
                command_name: "Valve".into(),
                f_port: 10,
                confirmed,
                payload: vec![1],
            },
        }
    }

    #[test]
    fn a_confirmed_command_goes_queued_sent_acknowledged() {
        let mut book = CommandBook::default();
        let t = Timestamp(0);
        assert_eq!(
            book.accept(request(1, true), t).unwrap().state,
            CommandState::Queued
        );
        assert!(book.accept(request(1, true), t).is_none(), "idempotent");
        assert_eq!(book.take_due().len(), 1);
        assert!(book.take_due().is_empty(), "in flight");
        book.retry_transient();
        assert!(
            book.take_due().is_empty(),
            "a poll cycle must not start a second Enqueue while one runs"
        );
        assert_eq!(
            book.enqueued(1, Ok("q1".into()), t).unwrap().state,
            CommandState::Sent
        );
        let tx = DeviceEvent::TxAck {
            time: t,
            queue_item_id: "q1".into(),
            f_cnt_down: 1,
        };
        let update = book.on_event(&tx).unwrap();
        assert!(update.transmitted && update.state == CommandState::Sent);
        let ack = DeviceEvent::Ack {
            time: t,
            queue_item_id: "q1".into(),
            acknowledged: true,
            f_cnt_down: 1,
        };
        assert_eq!(
            book.on_event(&ack).unwrap().state,
            CommandState::Acknowledged
        );
        assert!(
            book.on_event(&ack).is_none(),
            "a replayed ack changes nothing"
        );
    }

    #[test]
    fn a_resumed_sent_command_is_tracked_but_never_enqueued_again() {
        let mut book = CommandBook::default();
        let t = Timestamp(0);
        book.resume(request(5, true), "q5".into(), true, t);
        assert!(book.take_due().is_empty());
        assert!(
            book.accept(request(5, true), t).is_none(),
            "a later dispatch of the same id is ignored"
        );
        let ack = DeviceEvent::Ack {
            time: t,
            queue_item_id: "q5".into(),
            acknowledged: true,
            f_cnt_down: 1,
        };
        assert_eq!(
            book.on_event(&ack).unwrap().state,
            CommandState::Acknowledged
        );
    }

    #[test]
    fn transient_failures_retry_and_permanent_ones_fail() {
        let mut book = CommandBook::default();
        let t = Timestamp(0);
        book.accept(request(1, false), t);
        book.take_due();
        let update = book
            .enqueued(1, Err(UpstreamError::Unavailable("down".into())), t)
            .unwrap();
        assert_eq!(update.state, CommandState::Queued);
        assert!(book.take_due().is_empty());
        book.retry_transient();
        assert_eq!(book.take_due().len(), 1);
        assert_eq!(
            book.enqueued(1, Err(UpstreamError::InvalidArgument("f_port".into())), t)
                .unwrap()
                .state,
            CommandState::Failed
        );

        book.accept(request(2, false), t);
        for _ in 0..MAX_ENQUEUE_ATTEMPTS {
            book.retry_transient();
            book.take_due();
            book.enqueued(2, Err(UpstreamError::Unavailable("down".into())), t);
        }
        assert_eq!(book.state(2), Some(CommandState::Failed));
    }

    #[test]
    fn nack_and_error_logs_fail_and_silence_expires() {
        let mut book = CommandBook::default();
        let t = Timestamp(0);
        for id in 1..=3 {
            book.accept(request(id, true), t);
        }
        book.take_due();
        for id in 1..=3 {
            book.enqueued(id, Ok(format!("q{id}")), t);
        }
        let nack = DeviceEvent::Ack {
            time: t,
            queue_item_id: "q1".into(),
            acknowledged: false,
            f_cnt_down: 1,
        };
        assert_eq!(book.on_event(&nack).unwrap().state, CommandState::Failed);
        let log = DeviceEvent::Log {
            time: t,
            level: "ERROR".into(),
            code: "DOWNLINK_PAYLOAD_SIZE".into(),
            description: "too big".into(),
            queue_item_id: Some("q2".into()),
        };
        assert_eq!(book.on_event(&log).unwrap().state, CommandState::Failed);
        let timeout = Duration::from_secs(60);
        let later = t.saturating_add(Duration::from_secs(61));
        assert_eq!(book.overdue_devices(later, timeout), vec!["dev"]);
        let still_queued = [QueueItem {
            id: "q3".into(),
            f_port: 10,
            confirmed: true,
            is_pending: true,
            expires_at: None,
        }];
        assert!(
            book.expire_overdue("dev", &still_queued, later, timeout)
                .is_empty(),
            "ChirpStack still has it"
        );
        let expired = book.expire_overdue("dev", &[], later, timeout);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].state, CommandState::Expired);
        assert_eq!(book.in_progress(), 0);
    }
}
