//! `ctl history`: stored values of one metric in a time window, or one aggregate of them per
//! interval (`--aggregate average --interval 1h`).

use opcgw::control::{history_window, parse_interval_arg, ErrorBody, DEFAULT_HISTORY_LIMIT};
use opcgw::model::Timestamp;
use opcgw::storage::{
    Aggregate, AggregateConfig, HistoryQuery, Interpolation, IntervalPlan, ProcessedQuery,
};
use serde_json::{json, Value as Json};

use super::{storage_error, to_json};
use crate::duties::control::Context;

pub(super) async fn run(
    ctx: &Context,
    device: String,
    metric: String,
    window: Window<'_>,
) -> Result<Json, ErrorBody> {
    let (start, end) = history_window(window.since, window.until, Timestamp::now())?;
    let query = HistoryQuery {
        device_id: device,
        metric,
        start,
        end,
        limit: window.limit.unwrap_or(DEFAULT_HISTORY_LIMIT),
        reverse: false,
        resume: None,
    };
    let page = ctx.storage().history(query).await.map_err(storage_error)?;
    Ok(json!({ "rows": to_json(&page.rows)?, "more": page.resume.is_some() }))
}

/// The window and page of a `ctl history` request.
pub(super) struct Window<'a> {
    pub since: &'a str,
    pub until: Option<&'a str>,
    pub limit: Option<usize>,
}

/// `ctl history --aggregate`: one OPC UA Part 13 aggregate per processing interval of the
/// window, computed in storage (the server's default aggregate configuration); at most
/// `limit` intervals.
pub(super) async fn run_aggregate(
    ctx: &Context,
    device: String,
    metric: String,
    window: Window<'_>,
    aggregate: &str,
    interval: Option<&str>,
) -> Result<Json, ErrorBody> {
    let aggregate = Aggregate::from_name(aggregate).ok_or_else(|| {
        ErrorBody::bad_request(format!("field `aggregate`: unknown {aggregate:?}"))
    })?;
    let interval = match interval {
        None => 0,
        Some(text) => parse_interval_arg(text)
            .map_err(|message| ErrorBody::bad_request(format!("field `interval`: {message}")))?,
    };
    let (start, end) = history_window(window.since, window.until, Timestamp::now())?;
    if start == end {
        return Ok(json!({ "rows": [], "more": false }));
    }
    let metric_type = ctx
        .device(&device)?
        .metrics
        .iter()
        .find(|m| m.metric_name == metric)
        .map(|m| m.metric_type)
        .ok_or_else(|| {
            ErrorBody::bad_request(format!("field `metric`: unknown metric {metric:?}"))
        })?;
    if !aggregate.applies_to(metric_type) {
        return Err(ErrorBody::bad_request(format!(
            "field `aggregate`: {} needs numbers; {metric} is a {metric_type:?}",
            aggregate.name()
        )));
    }
    let query = ProcessedQuery {
        device_id: device,
        metric,
        plan: IntervalPlan {
            start,
            end,
            interval,
        },
        first_interval: 0,
        max_intervals: window.limit.unwrap_or(DEFAULT_HISTORY_LIMIT),
        aggregates: vec![aggregate],
        config: AggregateConfig::default(),
        interpolation: Interpolation::of(metric_type),
    };
    let page = ctx
        .storage()
        .processed(query)
        .await
        .map_err(storage_error)?;
    let rows: Vec<Json> = page
        .values
        .into_iter()
        .next()
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            json!({
                "time": v.time,
                "value": v.value,
                "quality": v.quality,
                "origin": v.origin,
                "partial": v.partial,
            })
        })
        .collect();
    Ok(json!({ "rows": rows, "more": page.next_interval.is_some() }))
}
