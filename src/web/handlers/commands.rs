//! `GET /api/commands` and `POST /api/devices/{device_id}/commands/{command}`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::commands::{prepare, CommandRejection, CommandState};
use crate::model::{MetricType, Value};
use crate::storage::CommandFilter;
use crate::web::auth::Principal;
use crate::web::error::ApiError;
use crate::web::idempotency::Accepted;
use crate::web::json::ApiJson;
use crate::web::views::CommandView;
use crate::web::WebState;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    device: Option<String>,
    state: Option<String>,
    limit: Option<String>,
}

fn parse_state(text: &str) -> Option<CommandState> {
    [
        CommandState::Queued,
        CommandState::Sent,
        CommandState::Acknowledged,
        CommandState::Failed,
        CommandState::Expired,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}

pub async fn list(
    State(state): State<WebState>,
    Query(params): Query<ListParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be 1-1000").with_field("limit"))?,
    };
    let states = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|text| {
            text.split(',')
                .map(|s| {
                    parse_state(s.trim()).ok_or_else(|| {
                        ApiError::bad_request(
                            "state must be queued, sent, acknowledged, failed or expired",
                        )
                        .with_field("state")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let filter = CommandFilter {
        device_id: params.device.filter(|d| !d.is_empty()),
        states,
        limit,
    };
    let records = state
        .backend()
        .commands(filter)
        .await
        .map_err(|e| ApiError::from_backend("commands", e))?;
    let commands: Vec<CommandView> = records.iter().map(CommandView::from).collect();
    Ok(Json(json!({ "commands": commands })))
}

#[derive(Debug, Deserialize)]
pub struct SendBody {
    value: serde_json::Value,
    idempotency_key: Option<String>,
}

/// The JSON value as the command's type, strictly: no string to number, no fraction to Int.
fn typed_value(value: &serde_json::Value, command_type: MetricType) -> Result<Value, String> {
    match (command_type, value) {
        (MetricType::Float, serde_json::Value::Number(n)) => n
            .as_f64()
            .map(Value::Float)
            .ok_or_else(|| "not a number".to_string()),
        (MetricType::Int, serde_json::Value::Number(n)) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| "not a whole number in the 64-bit range".to_string()),
        (MetricType::Bool, serde_json::Value::Bool(b)) => Ok(Value::Bool(*b)),
        (MetricType::String, serde_json::Value::String(s)) => Ok(Value::String(s.clone())),
        (expected, _) => Err(format!("expected a JSON {}", json_kind(expected))),
    }
}

fn json_kind(t: MetricType) -> &'static str {
    match t {
        MetricType::Float => "number",
        MetricType::Int => "integer",
        MetricType::Bool => "boolean",
        MetricType::String => "string",
    }
}

fn valid_key(key: &str) -> bool {
    (8..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn send(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    Path((device_id, command_name)): Path<(String, String)>,
    ApiJson(body): ApiJson<SendBody>,
) -> Response {
    let config = state.backend().config();
    let prepared = prepare(
        &config,
        &device_id,
        &command_name,
        &|t: MetricType| typed_value(&body.value, t),
        format!("web:{}", principal.user()),
    );
    let command = match prepared {
        Ok(command) => command,
        Err(
            rejection @ (CommandRejection::UnknownDevice { .. }
            | CommandRejection::UnknownCommand { .. }),
        ) => {
            return ApiError::not_found(rejection.to_string())
                .with_field(rejection.field())
                .into_response();
        }
        Err(rejection) => {
            return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, rejection.to_string())
                .with_field(rejection.field())
                .into_response();
        }
    };
    let Some(key) = body.idempotency_key.filter(|k| valid_key(k)) else {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key must be 8-64 visible ASCII characters",
        )
        .with_field("idempotency_key")
        .into_response();
    };
    let outcome = state
        .idempotency()
        .run(&device_id, &command_name, &key, || async {
            let record = state.backend().enqueue_command(command).await?;
            Ok(Accepted {
                id: record.id,
                state: record.state,
            })
        })
        .await;
    match outcome {
        Ok((accepted, _)) => (
            StatusCode::ACCEPTED,
            Json(json!({"id": accepted.id, "state": accepted.state})),
        )
            .into_response(),
        Err(error) => ApiError::from_backend("command", error).into_response(),
    }
}
