//! A device's event log: ChirpStack's per-device Redis stream (`XADD ... MAXLEN`), in memory.
//!
//! ChirpStack serves `StreamDeviceEvents` by reading that stream from id `0` and then
//! following it, so a new stream first replays the retained history. Streams here read the log
//! the same way, by sequence number, so a slow stream never blocks the producer: when it falls
//! behind further than the log holds it skips what was trimmed, exactly like a Redis reader.

use std::collections::{HashMap, VecDeque};

use chirpstack_api::api::LogItem;

use crate::model::Timestamp;

/// Events kept beyond `event_history` so live delivery survives short bursts.
const MIN_CAPACITY: usize = 16;

#[derive(Debug)]
pub(crate) struct EventLog {
    items: VecDeque<(u64, LogItem)>,
    capacity: usize,
    next_seq: u64,
    /// Redis stream ids are `<milliseconds>-<sequence within that millisecond>`.
    last_ms: i64,
    ms_seq: u64,
}

impl EventLog {
    pub(crate) fn new(event_history: usize) -> Self {
        let capacity = event_history.max(MIN_CAPACITY);
        Self {
            items: VecDeque::with_capacity(capacity.min(64)),
            capacity,
            next_seq: 1,
            last_ms: 0,
            ms_seq: 0,
        }
    }

    /// Appends one event and returns its sequence number.
    pub(crate) fn append(
        &mut self,
        kind: &str,
        time: Timestamp,
        body: String,
        properties: HashMap<String, String>,
    ) -> u64 {
        let now_ms = Timestamp::now().as_micros().div_euclid(1_000);
        // Like Redis, never let ids go backwards when the wall clock does.
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.ms_seq = 0;
        } else {
            self.ms_seq += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back((
            seq,
            LogItem {
                id: format!("{}-{}", self.last_ms, self.ms_seq),
                time: Some(time.to_prost()),
                description: kind.to_string(),
                body,
                properties,
            },
        ));
        seq
    }

    /// The first sequence number a newly opened stream delivers: the last `history` events.
    pub(crate) fn replay_start(&self, history: usize) -> u64 {
        self.next_seq
            .saturating_sub(history.min(self.items.len()) as u64)
    }

    /// Up to `max` events with sequence number `>= from`, oldest first.
    pub(crate) fn since(&self, from: u64, max: usize) -> Vec<(u64, LogItem)> {
        let first = self.items.front().map_or(self.next_seq, |(seq, _)| *seq);
        let skip = from.saturating_sub(first).min(self.items.len() as u64) as usize;
        self.items.iter().skip(skip).take(max).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(log: &mut EventLog, n: usize) {
        for i in 0..n {
            log.append(
                "up",
                Timestamp::now(),
                format!("{{\"n\":{i}}}"),
                HashMap::new(),
            );
        }
    }

    #[test]
    fn a_new_reader_replays_only_the_configured_history() {
        let mut log = EventLog::new(3);
        push(&mut log, 5);
        let start = log.replay_start(3);
        let replay = log.since(start, 100);
        let bodies: Vec<_> = replay.iter().map(|(_, item)| item.body.as_str()).collect();
        assert_eq!(bodies, [r#"{"n":2}"#, r#"{"n":3}"#, r#"{"n":4}"#]);
        assert!(log.since(start + 3, 100).is_empty());
    }

    #[test]
    fn a_reader_behind_the_trimmed_part_skips_to_the_oldest_kept_event() {
        let mut log = EventLog::new(0);
        push(&mut log, MIN_CAPACITY + 4);
        let items = log.since(1, 1_000);
        assert_eq!(items.len(), MIN_CAPACITY);
        assert_eq!(items[0].0, 5);
        assert_eq!(
            log.replay_start(0),
            log.since(0, 1_000).last().unwrap().0 + 1
        );
    }

    #[test]
    fn ids_look_like_redis_stream_ids_and_increase() {
        let mut log = EventLog::new(10);
        push(&mut log, 3);
        let ids: Vec<(i64, u64)> = log
            .since(0, 10)
            .iter()
            .map(|(_, item)| {
                let (ms, seq) = item.id.split_once('-').unwrap();
                (ms.parse().unwrap(), seq.parse().unwrap())
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
}
