//! The gRPC client of the ChirpStack API: one HTTP/2 connection per client, a bearer-token
//! interceptor, per-call deadlines, pagination, and errors that say what to do.
//!
//! The token lives only in the interceptor's header value; nothing here logs requests or
//! their metadata (no tracing layer on the channel), so it cannot reach a log.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chirpstack_api::api::{
    application_service_client::ApplicationServiceClient,
    device_profile_service_client::DeviceProfileServiceClient,
    device_service_client::DeviceServiceClient, DeviceListItem, DeviceQueueItem,
    EnqueueDeviceQueueItemRequest, GetDeviceLinkMetricsRequest, GetDeviceMetricsRequest,
    GetDeviceProfileRequest, GetDeviceQueueItemsRequest, ListApplicationsRequest,
    ListDevicesRequest, MeasurementKind, StreamDeviceEventsRequest,
};
use chirpstack_api::common::Aggregation;
use tonic::codegen::{http, InterceptedService};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tower::{Service, ServiceExt};

use crate::chirpstack::event_stream::{self, EventStream};
use crate::chirpstack::poll::ChirpstackApi;
use crate::config::Secret;
use crate::model::Timestamp;
use crate::security::sanitize_for_log;

/// The most items a paginated listing collects, whatever the server claims its total is.
pub const MAX_LISTED_ITEMS: usize = 100_000;

/// What a call to ChirpStack can end with, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("ChirpStack is unreachable: {0}")]
    Unavailable(String),
    /// Nothing listens at the server address (the connection was refused): down, not a
    /// passing failure of one call.
    #[error(
        "ChirpStack refused the connection (is it running at chirpstack.server_address?): {0}"
    )]
    Refused(String),
    #[error("ChirpStack rejected the API token (UNAUTHENTICATED); set OPCGW_CHIRPSTACK__API_TOKEN to a valid API key")]
    Unauthenticated,
    #[error("the API token may not do this (PERMISSION_DENIED): {0}")]
    PermissionDenied(String),
    #[error("not found in ChirpStack: {0}")]
    NotFound(String),
    #[error("ChirpStack refused the request (INVALID_ARGUMENT): {0}")]
    InvalidArgument(String),
    #[error("no answer from ChirpStack within {0:?}")]
    Timeout(Duration),
    #[error("ChirpStack error {code}: {message}")]
    Other { code: String, message: String },
    #[error("invalid client settings: {0}")]
    Settings(String),
}

impl UpstreamError {
    pub fn from_status(status: &Status) -> Self {
        let message = sanitize_for_log(status.message(), 200);
        if connection_refused(status) {
            return Self::Refused(message);
        }
        match status.code() {
            Code::Unavailable | Code::Cancelled | Code::Aborted => Self::Unavailable(message),
            Code::DeadlineExceeded => Self::Timeout(Duration::ZERO),
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied(message),
            Code::NotFound => Self::NotFound(message),
            Code::InvalidArgument => Self::InvalidArgument(message),
            code => Self::Other {
                code: format!("{code:?}"),
                message,
            },
        }
    }

    /// The server could not be reached or did not answer (as opposed to answering "no").
    pub fn is_connectivity(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Refused(_) | Self::Timeout(_)
        )
    }

    /// A failure that the same call, made again a moment later, may not meet: the server (or
    /// a proxy before it) answered UNAVAILABLE. Not a refused connection, not a timeout (a
    /// second wait would double the cycle), not an answer.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Whether `status` comes from a refused TCP connection (tonic keeps the transport error as
/// the status's source).
fn connection_refused(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = error.source();
    }
    false
}

