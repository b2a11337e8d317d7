//! `ctl command send`: validates and encodes a configured command (the same `prepare` as OPC UA
//! writes) and queues it durably.

use opcgw::chirpstack::mapping::convert_json;
use opcgw::commands::prepare;
use opcgw::control::ErrorBody;
use serde_json::Value as Json;

use super::{storage_error, to_json};
use crate::duties::control::socket::Caller;
use crate::duties::control::Context;

pub(super) async fn run(
    ctx: &Context,
    caller: Caller,
    device: String,
    command: String,
    value: Json,
) -> Result<Json, ErrorBody> {
    let json_value = |command_type| convert_json(&value, command_type);
    let new = prepare(
        &ctx.config,
        &device,
        &command,
        &json_value,
        format!("ctl:uid={}", caller.uid),
    )
    .map_err(|e| ErrorBody::bad_request(format!("field `{}`: {e}", e.field())))?;
    let record = ctx
        .storage()
        .enqueue_command(new)
        .await
        .map_err(storage_error)?;
    to_json(&record)
}
