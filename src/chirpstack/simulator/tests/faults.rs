//! Fault injection: latency, error rate, outage, stream caps.

use std::time::{Duration, Instant};

use chirpstack_api::api::{GetDeviceRequest, StreamDeviceEventsRequest};
use tonic::Code;

use super::*;

#[tokio::test]
async fn latency_delays_unary_calls_and_stream_opens() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let mut devices = device_client(&sim).await;
    let mut internal = internal_client(&sim).await;
    sim.set_latency(Duration::from_millis(150));

    let started = Instant::now();
    devices
        .get(authed(GetDeviceRequest {
            dev_eui: dev_eui.clone(),
        }))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    let _stream = open_stream(&mut internal, &dev_eui).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Even a rejected call waits: the latency is the network's, not the handler's.
    let started = Instant::now();
    let rejected = devices
        .get(Request::new(GetDeviceRequest {
            dev_eui: dev_eui.clone(),
        }))
        .await;
    assert_eq!(rejected.unwrap_err().code(), Code::Unauthenticated);
    assert!(started.elapsed() >= Duration::from_millis(150));

    sim.set_latency(Duration::ZERO);
    let started = Instant::now();
    devices
        .get(authed(GetDeviceRequest { dev_eui }))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn the_error_rate_fails_that_fraction_of_unary_calls_with_unavailable() {
    let sim = start(SimulatorConfig {
        seed: 42,
        ..config()
    })
    .await;
    let dev_eui = first_dev_eui(&sim);
    let mut devices = device_client(&sim).await;
    let get = || {
        authed(GetDeviceRequest {
            dev_eui: dev_eui.clone(),
        })
    };

    sim.set_error_rate(1.0);
    assert_eq!(
        devices.get(get()).await.unwrap_err().code(),
        Code::Unavailable
    );
    // Streams are not unary: they still open.
    let _stream = open_stream(&mut internal_client(&sim).await, &dev_eui).await;

    sim.set_error_rate(0.5);
    let mut failed = 0;
    for _ in 0..200 {
        match devices.get(get()).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable);
                failed += 1;
            }
        }
    }
    assert!((60..140).contains(&failed), "{failed} of 200 failed");
    assert_eq!(sim.calls("DeviceService.Get"), 201);
    sim.set_error_rate(0.0);
    assert!(devices.get(get()).await.is_ok());
}

#[tokio::test]
async fn an_outage_refuses_connections_and_the_same_port_serves_again_with_replay() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let mut internal = internal_client(&sim).await;
    let mut stream = open_stream(&mut internal, &dev_eui).await;
    sim.emit_uplink_now(&dev_eui);
    assert_eq!(next_uplink(&mut stream, &dev_eui).await.f_cnt, 1);

    sim.start_outage().await;
    let ended = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("the stream ends");
    // A crashed server: the connection breaks (tonic reports UNKNOWN "h2 protocol error") or,
    // if the status frame made it out first, UNAVAILABLE. Either way an error, not an end.
    let status = ended.expect_err("the stream fails");
    assert!(
        matches!(status.code(), Code::Unknown | Code::Unavailable),
        "{status:?}"
    );
    eventually("streams to be released", || async {
        sim.open_streams() == 0
    })
    .await;
    let refused = tokio::net::TcpStream::connect(sim.addr())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let lazy = Channel::from_shared(sim.url()).unwrap().connect_lazy();
    let status = DeviceServiceClient::new(lazy)
        .get(authed(GetDeviceRequest {
            dev_eui: dev_eui.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    // Uplinks go on during the outage, into the event log.
    sim.emit_uplink_now(&dev_eui);
    sim.emit_uplink_now(&dev_eui);
    sim.end_outage()
        .await
        .expect("serves again on the same port");

    let mut internal = internal_client(&sim).await;
    let mut stream = open_stream(&mut internal, &dev_eui).await;
    let replayed: Vec<u32> = [
        next_uplink(&mut stream, &dev_eui).await,
        next_uplink(&mut stream, &dev_eui).await,
        next_uplink(&mut stream, &dev_eui).await,
    ]
    .iter()
    .map(|up| up.f_cnt)
    .collect();
    assert_eq!(replayed, [1, 2, 3]);
    assert!(device_client(&sim)
        .await
        .get(authed(GetDeviceRequest { dev_eui }))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_reconnecting_channel_recovers_after_the_outage() {
    let sim = start(config()).await;
    let dev_eui = first_dev_eui(&sim);
    let lazy = Channel::from_shared(sim.url())
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    let mut devices = DeviceServiceClient::new(lazy);
    let get = || {
        authed(GetDeviceRequest {
            dev_eui: dev_eui.clone(),
        })
    };
    assert!(devices.get(get()).await.is_ok());
    sim.start_outage().await;
    assert!(devices.get(get()).await.is_err());
    sim.end_outage().await.unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if devices.get(get()).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "the same channel works again on the same port");
}

#[tokio::test]
async fn the_server_caps_concurrent_streams_per_connection() {
    let sim = start(SimulatorConfig {
        max_concurrent_streams_per_connection: 2,
        ..config()
    })
    .await;
    let dev_eui = first_dev_eui(&sim);
    let mut internal = internal_client(&sim).await;
    let first = open_stream(&mut internal, &dev_eui).await;
    let _second = open_stream(&mut internal, &dev_eui).await;
    let mut third_client = internal.clone();
    let third = tokio::spawn(async move {
        let request = authed(StreamDeviceEventsRequest {
            dev_eui: "5100000100000002".into(),
        });
        third_client.stream_device_events(request).await.map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third stream on the same connection waits for a slot"
    );
    assert_eq!(sim.open_streams(), 2);
    drop(first);
    let opened = tokio::time::timeout(WAIT, third)
        .await
        .expect("the third stream gets the freed slot");
    assert!(opened.unwrap().is_ok());
}

#[tokio::test]
async fn shutdown_frees_the_port_and_dropping_the_last_handle_stops_the_server() {
    let sim = start(config()).await;
    let addr = sim.addr();
    let other = sim.clone();
    sim.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(
        other.end_outage().await.is_err(),
        "a shut-down simulator stays down"
    );

    let sim = start(config()).await;
    let addr = sim.addr();
    let clone = sim.clone();
    drop(sim);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_ok(),
        "a clone keeps it alive"
    );
    drop(clone);
    eventually("the port to close", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
}