/// How to reach ChirpStack.
#[derive(Clone)]
pub struct ClientSettings {
    pub server_address: String,
    pub api_token: Secret,
    /// Deadline of one unary call (and of opening a stream).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl ClientSettings {
    /// The settings `[chirpstack]` gives (connecting waits at most 10 s).
    pub fn from_config(cs: &crate::config::ChirpstackConfig) -> Self {
        Self {
            server_address: cs.server_address.clone(),
            api_token: cs.api_token.clone(),
            request_timeout: Duration::from_secs(cs.request_timeout_seconds),
            connect_timeout: Duration::from_secs(cs.request_timeout_seconds.min(10)),
        }
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("server_address", &self.server_address)
            .field("api_token", &self.api_token)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
struct BearerToken(MetadataValue<Ascii>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, BearerToken>;

/// HTTP/2 receive window of one event stream (see [`ChirpstackClient::new_stream_connection`]).
/// Without it the server may send 64 KiB at once, and the receive buffer grows to hold the
/// largest burst and keeps that size for the life of the stream: ~12 KiB a stream when
/// ChirpStack replays each device's last events at open, 120 MB at 10,000 devices; a 4 KiB
/// window still left 8 KiB buffers (a frame plus the part of an event before it). With 2 KiB
/// a buffer stays at most 4 KiB, and an uplink event (~0.6 KiB for 10 values, 1-2 KiB with
/// several gateways' radio data) still arrives in one frame; a larger one arrives whole in
/// several, a network round trip apart.
pub const STREAM_WINDOW_BYTES: u32 = 2 * 1024;

/// A ChirpStack API client over one (lazily connected, self-reconnecting) HTTP/2 connection.
#[derive(Clone)]
pub struct ChirpstackClient {
    settings: ClientSettings,
    channel: Channel,
    auth: BearerToken,
}

/// One application of the tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationSummary {
    pub id: String,
    pub name: String,
}

/// One device as listed: enough to know it exists and how it is doing.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSummary {
    pub dev_eui: String,
    pub name: String,
    pub last_seen: Option<Timestamp>,
    pub margin: Option<i32>,
    pub battery_level: Option<f32>,
    pub external_power_source: bool,
    /// Link quality around the last uplink (`GetLinkMetrics`, read every few poll cycles):
    /// the average gateway RSSI (dBm) and SNR (dB) of that bucket.
    pub rssi: Option<f32>,
    pub snr: Option<f32>,
}

/// One device as discovery sees it: who it is and which device profile describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceIdentity {
    pub dev_eui: String,
    pub name: String,
    pub device_profile_id: String,
}

/// The measurements a device profile declares: key -> kind, in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileMeasurements {
    pub id: String,
    pub name: String,
    pub measurements: Vec<(String, MeasurementKind)>,
}

/// One item of a device's downlink queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub id: String,
    pub f_port: u32,
    pub confirmed: bool,
    /// Sent and waiting for an acknowledgement.
    pub is_pending: bool,
    pub expires_at: Option<Timestamp>,
}

/// One measurement of `GetMetrics`: aggregated buckets, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricBuckets {
    pub name: String,
    /// `(bucket start, aggregated value)`.
    pub buckets: Vec<(Timestamp, f32)>,
}

impl ChirpstackClient {
    /// A client for `settings`; connects on first use and reconnects by itself.
    pub fn new(settings: ClientSettings) -> Result<Self, UpstreamError> {
        Self::connect(settings, None)
    }

    fn connect(
        settings: ClientSettings,
        stream_window: Option<u32>,
    ) -> Result<Self, UpstreamError> {
        let header = MetadataValue::try_from(format!("Bearer {}", settings.api_token.expose()))
            .map_err(|_| {
                UpstreamError::Settings(
                    "the API token contains characters not allowed in an HTTP header".into(),
                )
            })?;
        let endpoint = Endpoint::from_shared(settings.server_address.clone())
            .map_err(|_| {
                UpstreamError::Settings(format!(
                    "invalid server address {}",
                    settings.server_address
                ))
            })?
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .initial_stream_window_size(stream_window);
        Ok(Self {
            channel: endpoint.connect_lazy(),
            auth: BearerToken(header),
            settings,
        })
    }

    /// Another client with the same settings on its own HTTP/2 connection (for stream pools:
    /// servers cap concurrent streams per connection).
    pub fn new_connection(&self) -> Result<Self, UpstreamError> {
        Self::new(self.settings.clone())
    }

