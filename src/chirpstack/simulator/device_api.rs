//! `api.DeviceService`: device list and details, measurement and link metrics, downlink queue.

use std::collections::HashMap;

use chirpstack_api::api::device_service_server::DeviceService;
use chirpstack_api::api::{self, DeviceListItem, DeviceStatus};
use chirpstack_api::common::{Aggregation, Metric, MetricDataset, MetricKind};
use tonic::{Request, Response, Status};

use super::metrics::{aggregate, Fold, Series};
use super::rpc::{
    count, created_at, matches_search, not_simulated, page, require_time, require_uuid, Service,
};
use super::world::{
    MeasurementKind, World, BATTERY_METRIC, DEVICE_PROFILE_ID, DEVICE_PROFILE_NAME,
};
use crate::model::Timestamp;

const DEVICE_DESCRIPTION: &str = "Synthetic device of the opcgw ChirpStack simulator";

impl Service {
    /// Link margin, power source and battery as ChirpStack reports them after a DevStatusAns;
    /// `None` until the device has sent its first uplink.
    fn device_status(&self, index: usize, last_seen: Option<Timestamp>) -> Option<DeviceStatus> {
        let last_seen = last_seen?;
        let external_power_source = index % 5 == 4;
        let battery = self
            .state
            .world
            .metrics
            .iter()
            .position(|m| m.name == BATTERY_METRIC)
            .and_then(|m| World::numeric(&self.state.world.value(index, m, last_seen)))
            .unwrap_or(3_300.0);
        Some(DeviceStatus {
            margin: 10 - (index % 8) as i32,
            external_power_source,
            // ChirpStack reports -1 when the level is unknown (external power).
            battery_level: if external_power_source {
                -1.0
            } else {
                ((battery - 3_000.0) / 6.0).clamp(0.0, 100.0).round() as f32
            },
        })
    }

    /// The aggregation of a metrics request; MINUTE only where the simulated server has it.
    fn aggregation(&self, value: i32) -> Result<Aggregation, Status> {
        // Like ChirpStack (prost's getter), an unknown value means the default, HOUR.
        let aggregation = Aggregation::try_from(value).unwrap_or_default();
        if aggregation == Aggregation::Minute && !self.state.config.supports_minute_aggregation {
            return Err(Status::invalid_argument(
                "aggregation MINUTE is not supported by this server version",
            ));
        }
        Ok(aggregation)
    }

    /// What every metrics request starts with: the device, the `[start, end)` range and the
    /// aggregation, each refused like ChirpStack refuses it.
    fn metrics_window(
        &self,
        dev_eui: &str,
        start: Option<&prost_types::Timestamp>,
        end: Option<&prost_types::Timestamp>,
        aggregation: i32,
    ) -> Result<(usize, (Timestamp, Timestamp), Aggregation), Status> {
        let index = self.state.lookup(dev_eui)?;
        let range = (require_time("start", start)?, require_time("end", end)?);
        Ok((index, range, self.aggregation(aggregation)?))
    }

    fn uplink_times(&self, index: usize) -> Vec<Timestamp> {
        self.state.with_device(index, |device| {
            device.uplink_times.iter().copied().collect()
        })
    }
}

fn metric(name: &str, label: &str, series: &Series, column: usize, kind: MetricKind) -> Metric {
    Metric {
        name: name.to_string(),
        timestamps: series.bucket_starts.iter().map(|t| t.to_prost()).collect(),
        datasets: vec![MetricDataset {
            label: label.to_string(),
            data: series.columns.get(column).cloned().unwrap_or_default(),
        }],
        kind: kind.into(),
    }
}

fn too_many_buckets() -> Status {
    Status::invalid_argument(format!(
        "the range needs more than {} buckets at this aggregation",
        super::metrics::MAX_BUCKETS
    ))
}

#[tonic::async_trait]
impl DeviceService for Service {
    async fn get(
        &self,
        request: Request<api::GetDeviceRequest>,
    ) -> Result<Response<api::GetDeviceResponse>, Status> {
        self.admit_unary("DeviceService.Get", &request).await?;
        let index = self.state.lookup(&request.get_ref().dev_eui)?;
        let device = self.state.world.device_at(index);
        let last_seen = self.state.with_device(index, |d| d.last_uplink);
        Ok(Response::new(api::GetDeviceResponse {
            device: Some(api::Device {
                dev_eui: device.dev_eui.clone(),
                name: device.name.clone(),
                description: DEVICE_DESCRIPTION.into(),
                application_id: device.application_id.clone(),
                device_profile_id: DEVICE_PROFILE_ID.into(),
                join_eui: "0000000000000000".into(),
                ..Default::default()
            }),
            created_at: Some(created_at()),
            updated_at: Some(created_at()),
            last_seen_at: last_seen.map(Timestamp::to_prost),
            device_status: self.device_status(index, last_seen),
            class_enabled: 0,
        }))
    }

