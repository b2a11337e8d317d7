//! The read routes: health, status, devices, one device, history, audit.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use crate::model::Timestamp;
use crate::web::backend::HistoryRequest;
use crate::web::error::ApiError;
use crate::web::views::{DeviceView, DevicesView, HistoryView, StatusView};
use crate::web::WebState;

/// Default history window.
const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// Longest history window one request may ask for.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);
pub const DEFAULT_MAX_POINTS: usize = 1000;
pub const MAX_POINTS_RANGE: std::ops::RangeInclusive<usize> = 10..=10_000;

pub async fn health() -> Json<Json_> {
    Json(json!({"status": "ok"}))
}

pub async fn status(State(state): State<WebState>) -> Result<Json<StatusView>, ApiError> {
    state
        .backend()
        .status()
        .await
        .map(Json)
        .map_err(|e| ApiError::from_backend("status", e))
}

/// Bytes of JSON per metric in `/api/devices`, a little over what one takes, so the answer
/// (about 2 MB at 10,000 metrics) is written into one allocation instead of growing by doubling.
const DEVICES_BYTES_PER_METRIC: usize = 240;

pub async fn devices(State(state): State<WebState>) -> Result<Response, ApiError> {
    let config = state.backend().config();
    let latest = state
        .backend()
        .latest(None)
        .await
        .map_err(|e| ApiError::from_backend("devices", e))?;
    let view = DevicesView::build(&config, &latest, Timestamp::now());
    let metrics: usize = config.devices().map(|(_, d)| d.metrics.len() + 1).sum();
    let mut body = Vec::with_capacity(1024 + metrics * DEVICES_BYTES_PER_METRIC);
    if let Err(err) = serde_json::to_writer(&mut body, &view) {
        tracing::warn!(event = "api_devices_encode_error", error = %err);
        return Err(ApiError::internal());
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub async fn device(
    State(state): State<WebState>,
    Path(device_id): Path<String>,
) -> Result<Response, ApiError> {
    let config = state.backend().config();
    let Some((app, device)) = config.devices().find(|(_, d)| d.device_id == device_id) else {
        return Err(ApiError::not_found("unknown device"));
    };
    // Only this device's samples: the device page asks often, the fleet may be large.
    let latest = state
        .backend()
        .latest(Some(device_id.clone()))
        .await
        .map_err(|e| ApiError::from_backend("devices", e))?;
    let view = DeviceView::of_device(&config, app, device, &latest, Timestamp::now());
    Ok(Json(view).into_response())
}

#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    from: Option<String>,
    to: Option<String>,
    max_points: Option<String>,
}

/// Unix seconds (fractions allowed) or RFC 3339.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() || seconds.abs() > 1e11 {
            return None;
        }
        return Some(Timestamp::from_micros((seconds * 1e6).round() as i64));
    }
    Timestamp::parse_rfc3339(text)
}

fn time_param(name: &'static str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| {
        parse_time(t).ok_or_else(|| {
            ApiError::bad_request(format!("{name} must be Unix seconds or an RFC 3339 time"))
                .with_field(name)
        })
    })
    .transpose()
}

pub async fn history(
    State(state): State<WebState>,
    Path((device_id, metric)): Path<(String, String)>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<HistoryView>, ApiError> {
    let config = state.backend().config();
    let Some((_, device)) = config.devices().find(|(_, d)| d.device_id == device_id) else {
        return Err(ApiError::not_found("unknown device"));
    };
    if !device.metrics.iter().any(|m| m.metric_name == metric) {
        return Err(ApiError::not_found("the device has no such metric"));
    }
    let to = time_param("to", params.to.as_deref())?.unwrap_or_else(Timestamp::now);
    let from = time_param("from", params.from.as_deref())?
        .unwrap_or_else(|| to.saturating_sub(DEFAULT_WINDOW));
    if from >= to {
        return Err(ApiError::bad_request("from must be before to").with_field("from"));
    }
    if to.as_micros() - from.as_micros() > MAX_WINDOW.as_micros() as i64 {
        return Err(ApiError::bad_request("the window is longer than 366 days").with_field("from"));
    }
    let max_points = match params.max_points.as_deref() {
        None => DEFAULT_MAX_POINTS,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| MAX_POINTS_RANGE.contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("max_points must be 10-10000").with_field("max_points")
            })?,
    };
    let request = HistoryRequest {
        device_id: device_id.clone(),
        metric: metric.clone(),
        from,
        to,
        max_points,
    };
    let points = state
        .backend()
        .history(request)
        .await
        .map_err(|e| ApiError::from_backend("history", e))?;
    Ok(Json(HistoryView::new(device_id, metric, from, to, points)))
}

pub async fn audit(State(state): State<WebState>) -> Json<Json_> {
    Json(json!({"events": state.audit().recent()}))
}