    /// A connection for event streams only: each stream's HTTP/2 receive window is
    /// [`STREAM_WINDOW_BYTES`], so a burst (the events ChirpStack replays when a stream
    /// opens) arrives in small frames and no stream's receive buffer grows past a few KiB.
    pub fn new_stream_connection(&self) -> Result<Self, UpstreamError> {
        Self::connect(self.settings.clone(), Some(STREAM_WINDOW_BYTES))
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    fn devices(&self) -> DeviceServiceClient<Authed> {
        DeviceServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    fn device_profiles(&self) -> DeviceProfileServiceClient<Authed> {
        DeviceProfileServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    fn applications(&self) -> ApplicationServiceClient<Authed> {
        ApplicationServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Runs one call under the per-call deadline (sent as `grpc-timeout` and enforced here).
    async fn unary<T, F>(&self, call: F) -> Result<T, UpstreamError>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let timeout = self.settings.request_timeout;
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(match UpstreamError::from_status(&status) {
                UpstreamError::Timeout(_) => UpstreamError::Timeout(timeout),
                other => other,
            }),
            Err(_) => Err(UpstreamError::Timeout(timeout)),
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.settings.request_timeout);
        request
    }

    /// One page of the applications of `tenant_id`, with the total the server claims.
    pub async fn list_applications_page(
        &self,
        tenant_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<ApplicationSummary>), UpstreamError> {
        let request = ListApplicationsRequest {
            limit,
            offset,
            tenant_id: tenant_id.to_string(),
            ..Default::default()
        };
        let page = self
            .unary(self.applications().list(self.request(request)))
            .await?;
        let items = page
            .result
            .into_iter()
            .map(|a| ApplicationSummary {
                id: a.id,
                name: a.name,
            })
            .collect();
        Ok((page.total_count, items))
    }

    /// One page of the devices of `application_id`, each item turned into a `T` by `item`,
    /// with the total the server claims.
    async fn list_devices_as<T>(
        &self,
        application_id: &str,
        limit: u32,
        offset: u32,
        item: impl FnMut(DeviceListItem) -> T,
    ) -> Result<(u32, Vec<T>), UpstreamError> {
        let request = ListDevicesRequest {
            limit,
            offset,
            application_id: application_id.to_string(),
            ..Default::default()
        };
        let page = self
            .unary(self.devices().list(self.request(request)))
            .await?;
        Ok((
            page.total_count,
            page.result.into_iter().map(item).collect(),
        ))
    }

    /// One page of the devices of `application_id`, with the total the server claims.
    pub async fn list_devices_page(
        &self,
        application_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<DeviceSummary>), UpstreamError> {
        self.list_devices_as(application_id, limit, offset, |d| DeviceSummary {
            rssi: None,
            snr: None,
            last_seen: d.last_seen_at.as_ref().and_then(Timestamp::from_prost),
            margin: d.device_status.as_ref().map(|s| s.margin),
            battery_level: d
                .device_status
                .as_ref()
                .map(|s| s.battery_level)
                .filter(|b| b.is_finite() && *b >= 0.0),
            external_power_source: d
                .device_status
                .as_ref()
                .is_some_and(|s| s.external_power_source),
            dev_eui: d.dev_eui,
            name: d.name,
        })
        .await
    }

    /// One page of the devices of `application_id` with their device profiles (discovery).
    pub async fn list_device_identities_page(
        &self,
        application_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<DeviceIdentity>), UpstreamError> {
        self.list_devices_as(application_id, limit, offset, |d| DeviceIdentity {
            dev_eui: d.dev_eui,
            name: d.name,
            device_profile_id: d.device_profile_id,
        })
        .await
    }

    /// The measurements device profile `id` declares (an unknown kind is kept as `Unknown`
    /// for the caller to skip and say so).
    pub async fn get_device_profile(&self, id: &str) -> Result<ProfileMeasurements, UpstreamError> {
        let request = GetDeviceProfileRequest { id: id.to_string() };
        let response = self
            .unary(self.device_profiles().get(self.request(request)))
            .await?;
        let profile = response.device_profile.unwrap_or_default();
        let mut measurements: Vec<(String, MeasurementKind)> = profile
            .measurements
            .into_iter()
            .map(|(key, m)| {
                let kind = MeasurementKind::try_from(m.kind).unwrap_or(MeasurementKind::Unknown);
                (key, kind)
            })
            .collect();
        measurements.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ProfileMeasurements {
            id: id.to_string(),
            name: profile.name,
            measurements,
        })
    }

    /// Aggregated measurements of a device in `[start, end)`.
    pub async fn get_metrics(
        &self,
        dev_eui: &str,
        start: Timestamp,
        end: Timestamp,
        aggregation: Aggregation,
    ) -> Result<BTreeMap<String, MetricBuckets>, UpstreamError> {
        let request = GetDeviceMetricsRequest {
            dev_eui: dev_eui.to_string(),
            start: Some(start.to_prost()),
            end: Some(end.to_prost()),
            aggregation: aggregation as i32,
        };
        let response = self
            .unary(self.devices().get_metrics(self.request(request)))
            .await?;
        Ok(response
            .metrics
            .into_iter()
            .map(|(key, metric)| {
                let data = metric
                    .datasets
                    .first()
                    .map(|d| d.data.as_slice())
                    .unwrap_or_default();
                let buckets = metric
                    .timestamps
                    .iter()
                    .zip(data)
                    .filter_map(|(ts, value)| Some((Timestamp::from_prost(ts)?, *value)))
                    .collect();
                (key.clone(), MetricBuckets { name: key, buckets })
            })
            .collect())
    }

    /// Gateway RSSI and SNR of a device in `[start, end)`, per bucket.
    pub async fn get_link_metrics(
        &self,
        dev_eui: &str,
        start: Timestamp,
        end: Timestamp,
        aggregation: Aggregation,
    ) -> Result<(MetricBuckets, MetricBuckets), UpstreamError> {
        let request = GetDeviceLinkMetricsRequest {
            dev_eui: dev_eui.to_string(),
            start: Some(start.to_prost()),
            end: Some(end.to_prost()),
            aggregation: aggregation as i32,
        };
        let response = self
            .unary(self.devices().get_link_metrics(self.request(request)))
            .await?;
        let buckets = |metric: Option<chirpstack_api::common::Metric>, name: &str| {
            let metric = metric.unwrap_or_default();
            let data = metric
                .datasets
                .first()
                .map(|d| d.data.clone())
                .unwrap_or_default();
            let buckets = metric
                .timestamps
                .iter()
                .zip(data)
                .filter_map(|(ts, value)| Some((Timestamp::from_prost(ts)?, value)))
                .collect();
            MetricBuckets {
                name: name.to_string(),
                buckets,
            }
        };
        Ok((
            buckets(response.gw_rssi, "gw_rssi"),
            buckets(response.gw_snr, "gw_snr"),
        ))
    }

    /// Queues a downlink; returns ChirpStack's queue item id.
    pub async fn enqueue(
        &self,
        dev_eui: &str,
        f_port: u32,
        confirmed: bool,
        data: Vec<u8>,
    ) -> Result<String, UpstreamError> {
        let item = DeviceQueueItem {
            dev_eui: dev_eui.to_string(),
            f_port,
            confirmed,
            data,
            ..Default::default()
        };
        let request = EnqueueDeviceQueueItemRequest {
            queue_item: Some(item),
            flush_queue: false,
        };
        Ok(self
            .unary(self.devices().enqueue(self.request(request)))
            .await?
            .id)
    }

    /// The device's downlink queue.
    pub async fn get_queue(&self, dev_eui: &str) -> Result<Vec<QueueItem>, UpstreamError> {
        let request = GetDeviceQueueItemsRequest {
            dev_eui: dev_eui.to_string(),
            count_only: false,
        };
        let response = self
            .unary(self.devices().get_queue(self.request(request)))
            .await?;
        Ok(response
            .result
            .into_iter()
            .map(|q| QueueItem {
                id: q.id,
                f_port: q.f_port,
                confirmed: q.confirmed,
                is_pending: q.is_pending,
                expires_at: q.expires_at.as_ref().and_then(Timestamp::from_prost),
            })
            .collect())
    }

    /// Opens the event stream of one device (the open itself is under the call deadline; the
    /// stream then lives until either side ends it).
    pub async fn stream_device_events(&self, dev_eui: &str) -> Result<EventStream, UpstreamError> {
        let body = event_stream::framed(&StreamDeviceEventsRequest {
            dev_eui: dev_eui.to_string(),
        });
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri("/api.InternalService/StreamDeviceEvents")
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .header(http::header::AUTHORIZATION, self.auth.0.as_encoded_bytes())
            .body(tonic::body::Body::new(http_body_util::Full::new(
                hyper::body::Bytes::from(body),
            )))
            .map_err(|e| UpstreamError::Settings(format!("an event stream request: {e}")))?;
        // The channel adds the server's scheme and authority; the answer's body is read by
        // `EventStream`, which keeps no buffer between events (tonic's reader would).
        let mut channel = self.channel.clone();
        let call = async move {
            channel.ready().await.map_err(|e| {
                Status::unavailable(format!("the ChirpStack connection is not ready: {e}"))
            })?;
            let response = channel
                .call(request)
                .await
                .map_err(|e| Status::from_error(Box::new(e)))?;
            EventStream::from_response(response).map(tonic::Response::new)
        };
        self.unary(call).await
    }
}

/// The poll cycle's calls, answered by this client.
#[async_trait]
impl ChirpstackApi for ChirpstackClient {
    async fn list_applications_page(
        &self,
        tenant_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<ApplicationSummary>), UpstreamError> {
        ChirpstackClient::list_applications_page(self, tenant_id, limit, offset).await
    }

