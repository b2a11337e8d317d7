//! Authentication, listing, device details, configuration text, hostile input.

use chirpstack_api::api::{
    EnqueueDeviceQueueItemRequest, GetApplicationRequest, GetDeviceKeysRequest,
    GetDeviceMetricsRequest, GetDeviceRequest, ListApplicationsRequest, ListDevicesRequest,
};
use tonic::{Code, Request};

use super::*;
use crate::config::{validate, AppConfig, MetricType};
use crate::model::Timestamp;

fn list_devices(application_id: &str, limit: u32, offset: u32) -> ListDevicesRequest {
    ListDevicesRequest {
        application_id: application_id.to_string(),
        limit,
        offset,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_call_without_the_right_token_is_unauthenticated_and_counted() {
    let sim = start(config()).await;
    let mut devices = device_client(&sim).await;
    let dev_eui = first_dev_eui(&sim);
    let get = || GetDeviceRequest {
        dev_eui: dev_eui.clone(),
    };

    let wrong = devices
        .get(with_token(get(), "guess-0123456789"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(
        !wrong.message().contains("guess"),
        "the presented token is not echoed"
    );
    let missing = devices.get(Request::new(get())).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(devices.get(authed(get())).await.is_ok());
    assert_eq!(sim.unauthenticated_calls(), 2);
    assert_eq!(sim.calls("DeviceService.Get"), 3);

    sim.set_api_token("rotated-token");
    assert_eq!(
        devices.get(authed(get())).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert!(devices
        .get(with_token(get(), "rotated-token"))
        .await
        .is_ok());
}

#[tokio::test]
async fn applications_and_devices_are_listed_page_by_page() {
    let sim = start(SimulatorConfig {
        applications: 3,
        devices_per_application: 7,
        ..config()
    })
    .await;
    let mut apps = application_client(&sim).await;
    let tenant_id = sim.world().tenant_id.clone();
    let mut listed = Vec::new();
    for offset in [0, 2] {
        let page = apps
            .list(authed(ListApplicationsRequest {
                tenant_id: tenant_id.clone(),
                limit: 2,
                offset,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_count, 3);
        listed.extend(page.result.into_iter().map(|app| (app.id, app.name)));
    }
    let expected: Vec<_> = sim
        .world()
        .applications
        .iter()
        .map(|a| (a.id.clone(), a.name.clone()))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(listed[1].1, "Application 2");

    let mut devices = device_client(&sim).await;
    let app = &sim.world().applications[1];
    let mut euis = Vec::new();
    for offset in (0..7).step_by(3) {
        let page = devices
            .list(authed(list_devices(&app.id, 3, offset)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_count, 7);
        assert!(page.result.len() <= 3);
        euis.extend(page.result.into_iter().map(|d| d.dev_eui));
    }
    let expected: Vec<_> = app.devices.iter().map(|d| d.dev_eui.clone()).collect();
    assert_eq!(euis, expected);
    assert!(euis
        .iter()
        .all(|eui| eui.len() == 16 && eui.chars().all(|c| c.is_ascii_hexdigit())));
    assert_eq!(app.devices[2].name, "Device 2-3");
    let names: Vec<_> = app.devices.iter().map(|d| d.name.clone()).collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "name order is list order"
    );

    let beyond = devices
        .list(authed(list_devices(&app.id, 3, 100)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((beyond.total_count, beyond.result.len()), (7, 0));
    let search = ListDevicesRequest {
        search: "device 2-1".into(),
        ..list_devices(&app.id, 10, 0)
    };
    assert_eq!(
        devices
            .list(authed(search))
            .await
            .unwrap()
            .into_inner()
            .total_count,
        1
    );
}

#[tokio::test]
async fn limit_zero_returns_only_the_total_count() {
    let sim = start(SimulatorConfig {
        devices_per_application: 5,
        ..config()
    })
    .await;
    let app_id = sim.world().applications[0].id.clone();
    let page = device_client(&sim)
        .await
        .list(authed(list_devices(&app_id, 0, 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.total_count, page.result.len()), (5, 0));
    let apps = application_client(&sim)
        .await
        .list(authed(ListApplicationsRequest {
            tenant_id: sim.world().tenant_id.clone(),
            limit: 0,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((apps.total_count, apps.result.len()), (1, 0));
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_malformed_ones_invalid() {
    let sim = start(config()).await;
    let mut devices = device_client(&sim).await;
    let get = |dev_eui: &str| {
        authed(GetDeviceRequest {
            dev_eui: dev_eui.into(),
        })
    };
    assert_eq!(
        devices
            .get(get("ffffffffffffffff"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    for bad in ["", "xyz", "ffffffffffffffff0", "ffffffffffffff\u{e9}"] {
        assert_eq!(
            devices.get(get(bad)).await.unwrap_err().code(),
            Code::InvalidArgument,
            "{bad:?}"
        );
    }
    let unknown_app = "00000000-0000-4000-8000-0000000000ff";
    assert_eq!(
        devices
            .list(authed(list_devices(unknown_app, 10, 0)))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        devices
            .list(authed(list_devices("nope", 10, 0)))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut apps = application_client(&sim).await;
    let other_tenant = ListApplicationsRequest {
        tenant_id: unknown_app.into(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        apps.list(authed(other_tenant)).await.unwrap_err().code(),
        Code::NotFound
    );
    let app = apps
        .get(authed(GetApplicationRequest {
            id: sim.world().applications[0].id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(app
        .measurement_keys
        .contains(&super::super::BATTERY_METRIC.to_string()));
}

#[tokio::test]
async fn a_device_reports_last_seen_and_status_once_it_has_sent_an_uplink() {
    let sim = start(config()).await;
    let mut devices = device_client(&sim).await;
    let dev_eui = first_dev_eui(&sim);
    let before = devices
        .get(authed(GetDeviceRequest {
            dev_eui: dev_eui.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(before.last_seen_at.is_none() && before.device_status.is_none());
    assert_eq!(
        before.device.unwrap().application_id,
        sim.world().applications[0].id
    );

    sim.emit_uplink_now(&dev_eui);
    let after = devices
        .get(authed(GetDeviceRequest {
            dev_eui: dev_eui.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let last_seen = Timestamp::from_prost(&after.last_seen_at.unwrap()).unwrap();
    assert!(last_seen.age_at(Timestamp::now()) < std::time::Duration::from_secs(5));
    let status = after.device_status.unwrap();
    assert!((0.0..=100.0).contains(&status.battery_level));
    let app_id = sim.world().applications[0].id.clone();
    let listed = devices
        .list(authed(list_devices(&app_id, 10, 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.result[0].last_seen_at, after.last_seen_at);
    assert!(listed.result[1].last_seen_at.is_none());
}

#[tokio::test]
async fn methods_that_are_not_simulated_answer_unimplemented_after_the_front_door() {
    let sim = start(config()).await;
    let mut devices = device_client(&sim).await;
    let keys = || GetDeviceKeysRequest {
        dev_eui: "0000000000000001".into(),
    };
    assert_eq!(
        devices.get_keys(authed(keys())).await.unwrap_err().code(),
        Code::Unimplemented
    );
    assert_eq!(
        devices
            .get_keys(Request::new(keys()))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(sim.calls("DeviceService.GetKeys"), 2);
    let version = internal_client(&sim)
        .await
        .get_version(authed(()))
        .await
        .unwrap()
        .into_inner();
    assert!(version.version.starts_with('4'));
}

#[tokio::test]
async fn hostile_requests_get_a_status_and_the_server_keeps_serving() {
    let sim = start(config()).await;
    let mut devices = device_client(&sim).await;
    let dev_eui = first_dev_eui(&sim);
    let bad_time = prost_types::Timestamp {
        seconds: 1,
        nanos: -1,
    };
    let metrics = |start, end, aggregation| GetDeviceMetricsRequest {
        dev_eui: dev_eui.clone(),
        start,
        end,
        aggregation,
    };
    let now = Timestamp::now().to_prost();
    let cases = [
        metrics(None, Some(now), 0),
        metrics(Some(bad_time), Some(now), 0),
        metrics(
            Some(prost_types::Timestamp {
                seconds: i64::MIN,
                nanos: 0,
            }),
            Some(now),
            3,
        ),
    ];
    for case in cases {
        assert_eq!(
            devices.get_metrics(authed(case)).await.unwrap_err().code(),
            Code::InvalidArgument
        );
    }
    // Reversed range and unknown aggregation: an empty answer, as ChirpStack gives.
    let reversed = metrics(
        Some(now),
        Some(prost_types::Timestamp {
            seconds: 0,
            nanos: 0,
        }),
        99,
    );
    assert!(devices
        .get_metrics(authed(reversed))
        .await
        .unwrap()
        .into_inner()
        .metrics
        .values()
        .all(|m| m.timestamps.is_empty()));
    // The extremes of representable time, at every aggregation.
    let far = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    sim.emit_uplink_now(&dev_eui);
    for aggregation in 0..4 {
        let extreme = metrics(far(-9_223_372_036_854), far(9_223_372_036_854), aggregation);
        let answer = devices
            .get_metrics(authed(extreme))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.metrics["battery_mv"].timestamps.len(), 1);
    }
    let app_id = sim.world().applications[0].id.clone();
    let huge = devices
        .list(authed(list_devices(&app_id, u32::MAX, u32::MAX)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(huge.result.len(), 0);
    let empty = EnqueueDeviceQueueItemRequest::default();
    assert_eq!(
        devices.enqueue(authed(empty)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert!(devices
        .get(authed(GetDeviceRequest { dev_eui }))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_config_that_cannot_work_is_refused_at_start() {
    let addr = "127.0.0.1:0".parse().unwrap();
    let cases = [
        SimulatorConfig {
            applications: 1_000,
            devices_per_application: 1_000,
            ..config()
        },
        SimulatorConfig {
            devices_per_application: usize::MAX,
            applications: 2,
            ..config()
        },
        SimulatorConfig {
            uplink_interval: std::time::Duration::from_nanos(10),
            ..config()
        },
        SimulatorConfig {
            uplink_interval: std::time::Duration::MAX,
            ..config()
        },
        SimulatorConfig {
            max_concurrent_streams_per_connection: 0,
            ..config()
        },
        SimulatorConfig {
            tenant_id: "acme".into(),
            ..config()
        },
    ];
    for case in cases {
        let err = Simulator::start(case, addr).await.err().expect("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
    let taken = start(config()).await;
    assert!(
        Simulator::start(config(), taken.addr()).await.is_err(),
        "the address is in use"
    );
}

#[test]
fn print_config_is_a_valid_opcgw_application_list_for_this_world() {
    let config = SimulatorConfig {
        applications: 2,
        devices_per_application: 2,
        metrics_per_device: 6,
        ..config()
    };
    let text = config.print_config();
    let parsed: AppConfig = toml::from_str(&text).expect("the text is an opcgw configuration");
    let report = validate(&parsed);
    let topology_errors: Vec<_> = report
        .errors
        .iter()
        .filter(|e| e.key.starts_with("application"))
        .collect();
    assert!(topology_errors.is_empty(), "{topology_errors:?}");

    let world = config.world(Timestamp::default());
    assert_eq!(parsed.applications.len(), 2);
    let device = &parsed.applications[1].devices[0];
    assert_eq!(device.device_id, world.applications[1].devices[0].dev_eui);
    let names: Vec<_> = device
        .metrics
        .iter()
        .map(|m| m.chirpstack_metric_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "temperature",
            "counter",
            "valve_open",
            "mode",
            "temperature_4",
            "counter_5",
            "battery_mv"
        ]
    );
    let types: Vec<_> = device.metrics.iter().map(|m| m.metric_type).collect();
    assert_eq!(
        types[..4],
        [
            MetricType::Float,
            MetricType::Int,
            MetricType::Bool,
            MetricType::String
        ]
    );
    assert_eq!(device.metrics[6].metric_unit.as_deref(), Some("mV"));
    assert_eq!(device.commands.len(), 1);
    assert!(text.contains(&config.tenant_id) && !text.contains(TOKEN));
}
