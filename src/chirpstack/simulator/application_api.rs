//! `api.ApplicationService`: the tenant's applications (List, Get).

use std::collections::HashMap;

use chirpstack_api::api::application_service_server::ApplicationService;
use chirpstack_api::api::{self, ApplicationListItem};
use tonic::{Request, Response, Status};

use super::rpc::{count, created_at, matches_search, not_simulated, page, require_uuid, Service};

const APPLICATION_DESCRIPTION: &str = "Synthetic application of the opcgw ChirpStack simulator";

#[tonic::async_trait]
impl ApplicationService for Service {
    async fn list(
        &self,
        request: Request<api::ListApplicationsRequest>,
    ) -> Result<Response<api::ListApplicationsResponse>, Status> {
        self.admit_unary("ApplicationService.List", &request)
            .await?;
        let req = request.into_inner();
        let world = &self.state.world;
        let tenant_id = require_uuid("tenant_id", &req.tenant_id)?;
        if !tenant_id.eq_ignore_ascii_case(&world.tenant_id) {
            return Err(Status::not_found(format!(
                "tenant {tenant_id} does not exist"
            )));
        }
        let matching: Vec<_> = world
            .applications
            .iter()
            .filter(|app| matches_search(&app.name, &req.search))
            .collect();
        let result = matching[page(matching.len(), req.limit, req.offset)]
            .iter()
            .map(|app| ApplicationListItem {
                id: app.id.clone(),
                created_at: Some(created_at()),
                updated_at: Some(created_at()),
                name: app.name.clone(),
                description: APPLICATION_DESCRIPTION.into(),
            })
            .collect();
        Ok(Response::new(api::ListApplicationsResponse {
            total_count: count(matching.len()),
            result,
        }))
    }

    async fn get(
        &self,
        request: Request<api::GetApplicationRequest>,
    ) -> Result<Response<api::GetApplicationResponse>, Status> {
        self.admit_unary("ApplicationService.Get", &request).await?;
        let world = &self.state.world;
        let id = require_uuid("id", &request.get_ref().id)?;
        let app = world
            .application(id)
            .ok_or_else(|| Status::not_found(format!("application {id} does not exist")))?;
        Ok(Response::new(api::GetApplicationResponse {
            application: Some(api::Application {
                id: app.id.clone(),
                name: app.name.clone(),
                description: APPLICATION_DESCRIPTION.into(),
                tenant_id: world.tenant_id.clone(),
                tags: HashMap::new(),
            }),
            created_at: Some(created_at()),
            updated_at: Some(created_at()),
            measurement_keys: world
                .metrics
                .iter()
                .filter(|m| m.is_recorded())
                .map(|m| m.name.clone())
                .collect(),
        }))
    }

