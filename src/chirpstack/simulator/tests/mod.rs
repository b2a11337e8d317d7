//! Scenario tests: real gRPC over 127.0.0.1 with the generated ChirpStack clients.

use std::future::Future;
use std::time::Duration;

use chirpstack_api::api::application_service_client::ApplicationServiceClient;
use chirpstack_api::api::device_service_client::DeviceServiceClient;
use chirpstack_api::api::internal_service_client::InternalServiceClient;
use chirpstack_api::api::{LogItem, StreamDeviceEventsRequest};
use tonic::transport::Channel;
use tonic::{Request, Streaming};

use super::{Simulator, SimulatorConfig, SimulatorHandle};
use crate::chirpstack::events::{parse_log_item, DeviceEvent, Uplink};
use crate::model::Value;

mod api;
mod downlinks;
mod faults;
mod metrics;
mod streams;

const TOKEN: &str = "test-token-0123456789";
const WAIT: Duration = Duration::from_secs(5);

/// A small world without scheduled uplinks: tests emit the uplinks they need.
fn config() -> SimulatorConfig {
    SimulatorConfig {
        api_token: TOKEN.into(),
        uplink_interval: Duration::ZERO,
        downlink_ack_delay: Duration::from_millis(20),
        ..SimulatorConfig::default()
    }
}

async fn start(config: SimulatorConfig) -> SimulatorHandle {
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the simulator starts")
}

async fn channel(sim: &SimulatorHandle) -> Channel {
    Channel::from_shared(sim.url())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connects to the simulator")
}

async fn device_client(sim: &SimulatorHandle) -> DeviceServiceClient<Channel> {
    DeviceServiceClient::new(channel(sim).await)
}

async fn application_client(sim: &SimulatorHandle) -> ApplicationServiceClient<Channel> {
    ApplicationServiceClient::new(channel(sim).await)
}

async fn internal_client(sim: &SimulatorHandle) -> InternalServiceClient<Channel> {
    InternalServiceClient::new(channel(sim).await)
}

/// `message` with `authorization: Bearer <token>`.
fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

fn authed<T>(message: T) -> Request<T> {
    with_token(message, TOKEN)
}

fn first_dev_eui(sim: &SimulatorHandle) -> String {
    sim.world().applications[0].devices[0].dev_eui.clone()
}

async fn open_stream(
    client: &mut InternalServiceClient<Channel>,
    dev_eui: &str,
) -> Streaming<LogItem> {
    let request = authed(StreamDeviceEventsRequest {
        dev_eui: dev_eui.to_string(),
    });
    client
        .stream_device_events(request)
        .await
        .expect("the stream opens")
        .into_inner()
}

/// The next item of an event stream; fails the test after [`WAIT`].
async fn next_item(stream: &mut Streaming<LogItem>) -> LogItem {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("an event arrives in time")
        .expect("the stream carries no error")
        .expect("the stream is still open")
}

/// The next event of a stream, parsed by the gateway's own parser.
async fn next_event(stream: &mut Streaming<LogItem>, dev_eui: &str) -> DeviceEvent {
    parse_log_item(dev_eui, &next_item(stream).await).expect("the gateway's parser accepts it")
}

async fn next_uplink(stream: &mut Streaming<LogItem>, dev_eui: &str) -> Uplink {
    match next_event(stream, dev_eui).await {
        DeviceEvent::Uplink(up) => up,
        other => panic!("expected an uplink, got {other:?}"),
    }
}

/// Waits until `condition` holds, polling; fails the test after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a decoded JSON value is exactly the expected model value.
fn json_equals(json: &serde_json::Value, expected: &Value) -> bool {
    match expected {
        Value::Float(v) => json.as_f64() == Some(*v),
        Value::Int(v) => json.as_i64() == Some(*v),
        Value::Bool(v) => json.as_bool() == Some(*v),
        Value::String(v) => json.as_str() == Some(v.as_str()),
    }
}
