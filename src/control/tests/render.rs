use serde_json::{json, Value};

use crate::control::{render, Request};

fn read() -> Request {
    Request::Read {
        device: "tank-1".into(),
        metric: None,
    }
}

fn history() -> Request {
    Request::History {
        device: "tank-1".into(),
        metric: "level".into(),
        since: "1h".into(),
        until: None,
        limit: None,
        aggregate: None,
        interval: None,
    }
}

fn command_list() -> Request {
    Request::CommandList {
        device: None,
        limit: None,
    }
}

/// 2024-05-01T12:00:00Z in microseconds.
const NOON: i64 = 1_714_564_800_000_000;

fn check(request: &Request, result: Value, expected: &str) {
    let text = render(request, &result);
    assert_eq!(
        text, expected,
        "\n--- got ---\n{text}--- expected ---\n{expected}"
    );
}

#[test]
fn status_shows_nested_fields_then_the_actor_table() {
    check(
        &Request::Status,
        json!({
            "tree": {
                "config_generation": 2,
                "children": [
                    {"name": "storage", "state": "running", "restarts": 0, "start_failures": 0,
                     "last_error": null, "next_retry_in_ms": null, "up_for_ms": 3_600_000},
                    {"name": "opcua", "state": "backing_off", "restarts": 2, "start_failures": 1,
                     "last_error": "port 4840 in use", "next_retry_in_ms": 500, "up_for_ms": null},
                ],
            },
            "upstream": {"state": "connected", "since": NOON, "last_poll": NOON + 10_000_000,
                         "last_error": null, "consecutive_failures": 0},
            "storage": {"series": 120, "history_rows": 50_000, "commands": 3, "file_bytes": 1_048_576},
        }),
        "\
tree.config_generation:        2
upstream.state:                connected
upstream.last_error:           -
upstream.consecutive_failures: 0
upstream.last_poll:            2024-05-01T12:00:10Z
upstream.since:                2024-05-01T12:00:00Z
storage.commands:              3
storage.file_bytes:            1048576
storage.history_rows:          50000
storage.series:                120

tree.children:
NAME     STATE        RESTARTS  START_FAILURES  UP_FOR_MS  NEXT_RETRY_IN_MS  LAST_ERROR
storage  running      0         0               3600000    -                 -
opcua    backing_off  2         1               -          500               port 4840 in use
",
    );
}

#[test]
fn reload_and_log_level_show_their_fields() {
    check(
        &Request::Reload,
        json!({"applied": true, "generation": 3, "changed": ["opcua.port", "logging.level"]}),
        "\
applied:    true
generation: 3
changed:    opcua.port,logging.level
",
    );
    check(
        &Request::LogLevel {
            filter: "debug".into(),
        },
        json!({"filter": "debug", "previous": "info"}),
        "filter:   debug\nprevious: info\n",
    );
    check(&Request::Reload, Value::Null, "ok\n");
}

