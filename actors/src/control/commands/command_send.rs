//! `ctl command send`: validates and encodes a configured command and queues it durably.

use opcgw::chirpstack::mapping::convert_json;
use opcgw::chirpstack::payload::encode_command;
use opcgw::control::ErrorBody;
use opcgw::storage::NewCommand;
use serde_json::Value as Json;

use super::{storage_error, to_json};
use crate::control::socket::Caller;
use crate::control::Context;

pub(super) async fn run(
    ctx: &Context,
    caller: Caller,
    device: String,
    command: String,
    value: Json,
) -> Result<Json, ErrorBody> {
    let config = ctx.device(&device)?;
    let Some(command_config) = config.commands.iter().find(|c| c.command_name == command) else {
        return Err(ErrorBody::bad_request(format!(
            "field `command`: device {device:?} has no command {command:?}"
        )));
    };
    let value = convert_json(&value, command_config.command_type)
        .map_err(|e| ErrorBody::bad_request(format!("field `value`: {e}")))?;
    let payload = encode_command(command_config, &value)
        .map_err(|e| ErrorBody::bad_request(format!("field `value`: {e}")))?;
    let record = ctx
        .storage()
        .enqueue_command(NewCommand {
            device_id: device,
            command_name: command,
            f_port: u32::from(command_config.command_port),
            confirmed: command_config.command_confirmed,
            payload,
            requested_by: format!("ctl:uid={}", caller.uid),
        })
        .await
        .map_err(storage_error)?;
    to_json(&record)
}