    async fn list_devices_page(
        &self,
        application_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<DeviceSummary>), UpstreamError> {
        ChirpstackClient::list_devices_page(self, application_id, limit, offset).await
    }

    async fn get_metrics(
        &self,
        dev_eui: &str,
        start: Timestamp,
        end: Timestamp,
        aggregation: Aggregation,
    ) -> Result<BTreeMap<String, MetricBuckets>, UpstreamError> {
        ChirpstackClient::get_metrics(self, dev_eui, start, end, aggregation).await
    }

    async fn get_link_metrics(
        &self,
        dev_eui: &str,
        start: Timestamp,
        end: Timestamp,
        aggregation: Aggregation,
    ) -> Result<(MetricBuckets, MetricBuckets), UpstreamError> {
        ChirpstackClient::get_link_metrics(self, dev_eui, start, end, aggregation).await
    }

    async fn get_queue(&self, dev_eui: &str) -> Result<Vec<QueueItem>, UpstreamError> {
        ChirpstackClient::get_queue(self, dev_eui).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_actionable_errors_without_the_token() {
        let err = UpstreamError::from_status(&Status::unauthenticated("bad token abc"));
        assert_eq!(err, UpstreamError::Unauthenticated);
        assert!(err.to_string().contains("OPCGW_CHIRPSTACK__API_TOKEN"));
        assert!(UpstreamError::from_status(&Status::unavailable("refused")).is_connectivity());
        assert!(!UpstreamError::from_status(&Status::not_found("x")).is_connectivity());
    }

    /// A port nothing listens on: the call fails as `Refused` (down at once), not as the
    /// `Unavailable` a server answers with (a passing failure, retried).
    #[tokio::test]
    async fn a_refused_connection_is_told_apart_from_an_unavailable_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let client = ChirpstackClient::new(ClientSettings {
            server_address: format!("http://{address}"),
            api_token: Secret::new("test-token-0123456789"),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        })
        .unwrap();
        let error = client.get_queue("0000000000000001").await.unwrap_err();
        assert!(matches!(error, UpstreamError::Refused(_)), "{error:?}");
        assert!(error.is_connectivity() && !error.is_transient());
        let answered = UpstreamError::from_status(&Status::unavailable("try again"));
        assert!(answered.is_transient(), "{answered:?}");
    }