#[test]
fn devices_are_a_table_with_known_columns_first() {
    let devices = json!([
        {"device_id": "a84041000181c5f2", "name": "Tank 1", "quality": "good", "last_seen": NOON,
         "metrics": ["level", "temperature"], "battery": 87},
        {"device_id": "b2", "name": "Valve\u{1b}[31m", "quality": "waiting_for_initial_data",
         "last_seen": null, "metrics": []},
    ]);
    let expected = "\
DEVICE_ID         NAME             QUALITY                   LAST_SEEN             METRICS            BATTERY
a84041000181c5f2  Tank 1           good                      2024-05-01T12:00:00Z  level,temperature  87
b2                Valve\\u{1b}[31m  waiting_for_initial_data  -                                        -
";
    check(&Request::Devices, devices.clone(), expected);
    // The same list wrapped in an object renders the same.
    check(&Request::Devices, json!({ "devices": devices }), expected);
    check(&Request::Devices, json!([]), "no devices\n");
}

#[test]
fn devices_as_the_daemon_lists_them() {
    check(
        &Request::Devices,
        json!([
            {"application": "tanks", "device_id": "a84041000181c5f2", "device_name": "Tank 1",
             "metrics": 2, "commands": 0, "last_value": "2024-05-01T12:00:00Z", "quality": "good"},
            {"application": "valves", "device_id": "b2", "device_name": "Valve 3",
             "metrics": 1, "commands": 2, "last_value": null, "quality": "waiting_for_initial_data"},
        ]),
        "\
DEVICE_ID         DEVICE_NAME  APPLICATION  QUALITY                   LAST_VALUE            METRICS  COMMANDS
a84041000181c5f2  Tank 1       tanks        good                      2024-05-01T12:00:00Z  2        0
b2                Valve 3      valves       waiting_for_initial_data  -                     1        2
",
    );
}

#[test]
fn read_shows_typed_values_plainly() {
    check(
        &read(),
        json!([
            {"device_id": "tank-1", "metric": "level", "value": {"type": "Float", "value": 1.5},
             "quality": "good", "source_time": NOON, "received_time": NOON + 250_000, "origin": "uplink"},
            {"device_id": "tank-1", "metric": "label", "value": {"type": "String", "value": "full"},
             "quality": "uncertain", "source_time": NOON, "received_time": NOON, "origin": "aggregate"},
        ]),
        "\
DEVICE_ID  METRIC  VALUE  QUALITY    SOURCE_TIME           RECEIVED_TIME             ORIGIN
tank-1     level   1.5    good       2024-05-01T12:00:00Z  2024-05-01T12:00:00.250Z  uplink
tank-1     label   full   uncertain  2024-05-01T12:00:00Z  2024-05-01T12:00:00Z      aggregate
",
    );
    check(
        &read(),
        json!([
            {"metric": "level", "value": {"type": "Float", "value": 0.75}, "unit": "m",
             "source_time": "2024-05-01T12:00:00Z", "origin": "uplink", "quality": "good"},
            {"metric": "valve", "value": null, "unit": null, "source_time": null, "origin": null,
             "quality": "waiting_for_initial_data"},
        ]),
        "\
METRIC  VALUE  UNIT  QUALITY                   SOURCE_TIME           ORIGIN
level   0.75   m     good                      2024-05-01T12:00:00Z  uplink
valve   -      -     waiting_for_initial_data  -                     -
",
    );
    check(&read(), json!([]), "no values\n");
}

#[test]
fn history_shows_rows_and_whether_more_remain() {
    check(
        &history(),
        json!({
            "rows": [
                {"time": NOON, "value": {"type": "Int", "value": 7}, "origin": "uplink"},
                {"time": NOON + 60_000_000, "value": {"type": "Int", "value": 8}, "origin": "uplink"},
            ],
            "more": false,
        }),
        "\
more: false

rows:
TIME                  VALUE  ORIGIN
2024-05-01T12:00:00Z  7      uplink
2024-05-01T12:01:00Z  8      uplink
",
    );
    check(
        &history(),
        json!({"rows": [{"time": NOON, "value": {"type": "Bool", "value": true}, "origin": "uplink"}],
               "truncated": true}),
        "\
truncated: true

rows:
TIME                  VALUE  ORIGIN
2024-05-01T12:00:00Z  true   uplink
",
    );
    check(&history(), json!({"rows": []}), "no values in this range\n");
}

#[test]
fn command_send_shows_the_queued_command() {
    check(
        &Request::CommandSend {
            device: "valve-3".into(),
            command: "open".into(),
            value: json!(true),
        },
        json!({"id": 12, "device_id": "valve-3", "command_name": "open", "state": "pending",
               "payload": [1, 255], "created": NOON}),
        "\
id:           12
device_id:    valve-3
command_name: open
state:        pending
created:      2024-05-01T12:00:00Z
payload:      01ff
",
    );
}

#[test]
fn command_list_is_a_table_newest_first_as_given() {
    check(
        &command_list(),
        json!([
            {"id": 2, "device_id": "valve-3", "command_name": "close", "f_port": 10, "confirmed": false,
             "payload": [0], "state": "sent", "queue_item_id": "q-2", "transmitted": true,
             "detail": null, "requested_by": "ctl", "created": NOON, "updated": NOON + 1_000_000},
            {"id": 1, "device_id": "valve-3", "command_name": "open", "f_port": 10, "confirmed": true,
             "payload": [1], "state": "failed", "queue_item_id": null, "transmitted": false,
             "detail": "device not found upstream", "requested_by": "opcua:operator",
             "created": NOON, "updated": NOON},
        ]),
        "\
ID  DEVICE_ID  COMMAND_NAME  STATE   CREATED               UPDATED               TRANSMITTED  QUEUE_ITEM_ID  DETAIL                     CONFIRMED  F_PORT  PAYLOAD  REQUESTED_BY
2   valve-3    close         sent    2024-05-01T12:00:00Z  2024-05-01T12:00:01Z  true         q-2            -                          false      10      00       ctl
1   valve-3    open          failed  2024-05-01T12:00:00Z  2024-05-01T12:00:00Z  false        -              device not found upstream  true       10      01       opcua:operator
",
    );
    check(&command_list(), json!([]), "no commands\n");
}

#[test]
fn long_cells_are_cut_and_odd_shapes_still_render() {
    let text = render(
        &Request::Devices,
        &json!([{ "device_id": "x".repeat(100) }]),
    );
    let row = text.lines().nth(1).unwrap();
    assert_eq!(row.chars().count(), 61);
    assert!(row.ends_with('…'));
    check(&Request::Status, json!("fine"), "fine\n");
    check(&Request::Status, json!(["a", "b"]), "a\nb\n");
    check(&Request::Status, json!({}), "ok\n");
    check(
        &Request::Status,
        json!({"nested": {"deep": [{"k": 1}], "flat": [1, 2]}, "mixed": [1, {"a": 2}]}),
        "mixed:       [1,{\"a\":2}]\nnested.flat: 1,2\n\nnested.deep:\nK\n1\n",
    );
}
