//! The command queue: ids, lifecycle, persistence, listing, pruning.

use super::*;
use crate::commands::{CommandState, CommandUpdate, Downlink, NewCommand};
use crate::storage::{CommandFilter, StorageErrorKind, MAX_COMMAND_PAYLOAD_BYTES};

fn new_command(device_id: &str) -> NewCommand {
    NewCommand {
        downlink: Downlink {
            device_id: device_id.into(),
            command_name: "open_valve".into(),
            f_port: 10,
            confirmed: true,
            payload: vec![1, 2, 3],
        },
        requested_by: "opcua:operator".into(),
    }
}

fn update(id: u64, device_id: &str, state: CommandState, at: i64) -> CommandUpdate {
    CommandUpdate {
        id,
        device_id: device_id.into(),
        command_name: String::new(),
        state,
        queue_item_id: None,
        transmitted: false,
        detail: None,
        at: Timestamp(at),
    }
}

fn all(limit: usize) -> CommandFilter {
    CommandFilter {
        device_id: None,
        states: None,
        limit,
    }
}

#[test]
fn command_ids_increase_and_never_repeat_across_reopen_and_pruning() {
    let (dir, mut store) = fresh_store();
    let path = dir.path().join("opcgw.redb");
    let first = store
        .enqueue_command(new_command("dev"), Timestamp(1), 100)
        .unwrap();
    let second = store
        .enqueue_command(new_command("dev"), Timestamp(2), 100)
        .unwrap();
    assert_eq!((first.id, second.id), (1, 2));
    assert_eq!(first.state, CommandState::Queued);
    assert_eq!((first.created, first.updated), (Timestamp(1), Timestamp(1)));
    store
        .update_command(&update(2, "dev", CommandState::Failed, 3))
        .unwrap();
    // Prune the newest command: its id must still not come back.
    let report = store.prune_commands(Timestamp(10), 10).unwrap();
    assert_eq!((report.removed, report.more), (1, false));
    drop(store);

    let mut store = Store::open(&path).unwrap();
    let third = store
        .enqueue_command(new_command("dev"), Timestamp(4), 100)
        .unwrap();
    assert_eq!(third.id, 3);
    assert_eq!(store.command(1).unwrap(), Some(first));
    assert_eq!(store.command(2).unwrap(), None);
}

#[test]
fn updates_persist_and_final_states_never_regress() {
    let (dir, mut store) = fresh_store();
    let path = dir.path().join("opcgw.redb");
    let id = store
        .enqueue_command(new_command("dev"), Timestamp(1), 100)
        .unwrap()
        .id;
    let mut sent = update(id, "dev", CommandState::Sent, 2);
    sent.queue_item_id = Some("q-1".into());
    let record = store.update_command(&sent).unwrap().unwrap();
    assert_eq!(record.state, CommandState::Sent);
    assert_eq!(record.queue_item_id.as_deref(), Some("q-1"));

    // A late "queued" (a retry notice) does not move a sent command back, but keeps its detail.
    let mut retry = update(id, "dev", CommandState::Queued, 3);
    retry.detail = Some("enqueue will be retried".into());
    let record = store.update_command(&retry).unwrap().unwrap();
    assert_eq!(record.state, CommandState::Sent);
    assert_eq!(record.detail.as_deref(), Some("enqueue will be retried"));

    let mut transmitted = update(id, "dev", CommandState::Sent, 4);
    transmitted.transmitted = true;
    store.update_command(&transmitted).unwrap();
    let acked = store
        .update_command(&update(id, "dev", CommandState::Acknowledged, 5))
        .unwrap()
        .unwrap();
    assert_eq!(acked.state, CommandState::Acknowledged);
    assert!(acked.transmitted, "transmitted sticks");
    assert_eq!(
        acked.queue_item_id.as_deref(),
        Some("q-1"),
        "kept when absent"
    );
    assert_eq!(acked.updated, Timestamp(5));

    for late in [
        CommandState::Queued,
        CommandState::Sent,
        CommandState::Failed,
        CommandState::Expired,
    ] {
        let unchanged = store
            .update_command(&update(id, "dev", late, 9))
            .unwrap()
            .unwrap();
        assert_eq!(unchanged, acked, "{late:?} after acknowledged");
    }
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.command(id).unwrap(), Some(acked));
}

