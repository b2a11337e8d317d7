//! `ctl reload`: the same reload as SIGHUP, answered with its outcome.

use opcgw::control::{ErrorBody, ErrorCode};
use serde_json::Value as Json;

use super::to_json;
use crate::duties::control::Context;
use crate::tree::messages::ReloadTrigger;

pub(super) async fn run(ctx: &Context) -> Result<Json, ErrorBody> {
    let outcome = ctx
        .tree
        .reload(ReloadTrigger::Ctl)
        .await
        .map_err(|why| ErrorBody::new(ErrorCode::Unavailable, why.to_string()))?;
    to_json(&outcome)
}
