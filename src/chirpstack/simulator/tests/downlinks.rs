//! The downlink queue and the events a transmission produces.

use std::time::Duration;

use chirpstack_api::api::{
    DeviceQueueItem, EnqueueDeviceQueueItemRequest, GetDeviceQueueItemsRequest,
};
use tonic::Code;

use super::*;
use crate::chirpstack::simulator::AckBehaviour;
use crate::model::Timestamp;

fn enqueue(
    dev_eui: &str,
    confirmed: bool,
    f_port: u32,
    data: &[u8],
) -> EnqueueDeviceQueueItemRequest {
    EnqueueDeviceQueueItemRequest {
        queue_item: Some(DeviceQueueItem {
            dev_eui: dev_eui.to_string(),
            confirmed,
            f_port,
            data: data.to_vec(),
            ..Default::default()
        }),
        flush_queue: false,
    }
}

async fn queue(devices: &mut DeviceServiceClient<Channel>, dev_eui: &str) -> Vec<DeviceQueueItem> {
    let request = authed(GetDeviceQueueItemsRequest {
        dev_eui: dev_eui.to_string(),
        count_only: false,
    });
    let answer = devices.get_queue(request).await.unwrap().into_inner();
    assert_eq!(answer.total_count as usize, answer.result.len());
    answer.result
}

#[tokio::test]
async fn a_confirmed_downlink_is_recorded_then_txacked_and_acked() {
    let sim = start(SimulatorConfig {
        downlink_ack_delay: Duration::from_millis(300),
        ..config()
    })
    .await;
    let dev_eui = first_dev_eui(&sim);
    let mut devices = device_client(&sim).await;
    let mut stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;

    let id = devices
        .enqueue(authed(enqueue(&dev_eui, true, 10, &[1, 2])))
        .await
        .unwrap()
        .into_inner()
        .id;
    assert_eq!(id.len(), 36);
    let recorded = sim.downlinks();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (
            recorded[0].queue_item_id.as_str(),
            recorded[0].dev_eui.as_str(),
            recorded[0].f_port,
            recorded[0].confirmed
        ),
        (id.as_str(), dev_eui.as_str(), 10, true)
    );
    assert_eq!(recorded[0].data, [1, 2]);
    let waiting = queue(&mut devices, &dev_eui).await;
    assert_eq!(
        (waiting.len(), waiting[0].is_pending, waiting[0].id.as_str()),
        (1, false, id.as_str())
    );

    let DeviceEvent::TxAck {
        queue_item_id,
        f_cnt_down,
        ..
    } = next_event(&mut stream, &dev_eui).await
    else {
        panic!("expected a txack");
    };
    assert_eq!((queue_item_id.as_str(), f_cnt_down), (id.as_str(), 0));
    // Transmitted but not yet acknowledged: still queued, pending (ChirpStack's is_pending).
    let pending = queue(&mut devices, &dev_eui).await;
    assert_eq!((pending.len(), pending[0].is_pending), (1, true));

    let DeviceEvent::Ack {
        queue_item_id,
        acknowledged,
        ..
    } = next_event(&mut stream, &dev_eui).await
    else {
        panic!("expected an ack");
    };
    assert_eq!((queue_item_id.as_str(), acknowledged), (id.as_str(), true));
    assert!(queue(&mut devices, &dev_eui).await.is_empty());
    assert_eq!(sim.calls("DeviceService.Enqueue"), 1);
}

#[tokio::test]
async fn an_unconfirmed_downlink_leaves_the_queue_when_transmitted() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let mut devices = device_client(&sim).await;
    let mut stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;
    let first = devices
        .enqueue(authed(enqueue(&dev_eui, false, 1, &[7])))
        .await
        .unwrap()
        .into_inner()
        .id;
    let second = devices
        .enqueue(authed(enqueue(&dev_eui, false, 223, &[8])))
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut txacks = Vec::new();
    for _ in 0..2 {
        match next_event(&mut stream, &dev_eui).await {
            DeviceEvent::TxAck {
                queue_item_id,
                f_cnt_down,
                ..
            } => txacks.push((queue_item_id, f_cnt_down)),
            other => panic!("expected a txack, got {other:?}"),
        }
    }
    txacks.sort_by_key(|(_, f_cnt)| *f_cnt);
    assert_eq!(txacks, [(first, 0), (second, 1)]);
    eventually("an empty queue", || {
        let mut devices = devices.clone();
        let dev_eui = dev_eui.clone();
        async move { queue(&mut devices, &dev_eui).await.is_empty() }
    })
    .await;
}

