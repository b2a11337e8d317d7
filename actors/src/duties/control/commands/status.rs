//! `ctl status`: the tree's health, the upstream status and the store's counts.

use opcgw::control::ErrorBody;
use serde_json::{json, Value as Json};

use super::to_json;
use crate::duties::control::Context;
use crate::tree::messages::{PollerMsg, CALL_TIMEOUT};

pub(super) async fn run(ctx: &Context) -> Result<Json, ErrorBody> {
    let tree = ctx.tree.status().await;
    let upstream = match ctx.peers.poller() {
        Some(poller) => poller
            .actor()
            .call(PollerMsg::Upstream, Some(CALL_TIMEOUT))
            .await
            .ok()
            .and_then(|r| r.success_or(()).ok()),
        None => None,
    };
    let counts = ctx.storage().counts().await;
    Ok(json!({
        "tree": tree,
        "upstream": upstream,
        "storage": match counts { Ok(c) => to_json(&c)?, Err(e) => json!({"error": e.to_string()}) },
    }))
}