    not_simulated! { "ApplicationService":
        create => "Create" (api::CreateApplicationRequest) -> api::CreateApplicationResponse;
        update => "Update" (api::UpdateApplicationRequest) -> ();
        delete => "Delete" (api::DeleteApplicationRequest) -> ();
        list_integrations => "ListIntegrations"
            (api::ListIntegrationsRequest) -> api::ListIntegrationsResponse;
        create_http_integration => "CreateHttpIntegration"
            (api::CreateHttpIntegrationRequest) -> ();
        get_http_integration => "GetHttpIntegration"
            (api::GetHttpIntegrationRequest) -> api::GetHttpIntegrationResponse;
        update_http_integration => "UpdateHttpIntegration"
            (api::UpdateHttpIntegrationRequest) -> ();
        delete_http_integration => "DeleteHttpIntegration"
            (api::DeleteHttpIntegrationRequest) -> ();
        create_influx_db_integration => "CreateInfluxDbIntegration"
            (api::CreateInfluxDbIntegrationRequest) -> ();
        get_influx_db_integration => "GetInfluxDbIntegration"
            (api::GetInfluxDbIntegrationRequest) -> api::GetInfluxDbIntegrationResponse;
        update_influx_db_integration => "UpdateInfluxDbIntegration"
            (api::UpdateInfluxDbIntegrationRequest) -> ();
        delete_influx_db_integration => "DeleteInfluxDbIntegration"
            (api::DeleteInfluxDbIntegrationRequest) -> ();
        create_things_board_integration => "CreateThingsBoardIntegration"
            (api::CreateThingsBoardIntegrationRequest) -> ();
        get_things_board_integration => "GetThingsBoardIntegration"
            (api::GetThingsBoardIntegrationRequest) -> api::GetThingsBoardIntegrationResponse;
        update_things_board_integration => "UpdateThingsBoardIntegration"
            (api::UpdateThingsBoardIntegrationRequest) -> ();
        delete_things_board_integration => "DeleteThingsBoardIntegration"
            (api::DeleteThingsBoardIntegrationRequest) -> ();
        create_my_devices_integration => "CreateMyDevicesIntegration"
            (api::CreateMyDevicesIntegrationRequest) -> ();
        get_my_devices_integration => "GetMyDevicesIntegration"
            (api::GetMyDevicesIntegrationRequest) -> api::GetMyDevicesIntegrationResponse;
        update_my_devices_integration => "UpdateMyDevicesIntegration"
            (api::UpdateMyDevicesIntegrationRequest) -> ();
        delete_my_devices_integration => "DeleteMyDevicesIntegration"
            (api::DeleteMyDevicesIntegrationRequest) -> ();
        create_gcp_pub_sub_integration => "CreateGcpPubSubIntegration"
            (api::CreateGcpPubSubIntegrationRequest) -> ();
        get_gcp_pub_sub_integration => "GetGcpPubSubIntegration"
            (api::GetGcpPubSubIntegrationRequest) -> api::GetGcpPubSubIntegrationResponse;
        update_gcp_pub_sub_integration => "UpdateGcpPubSubIntegration"
            (api::UpdateGcpPubSubIntegrationRequest) -> ();
        delete_gcp_pub_sub_integration => "DeleteGcpPubSubIntegration"
            (api::DeleteGcpPubSubIntegrationRequest) -> ();
        create_aws_sns_integration => "CreateAwsSnsIntegration"
            (api::CreateAwsSnsIntegrationRequest) -> ();
        get_aws_sns_integration => "GetAwsSnsIntegration"
            (api::GetAwsSnsIntegrationRequest) -> api::GetAwsSnsIntegrationResponse;
        update_aws_sns_integration => "UpdateAwsSnsIntegration"
            (api::UpdateAwsSnsIntegrationRequest) -> ();
        delete_aws_sns_integration => "DeleteAwsSnsIntegration"
            (api::DeleteAwsSnsIntegrationRequest) -> ();
        create_azure_service_bus_integration => "CreateAzureServiceBusIntegration"
            (api::CreateAzureServiceBusIntegrationRequest) -> ();
        get_azure_service_bus_integration => "GetAzureServiceBusIntegration"
            (api::GetAzureServiceBusIntegrationRequest)
            -> api::GetAzureServiceBusIntegrationResponse;
        update_azure_service_bus_integration => "UpdateAzureServiceBusIntegration"
            (api::UpdateAzureServiceBusIntegrationRequest) -> ();
        delete_azure_service_bus_integration => "DeleteAzureServiceBusIntegration"
            (api::DeleteAzureServiceBusIntegrationRequest) -> ();
        create_pilot_things_integration => "CreatePilotThingsIntegration"
            (api::CreatePilotThingsIntegrationRequest) -> ();
        get_pilot_things_integration => "GetPilotThingsIntegration"
            (api::GetPilotThingsIntegrationRequest) -> api::GetPilotThingsIntegrationResponse;
        update_pilot_things_integration => "UpdatePilotThingsIntegration"
            (api::UpdatePilotThingsIntegrationRequest) -> ();
        delete_pilot_things_integration => "DeletePilotThingsIntegration"
            (api::DeletePilotThingsIntegrationRequest) -> ();
        create_ifttt_integration => "CreateIftttIntegration"
            (api::CreateIftttIntegrationRequest) -> ();
        get_ifttt_integration => "GetIftttIntegration"
            (api::GetIftttIntegrationRequest) -> api::GetIftttIntegrationResponse;
        update_ifttt_integration => "UpdateIftttIntegration"
            (api::UpdateIftttIntegrationRequest) -> ();
        delete_ifttt_integration => "DeleteIftttIntegration"
            (api::DeleteIftttIntegrationRequest) -> ();
        create_blynk_integration => "CreateBlynkIntegration"
            (api::CreateBlynkIntegrationRequest) -> ();
        get_blynk_integration => "GetBlynkIntegration"
            (api::GetBlynkIntegrationRequest) -> api::GetBlynkIntegrationResponse;
        update_blynk_integration => "UpdateBlynkIntegration"
            (api::UpdateBlynkIntegrationRequest) -> ();
        delete_blynk_integration => "DeleteBlynkIntegration"
            (api::DeleteBlynkIntegrationRequest) -> ();
        generate_mqtt_integration_client_certificate => "GenerateMqttIntegrationClientCertificate"
            (api::GenerateMqttIntegrationClientCertificateRequest)
            -> api::GenerateMqttIntegrationClientCertificateResponse;
        list_device_profiles => "ListDeviceProfiles"
            (api::ListApplicationDeviceProfilesRequest)
            -> api::ListApplicationDeviceProfilesResponse;
        list_device_tags => "ListDeviceTags"
            (api::ListApplicationDeviceTagsRequest) -> api::ListApplicationDeviceTagsResponse;
    }
}
