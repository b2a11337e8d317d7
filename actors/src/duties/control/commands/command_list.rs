//! `ctl command list`: the newest commands, of one device or of all.

use opcgw::control::{ErrorBody, DEFAULT_COMMAND_LIST_LIMIT};
use opcgw::storage::CommandFilter;
use serde_json::Value as Json;

use super::{storage_error, to_json};
use crate::duties::control::Context;

pub(super) async fn run(
    ctx: &Context,
    device: Option<String>,
    limit: Option<usize>,
) -> Result<Json, ErrorBody> {
    let filter = CommandFilter {
        device_id: device,
        states: None,
        limit: limit.unwrap_or(DEFAULT_COMMAND_LIST_LIMIT),
    };
    let records = ctx
        .storage()
        .commands(filter)
        .await
        .map_err(storage_error)?;
    to_json(&records)
}
