//! `api.InternalService`: `StreamDeviceEvents` (the gateway's live uplink feed) and
//! `GetVersion`; the rest of the internal API is the web console's and not simulated.

use std::pin::Pin;

use chirpstack_api::api::internal_service_server::InternalService;
use chirpstack_api::api::{self, LogItem};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::faults::CallKind;
use super::rpc::{not_simulated, Service};
use super::streams::{forward_device_events, OpenStream, STREAM_BUFFER};

/// The version `GetVersion` reports: the API crate's, marked as simulated.
const VERSION: &str = "4.20.0-opcgw-simulator";

/// What the streaming methods return.
pub(crate) type LogItemStream = Pin<Box<dyn Stream<Item = Result<LogItem, Status>> + Send>>;

#[tonic::async_trait]
impl InternalService for Service {
    type StreamGatewayFramesStream = LogItemStream;
    type StreamDeviceFramesStream = LogItemStream;
    type StreamDeviceEventsStream = LogItemStream;

    async fn stream_device_events(
        &self,
        request: Request<api::StreamDeviceEventsRequest>,
    ) -> Result<Response<LogItemStream>, Status> {
        self.state
            .gate
            .admit(
                "InternalService.StreamDeviceEvents",
                request.metadata(),
                CallKind::Stream,
            )
            .await?;
        let index = self.state.lookup(&request.get_ref().dev_eui)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = OpenStream::register(&self.state, index);
        tokio::spawn(forward_device_events(stream, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_version(
        &self,
        request: Request<()>,
    ) -> Result<Response<api::GetVersionResponse>, Status> {
        self.admit_unary("InternalService.GetVersion", &request)
            .await?;
        Ok(Response::new(api::GetVersionResponse {
            version: VERSION.into(),
        }))
    }

    not_simulated! { "InternalService":
        login => "Login" (api::LoginRequest) -> api::LoginResponse;
        profile => "Profile" (()) -> api::ProfileResponse;
        global_search => "GlobalSearch" (api::GlobalSearchRequest) -> api::GlobalSearchResponse;
        create_api_key => "CreateApiKey" (api::CreateApiKeyRequest) -> api::CreateApiKeyResponse;
        delete_api_key => "DeleteApiKey" (api::DeleteApiKeyRequest) -> ();
        list_api_keys => "ListApiKeys" (api::ListApiKeysRequest) -> api::ListApiKeysResponse;
        settings => "Settings" (()) -> api::SettingsResponse;
        open_id_connect_login => "OpenIdConnectLogin"
            (api::OpenIdConnectLoginRequest) -> api::OpenIdConnectLoginResponse;
        o_auth2_login => "OAuth2Login" (api::OAuth2LoginRequest) -> api::OAuth2LoginResponse;
        get_devices_summary => "GetDevicesSummary"
            (api::GetDevicesSummaryRequest) -> api::GetDevicesSummaryResponse;
        get_gateways_summary => "GetGatewaysSummary"
            (api::GetGatewaysSummaryRequest) -> api::GetGatewaysSummaryResponse;
        stream_gateway_frames => "StreamGatewayFrames"
            (api::StreamGatewayFramesRequest) -> LogItemStream;
        stream_device_frames => "StreamDeviceFrames"
            (api::StreamDeviceFramesRequest) -> LogItemStream;
        list_regions => "ListRegions" (()) -> api::ListRegionsResponse;
        get_region => "GetRegion" (api::GetRegionRequest) -> api::GetRegionResponse;
    }
}
