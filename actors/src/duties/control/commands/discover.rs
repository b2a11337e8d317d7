//! `ctl discover`: a discovery now (or the answer of the one running), with its outcome.

use opcgw::control::{ErrorBody, ErrorCode};
use serde_json::Value as Json;

use super::to_json;
use crate::duties::control::Context;
use crate::tree::messages::DiscoverTrigger;

pub(super) async fn run(ctx: &Context) -> Result<Json, ErrorBody> {
    let outcome = ctx
        .tree
        .discover(DiscoverTrigger::Ctl)
        .await
        .map_err(|why| ErrorBody::new(ErrorCode::Unavailable, why.to_string()))?;
    to_json(&outcome)
}
