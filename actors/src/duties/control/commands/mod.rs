//! The answers to `opcgw ctl` requests, one file per command (the way mini-redis has one file
//! per command); this file dispatches and holds what they share.

mod command_list;
mod command_send;
mod devices;
mod discover;
mod history;
mod log_level;
mod read;
mod reload;
mod status;

use opcgw::config::DeviceConfig;
use opcgw::control::{ErrorBody, ErrorCode, Request};
use opcgw::storage::StorageErrorKind;
use serde_json::Value as Json;

use super::socket::Caller;
use super::Context;
use crate::tree::messages::StorageFailure;
use crate::tree::storage_client::StorageClient;

/// Answers one authenticated request from `caller`.
pub(super) async fn handle_request(
    request: Request,
    ctx: &Context,
    caller: Caller,
) -> Result<Json, ErrorBody> {
    match request {
        Request::Status => status::run(ctx).await,
        Request::Reload => reload::run(ctx).await,
        Request::Discover => discover::run(ctx).await,
        Request::Devices => devices::run(ctx).await,
        Request::Read { device, metric } => read::run(ctx, device, metric).await,
        Request::History {
            device,
            metric,
            since,
            until,
            limit,
            aggregate,
            interval,
        } => {
            let window = history::Window {
                since: &since,
                until: until.as_deref(),
                limit,
            };
            match aggregate {
                None => history::run(ctx, device, metric, window).await,
                Some(aggregate) => {
                    let interval = interval.as_deref();
                    history::run_aggregate(ctx, device, metric, window, &aggregate, interval).await
                }
            }
        }
        Request::CommandSend {
            device,
            command,
            value,
        } => command_send::run(ctx, caller, device, command, value).await,
        Request::CommandList { device, limit } => command_list::run(ctx, device, limit).await,
        Request::LogLevel { filter } => log_level::run(ctx, caller, filter),
    }
}

impl Context {
    fn storage(&self) -> StorageClient {
        StorageClient::from_peers(&self.peers)
    }

    /// The configured device `device`, or the `bad_request` that names the field.
    fn device(&self, device: &str) -> Result<&DeviceConfig, ErrorBody> {
        self.config
            .devices()
            .find(|(_, d)| d.device_id == device)
            .map(|(_, config)| config)
            .ok_or_else(|| {
                ErrorBody::bad_request(format!("field `device`: unknown device {device:?}"))
            })
    }
}

fn storage_error(failure: StorageFailure) -> ErrorBody {
    match &failure {
        StorageFailure::Unavailable(_) => {
            ErrorBody::new(ErrorCode::Unavailable, failure.to_string())
        }
        StorageFailure::Store {
            kind: StorageErrorKind::UnknownSeries | StorageErrorKind::InvalidQuery,
            ..
        } => ErrorBody::bad_request(failure.to_string()),
        // Busy, like OPC UA's BadResourceUnavailable: the same command works once the device's
        // queue drains.
        StorageFailure::Store {
            kind: StorageErrorKind::CommandQueueFull,
            ..
        } => ErrorBody::new(ErrorCode::Unavailable, failure.to_string()),
        StorageFailure::Store { .. } => ErrorBody::new(ErrorCode::Internal, failure.to_string()),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Json, ErrorBody> {
    serde_json::to_value(value).map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))
}