#[test]
fn updates_for_unknown_ids_or_another_device_are_ignored() {
    let (_dir, mut store) = fresh_store();
    assert_eq!(
        store
            .update_command(&update(99, "dev", CommandState::Sent, 1))
            .unwrap(),
        None
    );
    let id = store
        .enqueue_command(new_command("dev"), Timestamp(1), 100)
        .unwrap()
        .id;
    assert_eq!(
        store
            .update_command(&update(id, "other", CommandState::Failed, 1))
            .unwrap(),
        None
    );
    assert_eq!(
        store.command(id).unwrap().unwrap().state,
        CommandState::Queued
    );
}

#[test]
fn commands_are_listed_newest_first_and_filtered() {
    let (_dir, mut store) = fresh_store();
    for (i, device) in ["a", "b", "a", "b", "a"].iter().enumerate() {
        store
            .enqueue_command(new_command(device), Timestamp(i as i64), 100)
            .unwrap();
    }
    store
        .update_command(&update(3, "a", CommandState::Sent, 10))
        .unwrap();
    let ids = |records: Vec<crate::storage::CommandRecord>| {
        records.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(store.commands(&all(10)).unwrap()), vec![5, 4, 3, 2, 1]);
    assert_eq!(ids(store.commands(&all(2)).unwrap()), vec![5, 4]);
    let mut filter = all(10);
    filter.device_id = Some("a".into());
    assert_eq!(ids(store.commands(&filter).unwrap()), vec![5, 3, 1]);
    filter.states = Some(vec![CommandState::Queued]);
    assert_eq!(ids(store.commands(&filter).unwrap()), vec![5, 1]);
    assert_eq!(
        store.commands(&all(0)).unwrap_err().kind(),
        StorageErrorKind::InvalidQuery
    );
    // Records travel as JSON to the web console.
    let json = serde_json::to_value(store.command(3).unwrap().unwrap()).unwrap();
    assert_eq!(json["state"], "sent");
}

#[test]
fn the_limit_counts_matching_commands_and_several_states_combine() {
    // What the console's GET /api/commands?device=&state=&limit= needs of storage.
    let (_dir, mut store) = fresh_store();
    for (i, device) in ["a", "b", "b", "b", "a", "b", "a"].iter().enumerate() {
        store
            .enqueue_command(new_command(device), Timestamp(i as i64), 100)
            .unwrap();
    }
    store
        .update_command(&update(1, "a", CommandState::Failed, 10))
        .unwrap();
    store
        .update_command(&update(5, "a", CommandState::Sent, 10))
        .unwrap();
    let ids = |filter: &CommandFilter| {
        store
            .commands(filter)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    // The newest matches, skipping the newer commands of other devices.
    let mut filter = all(2);
    filter.device_id = Some("a".into());
    assert_eq!(ids(&filter), vec![7, 5]);
    filter.limit = 1;
    filter.states = Some(vec![CommandState::Failed, CommandState::Sent]);
    assert_eq!(ids(&filter), vec![5]);
    filter.limit = 10;
    assert_eq!(ids(&filter), vec![5, 1]);
    // A device without commands, a state nobody is in.
    filter.device_id = Some("c".into());
    assert!(ids(&filter).is_empty());
    let mut filter = all(10);
    filter.states = Some(vec![CommandState::Expired]);
    assert!(ids(&filter).is_empty());
    assert_eq!(
        store
            .commands(&all(crate::storage::MAX_COMMAND_PAGE + 1))
            .unwrap_err()
            .kind(),
        StorageErrorKind::InvalidQuery
    );
    assert_eq!(
        ids(&all(crate::storage::MAX_COMMAND_PAGE)),
        vec![7, 6, 5, 4, 3, 2, 1]
    );
}

#[test]
fn invalid_commands_are_refused_before_anything_is_written() {
    let (_dir, mut store) = fresh_store();
    let mut too_big = new_command("dev");
    too_big.downlink.payload = vec![0; MAX_COMMAND_PAYLOAD_BYTES + 1];
    let mut no_device = new_command("");
    no_device.downlink.device_id.clear();
    for bad in [too_big, no_device] {
        let error = store.enqueue_command(bad, Timestamp(0), 100).unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::InvalidQuery);
    }
    assert_eq!(store.counts().unwrap().commands, 0);
    assert_eq!(
        store
            .enqueue_command(new_command("dev"), Timestamp(0), 100)
            .unwrap()
            .id,
        1
    );
}

