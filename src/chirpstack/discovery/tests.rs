use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::chirpstack::client::ClientSettings;
use crate::chirpstack::simulator::{
    Simulator, SimulatorConfig, SimulatorHandle, DEVICE_PROFILE_ID, UNTRACKED_MEASUREMENT,
};
use crate::config::{DeviceRemoval, Secret};

const TOKEN: &str = "discovery-test-token-123";

async fn simulator(applications: usize, devices: usize) -> SimulatorHandle {
    Simulator::start(
        SimulatorConfig {
            api_token: TOKEN.into(),
            applications,
            devices_per_application: devices,
            uplink_interval: Duration::ZERO,
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn client(sim: &SimulatorHandle) -> ChirpstackClient {
    ChirpstackClient::new(ClientSettings {
        server_address: sim.url(),
        api_token: Secret::new(TOKEN),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn application_ids(sim: &SimulatorHandle) -> Vec<String> {
    sim.world()
        .applications
        .iter()
        .map(|a| a.id.clone())
        .collect()
}

#[tokio::test]
async fn every_device_is_listed_page_by_page_with_its_profiles_measurements() {
    let sim = simulator(3, 7).await;
    let found = discover(&client(&sim), &application_ids(&sim), 3, 4)
        .await
        .unwrap();
    let topology = &found.topology;
    assert_eq!(topology.device_count(), 21);
    assert!(topology.discovered_at.is_some());
    // Seven devices in pages of three: three listing calls per application, one profile read.
    assert_eq!(found.profiles, 1);
    assert_eq!(found.calls, 3 * 3 + 1);
    assert_eq!(sim.calls("DeviceProfileService.Get"), 1);
    for app in &sim.world().applications {
        let devices = &topology.applications[&app.id];
        let euis: Vec<&str> = devices.iter().map(|d| d.dev_eui.as_str()).collect();
        let mut expected: Vec<&str> = app.devices.iter().map(|d| d.dev_eui.as_str()).collect();
        expected.sort();
        assert_eq!(euis, expected);
        assert!(devices
            .iter()
            .all(|d| d.device_profile_id == DEVICE_PROFILE_ID));
    }
    let device = &topology.applications[&sim.world().applications[0].id][0];
    assert_eq!(device.name, sim.world().applications[0].devices[0].name);
    let types: Vec<(&str, MetricType)> = device
        .measurements
        .iter()
        .map(|m| (m.key.as_str(), m.metric_type))
        .collect();
    // In key order; true/false and text values are STRING measurements in ChirpStack.
    assert_eq!(
        types,
        [
            ("battery_mv", MetricType::Float),
            ("counter", MetricType::Int),
            ("mode", MetricType::String),
            ("temperature", MetricType::Float),
            ("valve_open", MetricType::String),
        ]
    );
    assert_eq!(
        found.skipped,
        [Skipped {
            device_profile_id: DEVICE_PROFILE_ID.into(),
            key: UNTRACKED_MEASUREMENT.into(),
            reason: "its kind is UNKNOWN (ChirpStack does not track it)",
        }]
    );
}

#[tokio::test]
async fn a_deleted_device_is_kept_marked_gone_or_dropped_and_an_outage_is_an_error() {
    let sim = simulator(1, 3).await;
    let apps = application_ids(&sim);
    let first = discover(&client(&sim), &apps, 100, 4)
        .await
        .unwrap()
        .topology;
    let gone = sim.world().applications[0].devices[1].dev_eui.clone();
    assert!(sim.delete_device(&gone));
    let second = discover(&client(&sim), &apps, 100, 4)
        .await
        .unwrap()
        .topology;
    assert_eq!(second.device_count(), 2);

    let kept = second.clone().succeeding(&first, DeviceRemoval::Keep);
    let devices = &kept.applications[&apps[0]];
    assert_eq!(devices.len(), 3);
    let marked: Vec<(&str, bool)> = devices
        .iter()
        .map(|d| (d.dev_eui.as_str(), d.gone))
        .collect();
    assert!(marked.contains(&(gone.as_str(), true)), "{marked:?}");
    assert_eq!(marked.iter().filter(|(_, gone)| *gone).count(), 1);
    let removed = second.clone().succeeding(&first, DeviceRemoval::Remove);
    assert_eq!(removed, second);
    // Back again: listed, no longer gone.
    assert!(sim.add_device(&gone));
    let third = discover(&client(&sim), &apps, 100, 4)
        .await
        .unwrap()
        .topology;
    let again = third.clone().succeeding(&kept, DeviceRemoval::Keep);
    assert!(again.applications[&apps[0]].iter().all(|d| !d.gone));

    // A device listed by another application is not also kept as gone where it was; an
    // application this discovery did not cover keeps what it had.
    let mut elsewhere = third.clone();
    let moved = elsewhere.applications.remove(&apps[0]).unwrap();
    elsewhere.applications.insert("other-app".into(), moved);
    elsewhere.applications.insert(apps[0].clone(), Vec::new());
    let kept_apart = elsewhere.succeeding(&kept, DeviceRemoval::Keep);
    assert!(
        kept_apart.applications[&apps[0]].is_empty(),
        "{kept_apart:?}"
    );
    let only_other = Topology {
        discovered_at: None,
        applications: BTreeMap::from([("other-app".to_string(), Vec::new())]),
    };
    let carried = only_other.succeeding(&kept, DeviceRemoval::Remove);
    assert_eq!(carried.applications[&apps[0]], kept.applications[&apps[0]]);

    sim.start_outage().await;
    let error = discover(&client(&sim), &apps, 100, 4).await.unwrap_err();
    assert!(error.is_connectivity(), "{error:?}");
}

#[tokio::test]
async fn the_topology_survives_on_disk_and_a_damaged_file_is_an_error_not_a_topology() {
    let sim = simulator(2, 2).await;
    let topology = discover(&client(&sim), &application_ids(&sim), 100, 4)
        .await
        .unwrap()
        .topology;
    let dir = tempfile::tempdir().unwrap();
    let path = topology_path(&dir.path().join("opcgw.redb"));
    assert_eq!(path, dir.path().join("opcgw.discovered.json"));
    assert_eq!(load_topology(&path).unwrap(), Topology::default());
    save_topology(&path, &topology).unwrap();
    assert_eq!(load_topology(&path).unwrap(), topology);
    std::fs::write(&path, b"{not json").unwrap();
    let error = load_topology(&path).unwrap_err();
    assert!(error.contains("not a discovered topology"), "{error}");
}

#[test]
fn a_listing_that_changed_while_it_was_paged_is_not_whole() {
    let totals = |t: &[u32]| t.iter().copied().collect::<BTreeSet<u32>>();
    assert!(listing_is_whole(&totals(&[7]), 7));
    assert!(listing_is_whole(&totals(&[]), 0));
    // A deletion between two pages: the totals differ, or one device fewer was collected.
    assert!(!listing_is_whole(&totals(&[7, 6]), 6));
    assert!(!listing_is_whole(&totals(&[7]), 6));
}
