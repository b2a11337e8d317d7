//! `api.DeviceProfileService`: the one device profile every simulated device uses (Get), with
//! the measurements a ChirpStack profile declares for the metric catalogue.

use std::collections::HashMap;

use chirpstack_api::api::device_profile_service_server::DeviceProfileService;
use chirpstack_api::api::{self, Measurement};
use tonic::{Request, Response, Status};

use super::rpc::{created_at, not_simulated, require_uuid, Service};
use super::world::{World, DEVICE_PROFILE_ID, DEVICE_PROFILE_NAME};
use crate::config::MetricType;

/// A measurement the profile declares with kind UNKNOWN (ChirpStack does not track it), so
/// discovery's handling of one is exercised.
pub const UNTRACKED_MEASUREMENT: &str = "debug_info";

/// The measurements of the simulator's profile, as ChirpStack would have them: gauges and
/// counters by their kind, and true/false and text values as STRING (the kind ChirpStack
/// documents for them).
fn measurements(world: &World) -> HashMap<String, Measurement> {
    use super::world::MeasurementKind as Sim;
    use api::MeasurementKind as Cs;
    let mut out: HashMap<String, Measurement> = world
        .metrics
        .iter()
        .map(|m| {
            let kind = match (m.kind, m.metric_type) {
                (_, MetricType::Bool | MetricType::String) | (Sim::State, _) => Cs::String,
                (Sim::Counter, _) => Cs::Counter,
                (Sim::Gauge, _) => Cs::Gauge,
            };
            let measurement = Measurement {
                name: m.name.replace('_', " "),
                kind: kind as i32,
            };
            (m.name.clone(), measurement)
        })
        .collect();
    out.insert(
        UNTRACKED_MEASUREMENT.into(),
        Measurement {
            name: "Debug info".into(),
            kind: Cs::Unknown as i32,
        },
    );
    out
}

#[tonic::async_trait]
impl DeviceProfileService for Service {
    async fn get(
        &self,
        request: Request<api::GetDeviceProfileRequest>,
    ) -> Result<Response<api::GetDeviceProfileResponse>, Status> {
        self.admit_unary("DeviceProfileService.Get", &request)
            .await?;
        let id = require_uuid("id", &request.get_ref().id)?;
        if !id.eq_ignore_ascii_case(DEVICE_PROFILE_ID) {
            return Err(Status::not_found(format!(
                "device profile {id} does not exist"
            )));
        }
        let world = &self.state.world;
        Ok(Response::new(api::GetDeviceProfileResponse {
            device_profile: Some(api::DeviceProfile {
                id: DEVICE_PROFILE_ID.into(),
                tenant_id: world.tenant_id.clone(),
                name: DEVICE_PROFILE_NAME.into(),
                measurements: measurements(world),
                auto_detect_measurements: true,
                ..Default::default()
            }),
            created_at: Some(created_at()),
            updated_at: Some(created_at()),
        }))
    }

    not_simulated! { "DeviceProfileService":
        create => "Create" (api::CreateDeviceProfileRequest) -> api::CreateDeviceProfileResponse;
        get_by_profile_id => "GetByProfileId"
            (api::GetDeviceProfileByProfileIdRequest) -> api::GetDeviceProfileByProfileIdResponse;
        update => "Update" (api::UpdateDeviceProfileRequest) -> ();
        delete => "Delete" (api::DeleteDeviceProfileRequest) -> ();
        list => "List" (api::ListDeviceProfilesRequest) -> api::ListDeviceProfilesResponse;
        list_vendors => "ListVendors"
            (api::ListDeviceProfileVendorsRequest) -> api::ListDeviceProfileVendorsResponse;
        get_vendor => "GetVendor"
            (api::GetDeviceProfileVendorRequest) -> api::GetDeviceProfileVendorResponse;
        delete_vendor => "DeleteVendor" (api::DeleteDeviceProfileVendorRequest) -> ();
        list_devices => "ListDevices"
            (api::ListDeviceProfileDevicesRequest) -> api::ListDeviceProfileDevicesResponse;
        get_device => "GetDevice"
            (api::GetDeviceProfileDeviceRequest) -> api::GetDeviceProfileDeviceResponse;
        delete_device => "DeleteDevice" (api::DeleteDeviceProfileDeviceRequest) -> ();
        list_adr_algorithms => "ListAdrAlgorithms"
            (()) -> api::ListDeviceProfileAdrAlgorithmsResponse;
    }
}