#[test]
fn pruning_commands_keeps_unfinished_ones_and_works_in_chunks() {
    let (_dir, mut store) = fresh_store();
    for i in 0..5 {
        store
            .enqueue_command(new_command("dev"), Timestamp(i), 100)
            .unwrap();
    }
    for id in [1, 2, 4] {
        store
            .update_command(&update(id, "dev", CommandState::Expired, 5))
            .unwrap();
    }
    let report = store.prune_commands(Timestamp(6), 2).unwrap();
    assert_eq!((report.removed, report.more), (2, true));
    let report = store.prune_commands(Timestamp(6), 2).unwrap();
    assert_eq!((report.removed, report.more), (1, false));
    let left: Vec<u64> = store
        .commands(&all(10))
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![5, 3], "queued commands stay, however old");
}

#[test]
fn a_device_with_a_full_queue_is_refused_until_a_command_finishes() {
    let (_dir, mut store) = fresh_store();
    for i in 0..3 {
        store
            .enqueue_command(new_command("dev"), Timestamp(i), 3)
            .unwrap();
    }
    let error = store
        .enqueue_command(new_command("dev"), Timestamp(3), 3)
        .unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::CommandQueueFull);
    let text = error.to_string();
    assert!(
        text.contains("\"dev\"") && text.contains("max_queued_commands_per_device"),
        "{text}"
    );
    // Nothing was written by the refusal; another device is not affected.
    assert_eq!(store.counts().unwrap().commands, 3);
    store
        .enqueue_command(new_command("other"), Timestamp(3), 3)
        .unwrap();
    // A sent command still counts; a finished one frees its place.
    store
        .update_command(&update(1, "dev", CommandState::Sent, 4))
        .unwrap();
    let still_full = store.enqueue_command(new_command("dev"), Timestamp(5), 3);
    assert_eq!(
        still_full.unwrap_err().kind(),
        StorageErrorKind::CommandQueueFull
    );
    store
        .update_command(&update(1, "dev", CommandState::Acknowledged, 6))
        .unwrap();
    assert_eq!(
        store
            .enqueue_command(new_command("dev"), Timestamp(7), 3)
            .unwrap()
            .id,
        5
    );
}

#[test]
fn a_command_row_keeps_its_flat_json_shape() {
    // Rows written before the downlink fields were grouped must read back, and new rows must
    // look the same (the control socket shows records as this JSON too).
    let row = r#"{"id":7,"device_id":"d","command_name":"c","f_port":10,"confirmed":true,
        "payload":[1,2],"state":"sent","queue_item_id":"q","transmitted":false,"detail":null,
        "requested_by":"ctl:uid=1","created":1,"updated":2}"#;
    let record: crate::storage::CommandRecord = serde_json::from_str(row).unwrap();
    assert_eq!(record.downlink.payload, vec![1, 2]);
    assert_eq!(record.state, CommandState::Sent);
    assert_eq!(
        serde_json::to_value(&record).unwrap(),
        serde_json::from_str::<serde_json::Value>(row).unwrap()
    );
}
