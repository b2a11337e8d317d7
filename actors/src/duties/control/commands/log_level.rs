//! `ctl log-level`: changes the log filter of the running process.

use opcgw::control::{ErrorBody, ErrorCode};
use serde_json::{json, Value as Json};
use tracing::info;

use crate::duties::control::socket::Caller;
use crate::duties::control::Context;

pub(super) fn run(ctx: &Context, caller: Caller, filter: String) -> Result<Json, ErrorBody> {
    let Some(log) = &ctx.log else {
        return Err(ErrorBody::new(
            ErrorCode::Unavailable,
            "logging is not controllable in this process",
        ));
    };
    log.set_filter(&filter)
        .map_err(|e| ErrorBody::bad_request(format!("field `filter`: {e}")))?;
    info!(
        event = "log_level_changed",
        level = filter.as_str(),
        by_uid = caller.uid
    );
    Ok(json!({ "filter": filter }))
}
