//! Uplink generation: one timer task drives every device (cheap with thousands of devices),
//! each device staggered by its share of the interval, and `emit_uplink` builds the `up`
//! event exactly as ChirpStack's integration JSON writes it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::state::{DeviceRuntime, SimState, HISTORY_HORIZON, HISTORY_MAX_POINTS};
use crate::chirpstack::events::{DeviceInfoJson, UplinkEventJson};
use crate::model::Timestamp;

/// The uplink FPort of every simulated device.
const UPLINK_F_PORT: u32 = 1;
const UPLINK_DR: u32 = 5;

impl SimState {
    /// Generates one uplink of device `index` now: event log, open streams, metric history.
    pub(crate) fn emit_uplink(&self, index: usize) {
        // ChirpStack drops the frames of a device it no longer has.
        if !self.exists(index) {
            return;
        }
        let device_info = self.device_info(index);
        let seq = self.with_device(index, |device| {
            self.record_uplink(index, device, device_info, Timestamp::now())
        });
        self.notify(index, seq);
    }

    /// Records `config.past_uplinks` uplinks of every device before anything is served: each
    /// device's uplinks at its interval, the newest one interval before its first scheduled
    /// slot (`start`, the schedule's start), oldest first.
    pub(crate) fn record_past_uplinks(&self, start: Timestamp) {
        let (count, interval) = (self.world.device_count(), self.config.uplink_interval);
        for index in 0..count {
            let first_slot = start.saturating_add(first_slot_after_start(index, count, interval));
            for back in (1..=self.config.past_uplinks).rev() {
                let at = first_slot.saturating_sub(interval.saturating_mul(back as u32));
                let info = self.device_info(index);
                self.with_device(index, |device| self.record_uplink(index, device, info, at));
            }
        }
    }

    /// Counts, timestamps and logs one uplink of `device` sent at `now`; returns the event's
    /// sequence number.
    fn record_uplink(
        &self,
        index: usize,
        device: &mut DeviceRuntime,
        info: DeviceInfoJson,
        now: Timestamp,
    ) -> u64 {
        // A radio cannot send two frames within a millisecond; keeping uplink times strictly
        // increasing keeps counters increasing and GetMetrics buckets unambiguous.
        let at = match device.last_uplink {
            Some(last) if now <= last.saturating_add(Duration::from_millis(1)) => {
                last.saturating_add(Duration::from_millis(1))
            }
            _ => now,
        };
        device.f_cnt_up = device.f_cnt_up.wrapping_add(1);
        device.last_uplink = Some(at);
        let horizon = at.saturating_sub(HISTORY_HORIZON);
        while let Some(oldest) = device.uplink_times.front() {
            if *oldest >= horizon && device.uplink_times.len() < HISTORY_MAX_POINTS {
                break;
            }
            device.uplink_times.pop_front();
        }
        device.uplink_times.push_back(at);

        let payload = device.f_cnt_up.to_be_bytes();
        let body = UplinkEventJson {
            deduplication_id: dedup_id(index, device.f_cnt_up),
            time: Some(at.to_rfc3339()),
            device_info: info,
            dev_addr: format!("{:08x}", 0x2600_0000_u32 | (index as u32 & 0x00ff_ffff)),
            dr: UPLINK_DR,
            f_cnt: device.f_cnt_up,
            f_port: UPLINK_F_PORT,
            confirmed: false,
            data: base64(&payload),
            object: Some(serde_json::Value::Object(
                self.world.uplink_object(index, at),
            )),
        };
        // ChirpStack's event log adds these properties to `up` items.
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        let properties = HashMap::from([
            ("DR".to_string(), UPLINK_DR.to_string()),
            ("FPort".to_string(), UPLINK_F_PORT.to_string()),
            ("Data".to_string(), hex),
        ]);
        let body = serde_json::to_string(&body).unwrap_or_default();
        device.events.append("up", at, body, properties)
    }
}

/// Starts the uplink schedule; `None` when the interval is zero (uplinks only on request).
pub(crate) fn spawn_schedule(state: Arc<SimState>) -> Option<JoinHandle<()>> {
    let interval = state.config.uplink_interval;
    if interval.is_zero() || state.world.device_count() == 0 {
        return None;
    }
    Some(tokio::spawn(run_schedule(state, interval)))
}

async fn run_schedule(state: Arc<SimState>, interval: Duration) {
    let count = state.world.device_count();
    let start = Instant::now();
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..count)
        .map(|i| Reverse((start + first_slot_after_start(i, count, interval), i)))
        .collect();
    while let Some(&Reverse((next, _))) = due.peek() {
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        while let Some(&Reverse((at, index))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            state.emit_uplink(index);
            due.push(Reverse((next_due(at, interval, now), index)));
        }
    }
}

/// When device `index` of `count` first reports after the schedule starts: (index + 1) / count
/// of the interval, evenly staggered, and nothing at t = 0, so a test with a long interval sees
/// only the uplinks it asks for.
fn first_slot_after_start(index: usize, count: usize, interval: Duration) -> Duration {
    interval.mul_f64((index + 1) as f64 / count as f64)
}

/// The next slot after `at` that is still in the future: a device that missed slots (a stalled
/// runtime) skips them rather than bursting, as a real device would.
fn next_due(at: Instant, interval: Duration, now: Instant) -> Instant {
    let next = at + interval;
    if next > now {
        return next;
    }
    let behind = now.duration_since(at).as_nanos() / interval.as_nanos().max(1);
    let steps = u32::try_from(behind + 1).unwrap_or(u32::MAX);
    at + interval.saturating_mul(steps)
}

/// Deterministic UUID-shaped deduplication id of uplink `f_cnt` of device `index`.
fn dedup_id(index: usize, f_cnt: u32) -> String {
    format!(
        "d0000000-{:04x}-4{:03x}-8000-{:012x}",
        (index >> 12) & 0xffff,
        index & 0xfff,
        f_cnt
    )
}

/// Standard base64 with padding (the proto3 JSON encoding of `bytes`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0, 0, 0, 42]), "AAAAKg==");
    }

    #[test]
    fn a_stalled_schedule_skips_missed_slots_instead_of_bursting() {
        let start = Instant::now();
        let interval = Duration::from_secs(10);
        assert_eq!(next_due(start, interval, start), start + interval);
        let late = start + Duration::from_secs(35);
        assert_eq!(
            next_due(start, interval, late),
            start + Duration::from_secs(40)
        );
    }
}
