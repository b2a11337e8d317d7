//! `ctl read`: a device's latest values (or one metric's), with their quality.

use opcgw::control::ErrorBody;
use opcgw::model::Timestamp;
use serde_json::{json, Value as Json};

use super::{storage_error, to_json};
use crate::duties::control::Context;

pub(super) async fn run(
    ctx: &Context,
    device: String,
    metric: Option<String>,
) -> Result<Json, ErrorBody> {
    let config = ctx.device(&device)?;
    if let Some(metric) = &metric {
        if !config.metrics.iter().any(|m| &m.metric_name == metric) {
            return Err(ErrorBody::bad_request(format!(
                "field `metric`: device {device:?} has no metric {metric:?}"
            )));
        }
    }
    let latest = ctx
        .storage()
        .latest(Some(device.clone()))
        .await
        .map_err(storage_error)?;
    let rule = ctx.config.staleness_rule(config);
    let now = Timestamp::now();
    let rows: Vec<Json> = config
        .metrics
        .iter()
        .filter(|m| {
            metric
                .as_ref()
                .is_none_or(|wanted| &m.metric_name == wanted)
        })
        .map(|m| {
            let value = latest.iter().find(|l| *l.metric == *m.metric_name);
            json!({
                "metric": m.metric_name,
                "value": value.map(|v| to_json(&v.value).unwrap_or(Json::Null)),
                "unit": m.metric_unit,
                "source_time": value.map(|v| v.source_time.to_rfc3339()),
                "origin": value.map(|v| v.origin),
                "quality": rule.quality(value.map(|v| v.source_time), now),
            })
        })
        .collect();
    Ok(Json::Array(rows))
}