    async fn list(
        &self,
        request: Request<api::ListDevicesRequest>,
    ) -> Result<Response<api::ListDevicesResponse>, Status> {
        self.admit_unary("DeviceService.List", &request).await?;
        let req = request.into_inner();
        let application_id = require_uuid("application_id", &req.application_id)?;
        let application = self
            .state
            .world
            .application(application_id)
            .ok_or_else(|| {
                Status::not_found(format!("application {application_id} does not exist"))
            })?;
        let matching: Vec<_> = application
            .devices
            .iter()
            .filter(|d| self.state.exists(d.index) && matches_search(&d.name, &req.search))
            .collect();
        let result = matching[page(matching.len(), req.limit, req.offset)]
            .iter()
            .map(|device| {
                let last_seen = self.state.with_device(device.index, |d| d.last_uplink);
                DeviceListItem {
                    dev_eui: device.dev_eui.clone(),
                    created_at: Some(created_at()),
                    updated_at: Some(created_at()),
                    last_seen_at: last_seen.map(Timestamp::to_prost),
                    name: device.name.clone(),
                    description: DEVICE_DESCRIPTION.into(),
                    device_profile_id: DEVICE_PROFILE_ID.into(),
                    device_profile_name: DEVICE_PROFILE_NAME.into(),
                    device_status: self.device_status(device.index, last_seen),
                    tags: HashMap::new(),
                }
            })
            .collect();
        Ok(Response::new(api::ListDevicesResponse {
            total_count: count(matching.len()),
            result,
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<api::GetDeviceMetricsRequest>,
    ) -> Result<Response<api::GetDeviceMetricsResponse>, Status> {
        self.admit_unary("DeviceService.GetMetrics", &request)
            .await?;
        let req = request.into_inner();
        let (index, range, aggregation) = self.metrics_window(
            &req.dev_eui,
            req.start.as_ref(),
            req.end.as_ref(),
            req.aggregation,
        )?;
        let world = &self.state.world;
        let recorded: Vec<usize> = (0..world.metrics.len())
            .filter(|&m| world.metrics[m].is_recorded())
            .collect();
        let folds: Vec<Fold> = recorded
            .iter()
            .map(|&m| {
                if world.metrics[m].kind == MeasurementKind::Counter {
                    Fold::Last
                } else {
                    Fold::Mean
                }
            })
            .collect();
        let series = aggregate(
            self.uplink_times(index),
            aggregation,
            range,
            &folds,
            self.state.config.fill_empty_buckets,
            |t, row| {
                for (slot, &m) in row.iter_mut().zip(&recorded) {
                    *slot = World::numeric(&world.value(index, m, t)).unwrap_or(f64::NAN);
                }
            },
        )
        .ok_or_else(too_many_buckets)?;
        let metrics = recorded
            .iter()
            .enumerate()
            .map(|(column, &m)| {
                let spec = &world.metrics[m];
                let kind = if spec.kind == MeasurementKind::Counter {
                    MetricKind::Counter
                } else {
                    MetricKind::Gauge
                };
                (
                    spec.name.clone(),
                    metric(&spec.name, &spec.name, &series, column, kind),
                )
            })
            .collect();
        Ok(Response::new(api::GetDeviceMetricsResponse {
            metrics,
            states: HashMap::new(),
        }))
    }

    async fn get_link_metrics(
        &self,
        request: Request<api::GetDeviceLinkMetricsRequest>,
    ) -> Result<Response<api::GetDeviceLinkMetricsResponse>, Status> {
        self.admit_unary("DeviceService.GetLinkMetrics", &request)
            .await?;
        let req = request.into_inner();
        let (index, range, aggregation) = self.metrics_window(
            &req.dev_eui,
            req.start.as_ref(),
            req.end.as_ref(),
            req.aggregation,
        )?;
        let folds = [Fold::Sum, Fold::Mean, Fold::Mean];
        let series = aggregate(
            self.uplink_times(index),
            aggregation,
            range,
            &folds,
            self.state.config.fill_empty_buckets,
            |t, row| {
                // Plausible radio figures: a fixed distance per device plus a little fading.
                let fading = (t.as_micros() / 1_000_000).rem_euclid(7) as f64;
                row[0] = 1.0;
                row[1] = -60.0 - (index % 40) as f64 - fading;
                row[2] = 9.5 - 0.5 * (index % 10) as f64 - 0.25 * fading;
            },
        )
        .ok_or_else(too_many_buckets)?;
        let empty = |name: &str| Metric {
            name: name.to_string(),
            timestamps: series.bucket_starts.iter().map(|t| t.to_prost()).collect(),
            datasets: Vec::new(),
            kind: MetricKind::Absolute.into(),
        };
        Ok(Response::new(api::GetDeviceLinkMetricsResponse {
            rx_packets: Some(metric(
                "Received",
                "rx_count",
                &series,
                0,
                MetricKind::Absolute,
            )),
            gw_rssi: Some(metric("RSSI", "rssi", &series, 1, MetricKind::Absolute)),
            gw_snr: Some(metric("SNR", "snr", &series, 2, MetricKind::Absolute)),
            rx_packets_per_freq: Some(empty("Received / frequency")),
            rx_packets_per_dr: Some(empty("Received / DR")),
            errors: Some(empty("Errors")),
        }))
    }

    async fn enqueue(
        &self,
        request: Request<api::EnqueueDeviceQueueItemRequest>,
    ) -> Result<Response<api::EnqueueDeviceQueueItemResponse>, Status> {
        self.admit_unary("DeviceService.Enqueue", &request).await?;
        let req = request.into_inner();
        let item = req
            .queue_item
            .ok_or_else(|| Status::invalid_argument("queue_item is missing"))?;
        let id = self.state.enqueue(item, req.flush_queue)?;
        Ok(Response::new(api::EnqueueDeviceQueueItemResponse { id }))
    }

    async fn get_queue(
        &self,
        request: Request<api::GetDeviceQueueItemsRequest>,
    ) -> Result<Response<api::GetDeviceQueueItemsResponse>, Status> {
        self.admit_unary("DeviceService.GetQueue", &request).await?;
        let req = request.into_inner();
        let index = self.state.lookup(&req.dev_eui)?;
        let items = self.state.queue_items(index);
        Ok(Response::new(api::GetDeviceQueueItemsResponse {
            total_count: count(items.len()),
            result: if req.count_only { Vec::new() } else { items },
        }))
    }

    async fn flush_queue(
        &self,
        request: Request<api::FlushDeviceQueueRequest>,
    ) -> Result<Response<()>, Status> {
        self.admit_unary("DeviceService.FlushQueue", &request)
            .await?;
        let index = self.state.lookup(&request.get_ref().dev_eui)?;
        self.state.flush_queue(index);
        Ok(Response::new(()))
    }

    not_simulated! { "DeviceService":
        create => "Create" (api::CreateDeviceRequest) -> ();
        update => "Update" (api::UpdateDeviceRequest) -> ();
        delete => "Delete" (api::DeleteDeviceRequest) -> ();
        create_keys => "CreateKeys" (api::CreateDeviceKeysRequest) -> ();
        get_keys => "GetKeys" (api::GetDeviceKeysRequest) -> api::GetDeviceKeysResponse;
        update_keys => "UpdateKeys" (api::UpdateDeviceKeysRequest) -> ();
        delete_keys => "DeleteKeys" (api::DeleteDeviceKeysRequest) -> ();
        flush_dev_nonces => "FlushDevNonces" (api::FlushDevNoncesRequest) -> ();
        activate => "Activate" (api::ActivateDeviceRequest) -> ();
        deactivate => "Deactivate" (api::DeactivateDeviceRequest) -> ();
        get_activation => "GetActivation"
            (api::GetDeviceActivationRequest) -> api::GetDeviceActivationResponse;
        get_random_dev_addr => "GetRandomDevAddr"
            (api::GetRandomDevAddrRequest) -> api::GetRandomDevAddrResponse;
        get_next_f_cnt_down => "GetNextFCntDown"
            (api::GetDeviceNextFCntDownRequest) -> api::GetDeviceNextFCntDownResponse;
    }
}