    /// Events larger than the stream's receive window arrive whole, in order: the replayed
    /// burst at open, then live ones; after the last, the stream holds no buffer.
    #[tokio::test]
    async fn an_event_stream_carries_events_larger_than_its_window() {
        use crate::chirpstack::simulator::{Simulator, SimulatorConfig};
        let token = "stream-buffer-token-1234";
        let sim = Simulator::start(
            SimulatorConfig {
                api_token: token.into(),
                uplink_interval: Duration::ZERO,
                metrics_per_device: 200,
                ..SimulatorConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let dev_eui = sim.world().applications[0].devices[0].dev_eui.clone();
        let client = ChirpstackClient::new(ClientSettings {
            server_address: sim.url(),
            api_token: Secret::new(token),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        })
        .unwrap();
        // Ten events wait to be replayed when the stream opens (a burst of ~50 KiB).
        for _ in 0..10 {
            sim.emit_uplink_now(&dev_eui);
        }
        let client = client.new_stream_connection().unwrap();
        let mut stream = client.stream_device_events(&dev_eui).await.unwrap();
        for f_cnt in 1..=13 {
            if f_cnt > 10 {
                sim.emit_uplink_now(&dev_eui);
            }
            let item = tokio::time::timeout(Duration::from_secs(5), stream.message())
                .await
                .expect("an event in time")
                .expect("no stream error")
                .expect("the stream is open");
            assert!(
                item.body.len() > 2 * STREAM_WINDOW_BYTES as usize,
                "the event should span several windows: {} bytes",
                item.body.len()
            );
            let body: serde_json::Value = serde_json::from_str(&item.body).unwrap();
            assert_eq!(body["fCnt"], f_cnt, "events arrive whole and in order");
            if f_cnt > 10 {
                assert_eq!(
                    stream.pending_capacity(),
                    0,
                    "no buffer kept between live events"
                );
            }
        }
    }

    #[test]
    fn settings_debug_hides_the_token() {
        let settings = ClientSettings {
            server_address: "http://127.0.0.1:1".into(),
            api_token: Secret::new("super-secret-token"),
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{settings:?}").contains("super-secret-token"));
    }
}
