//! `ctl devices`: every device (configured in the file, or discovered from ChirpStack) with
//! its newest value's time and quality.

use opcgw::control::ErrorBody;
use opcgw::model::Timestamp;
use serde_json::{json, Value as Json};

use crate::duties::control::Context;

pub(super) async fn run(ctx: &Context) -> Result<Json, ErrorBody> {
    let latest = ctx.storage().latest(None).await.unwrap_or_default();
    let now = Timestamp::now();
    let devices: Vec<Json> = ctx
        .config
        .devices()
        .map(|(app, device)| {
            let newest = latest
                .iter()
                .filter(|l| *l.device_id == *device.device_id)
                .map(|l| l.source_time)
                .max();
            json!({
                "application": app.application_name,
                "device_id": device.device_id,
                "device_name": device.device_name,
                "origin": if ctx.config.discovered.contains(&device.device_id) {
                    "discovered"
                } else {
                    "configured"
                },
                "metrics": device.metrics.len(),
                "commands": device.commands.len(),
                "last_value": newest.map(|t| t.to_rfc3339()),
                "quality": ctx.config.staleness_rule(device).quality(newest, now),
            })
        })
        .collect();
    Ok(Json::Array(devices))
}
