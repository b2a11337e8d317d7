//! `ctl history`: stored values of a device (or one metric) in a time window.

use opcgw::control::{history_window, ErrorBody, DEFAULT_HISTORY_LIMIT};
use opcgw::model::Timestamp;
use opcgw::storage::HistoryQuery;
use serde_json::{json, Value as Json};

use super::{storage_error, to_json};
use crate::duties::control::Context;

pub(super) async fn run(
    ctx: &Context,
    device: String,
    metric: String,
    since: &str,
    until: Option<&str>,
    limit: Option<usize>,
) -> Result<Json, ErrorBody> {
    let (start, end) = history_window(since, until, Timestamp::now())?;
    let query = HistoryQuery {
        device_id: device,
        metric,
        start,
        end,
        limit: limit.unwrap_or(DEFAULT_HISTORY_LIMIT),
        reverse: false,
        resume: None,
    };
    let page = ctx.storage().history(query).await.map_err(storage_error)?;
    Ok(json!({ "rows": to_json(&page.rows)?, "more": page.resume.is_some() }))
}
