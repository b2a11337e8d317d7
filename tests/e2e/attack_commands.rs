//! Command floods against the real binary: one OPC UA Write naming many command variables, and
//! more unfinished commands for one device than it may have, by OPC UA and by the control
//! socket. ChirpStack is unreachable in this configuration, so queued commands stay queued.

use std::time::Duration;

use opcgw::control::{ControlClient, Request};
use ua::types::{AttributeId, DataValue, NumericRange, StatusCode, Variant, WriteValue};

use crate::support::{Daemon, Workdir, MINIMAL_CONFIG, TEST_PASSWORD};

const COMMAND: &str = r#"
    [[application.device.command]]
    command_name = "Valve"
    command_id = 1
    command_confirmed = true
    command_port = 10
    command_type = "Int"
"#;

fn write_of(node: &ua::types::NodeId, value: i64) -> WriteValue {
    WriteValue {
        node_id: node.clone(),
        attribute_id: AttributeId::Value as u32,
        index_range: NumericRange::None,
        value: DataValue::value_only(Variant::Int64(value)),
    }
}

#[test]
fn command_writes_are_capped_per_request_and_per_device_queue() {
    let config = format!(
        "{}{COMMAND}\n[storage]\nmax_queued_commands_per_device = 3\n",
        MINIMAL_CONFIG.replace("[opcua]", "[opcua]\nmax_command_writes_per_request = 5")
    );
    let workdir = Workdir::new(&config);
    let daemon = Daemon::start(&workdir, &[]);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    daemon.wait_for_events("control_socket_listening", 1, Duration::from_secs(30));
    let runtime = crate::support::client_runtime();
    runtime.block_on(async {
        let ua = crate::ua_client::connect_none(workdir.opcua_port(), TEST_PASSWORD).await;
        let valve = ua.id("0000000000000001/Valve");
        let level = ua.id("0000000000000001/Level");

        // Six command writes in one request, one more than allowed: none is queued, each says
        // why; a non-command node in the same request keeps its own answer.
        let mut request: Vec<WriteValue> = (0..6).map(|i| write_of(&valve, i % 2)).collect();
        request.push(WriteValue {
            value: DataValue::value_only(Variant::Double(1.0)),
            ..write_of(&level, 0)
        });
        let results = ua.session.write(&request).await.expect("write service");
        assert_eq!(
            results[..6],
            [StatusCode::BadTooManyOperations; 6],
            "{results:?}"
        );
        assert_eq!(results[6], StatusCode::BadNotWritable, "{results:?}");
        let refused =
            daemon.wait_for_events("opcua_command_write_refused", 1, Duration::from_secs(5));
        assert!(
            refused[0].contains("command_writes=6") && refused[0].contains("limit=5"),
            "{refused:#?}"
        );
        assert!(daemon.events("command_queued").is_empty());

        // Five in one request is within the cap; the device queue holds three.
        let request: Vec<WriteValue> = (0..5).map(|i| write_of(&valve, i % 2)).collect();
        let results = ua.session.write(&request).await.expect("write service");
        assert_eq!(
            results,
            [
                StatusCode::Good,
                StatusCode::Good,
                StatusCode::Good,
                StatusCode::BadResourceUnavailable,
                StatusCode::BadResourceUnavailable,
            ],
        );
        assert_eq!(daemon.events("command_queued").len(), 3);
        ua.close().await;

        // The control socket gets the same refusal, with what to do about it.
        let token = std::fs::read_to_string(workdir.path().join("run/control.token"))
            .expect("control token");
        let mut ctl = ControlClient::connect(
            &workdir.path().join("run/opcgw.sock"),
            token.trim(),
            Duration::from_secs(10),
        )
        .await
        .expect("connect to the control socket");
        let response = ctl
            .request(&Request::CommandSend {
                device: "0000000000000001".into(),
                command: "Valve".into(),
                value: serde_json::json!(1),
            })
            .await
            .expect("response");
        assert!(!response.ok, "{response:?}");
        let error = response.error.expect("an error");
        assert_eq!(error.code.as_str(), "unavailable", "{error:?}");
        assert!(
            error.message.contains("max_queued_commands_per_device"),
            "{error:?}"
        );
    });
    assert_eq!(daemon.events("command_queued").len(), 3);
}