#[tokio::test]
async fn a_nack_reports_the_confirmed_downlink_as_not_acknowledged() {
    let sim = start(config()).await;
    sim.set_ack_behaviour(AckBehaviour::Nack);
    let dev_eui = first_dev_eui(&sim);
    let mut stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;
    let id = device_client(&sim)
        .await
        .enqueue(authed(enqueue(&dev_eui, true, 5, &[1])))
        .await
        .unwrap()
        .into_inner()
        .id;
    assert!(matches!(
        next_event(&mut stream, &dev_eui).await,
        DeviceEvent::TxAck { .. }
    ));
    let DeviceEvent::Ack {
        queue_item_id,
        acknowledged,
        ..
    } = next_event(&mut stream, &dev_eui).await
    else {
        panic!("expected an ack");
    };
    assert_eq!((queue_item_id, acknowledged), (id, false));
}

#[tokio::test]
async fn a_silent_device_leaves_the_item_queued_until_it_expires() {
    let sim = start(config()).await;
    sim.set_ack_behaviour(AckBehaviour::Silent);
    let dev_eui = first_dev_eui(&sim);
    let mut devices = device_client(&sim).await;
    let mut stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;
    let mut request = enqueue(&dev_eui, true, 5, &[1]);
    let expires_at = Timestamp::now().saturating_add(Duration::from_millis(400));
    if let Some(item) = request.queue_item.as_mut() {
        item.expires_at = Some(expires_at.to_prost());
    }
    let id = devices
        .enqueue(authed(request))
        .await
        .unwrap()
        .into_inner()
        .id;
    let forever = devices
        .enqueue(authed(enqueue(&dev_eui, false, 5, &[2])))
        .await
        .unwrap()
        .into_inner()
        .id;

    tokio::time::sleep(Duration::from_millis(150)).await;
    let queued = queue(&mut devices, &dev_eui).await;
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|item| !item.is_pending));

    let DeviceEvent::Log {
        code,
        queue_item_id,
        ..
    } = next_event(&mut stream, &dev_eui).await
    else {
        panic!("expected a log event");
    };
    assert_eq!((code.as_str(), queue_item_id), ("EXPIRED", Some(id)));
    assert!(Timestamp::now() >= expires_at);
    let left = queue(&mut devices, &dev_eui).await;
    assert_eq!(
        left.iter().map(|item| item.id.clone()).collect::<Vec<_>>(),
        [forever]
    );
}

#[tokio::test]
async fn an_oversized_payload_is_discarded_at_transmission_with_a_log_event() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let mut stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;
    let id = device_client(&sim)
        .await
        .enqueue(authed(enqueue(&dev_eui, false, 5, &[0; 300])))
        .await
        .unwrap()
        .into_inner()
        .id;
    let DeviceEvent::Log {
        code,
        queue_item_id,
        ..
    } = next_event(&mut stream, &dev_eui).await
    else {
        panic!("expected a log event");
    };
    assert_eq!(
        (code.as_str(), queue_item_id),
        ("DOWNLINK_PAYLOAD_SIZE", Some(id))
    );
}

#[tokio::test]
async fn invalid_downlinks_are_refused_and_not_recorded() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let mut devices = device_client(&sim).await;
    for f_port in [0, 224, u32::MAX] {
        let err = devices
            .enqueue(authed(enqueue(&dev_eui, false, f_port, &[1])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "f_port {f_port}");
    }
    let unknown = devices
        .enqueue(authed(enqueue("ffffffffffffffff", false, 1, &[1])))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let huge = devices
        .enqueue(authed(enqueue(&dev_eui, false, 1, &[0; 4_096])))
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::InvalidArgument);
    assert!(sim.downlinks().is_empty());
    assert_eq!(sim.calls("DeviceService.Enqueue"), 5);
}

#[tokio::test]
async fn flushing_empties_the_queue_and_count_only_reports_just_the_total() {
    let sim = start(config()).await;
    sim.set_ack_behaviour(AckBehaviour::Silent);
    let dev_eui = first_dev_eui(&sim);
    let mut devices = device_client(&sim).await;
    for data in [[1], [2]] {
        devices
            .enqueue(authed(enqueue(&dev_eui, false, 3, &data)))
            .await
            .unwrap();
    }
    let count_only = authed(GetDeviceQueueItemsRequest {
        dev_eui: dev_eui.clone(),
        count_only: true,
    });
    let counted = devices.get_queue(count_only).await.unwrap().into_inner();
    assert_eq!((counted.total_count, counted.result.len()), (2, 0));

    let mut replace = enqueue(&dev_eui, false, 3, &[3]);
    replace.flush_queue = true;
    devices.enqueue(authed(replace)).await.unwrap();
    let left: Vec<Vec<u8>> = queue(&mut devices, &dev_eui)
        .await
        .into_iter()
        .map(|q| q.data)
        .collect();
    assert_eq!(left, [vec![3]]);

    let flush = authed(chirpstack_api::api::FlushDeviceQueueRequest {
        dev_eui: dev_eui.clone(),
    });
    devices.flush_queue(flush).await.unwrap();
    assert!(queue(&mut devices, &dev_eui).await.is_empty());
    assert_eq!(
        sim.downlinks().len(),
        3,
        "every accepted enqueue is recorded"
    );
}
