//! HistoryRead: paging with continuation points, directions, bounds, sizes, errors.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_read_pages_a_large_window_with_continuation_points() {
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let device = &config.applications[0].devices[0];
    let metric = device
        .metrics
        .iter()
        .find(|m| m.metric_type == MetricType::Int)
        .expect("an Int metric");
    let (device_id, metric_name) = (device.device_id.clone(), metric.metric_name.clone());
    // 60,000 rows a week ago (10 s apart: ~7 days), stored before the gateway starts.
    let start = Timestamp::now().saturating_sub(Duration::from_secs(8 * 86_400));
    const ROWS: i64 = 60_000;
    {
        let mut store = Store::open(&config.storage.database_path).unwrap();
        for chunk in int_series(&device_id, &metric_name, start, ROWS).chunks(10_000) {
            store.append(chunk).unwrap();
        }
    }
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let node = ua.id(&format!("{device_id}/{metric_name}"));
    let window_end = Timestamp(start.0 + ROWS * 10_000_000);

    // Forward, 10,000 per call: six calls, every row once, in order.
    let action = history_action(ua_time(start), ua_time(window_end), 10_000, false);
    let mut continuation = ByteString::null();
    let mut rows = Vec::new();
    let mut calls = 0;
    loop {
        let (status, values, next) = ua.history(&node, &action, continuation).await;
        assert!(status.is_good(), "call {calls}: {status}");
        assert!(values.len() <= 10_000);
        rows.extend(values);
        calls += 1;
        if next.is_null_or_empty() {
            break;
        }
        continuation = next;
        assert!(calls < 20, "continuation never ends");
    }
    assert_eq!(calls, 6);
    assert_eq!(rows.len(), ROWS as usize);
    for (i, dv) in rows.iter().enumerate() {
        assert_eq!(dv.value, Some(Variant::Int64(i as i64)), "row {i}");
        assert_eq!(
            dv.source_timestamp.as_ref().and_then(gateway_time),
            Some(Timestamp(start.0 + i as i64 * 10_000_000))
        );
    }

    // StartTime > EndTime reads backwards (Part 11 §6.4.3.2), StartTime included.
    let last = Timestamp(start.0 + (ROWS - 1) * 10_000_000);
    let backwards = history_action(ua_time(last), ua_time(start), 5, false);
    let (status, values, next) = ua.history(&node, &backwards, ByteString::null()).await;
    assert!(status.is_good());
    assert!(!next.is_null_or_empty());
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    let expected: Vec<Variant> = (ROWS - 5..ROWS).rev().map(Variant::Int64).collect();
    assert_eq!(got, expected);

    // Bounds: the value at or before StartTime, and at or after EndTime.
    let mid = Timestamp(start.0 + 100 * 10_000_000 + 5_000_000); // between rows 100 and 101
    let mid_end = Timestamp(start.0 + 105 * 10_000_000 + 5_000_000);
    let bounded = history_action(ua_time(mid), ua_time(mid_end), 0, true);
    let (status, values, _) = ua.history(&node, &bounded, ByteString::null()).await;
    assert!(status.is_good());
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    let expected: Vec<Variant> = (100..=106).map(Variant::Int64).collect();
    assert_eq!(got, expected);

    // Only StartTime with numValuesPerNode: that many forward from it, and the read is
    // complete (no continuation point); only EndTime: backwards.
    let start_only = history_action(ua_time(mid), DateTime::null(), 3, false);
    let (_, values, next) = ua.history(&node, &start_only, ByteString::null()).await;
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    assert_eq!(got, (101..=103).map(Variant::Int64).collect::<Vec<_>>());
    assert!(next.is_null_or_empty(), "a start-only read is complete");
    let end_only = history_action(DateTime::null(), ua_time(mid), 2, false);
    let (_, values, next) = ua.history(&node, &end_only, ByteString::null()).await;
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    assert_eq!(got, vec![Variant::Int64(100), Variant::Int64(99)]);
    assert!(next.is_null_or_empty());

    // StartTime = EndTime: the value at that instant, once, even with bounds.
    let row_100 = Timestamp(start.0 + 100 * 10_000_000);
    let instant = history_action(ua_time(row_100), ua_time(row_100), 0, true);
    let (_, values, _) = ua.history(&node, &instant, ByteString::null()).await;
    let got: Vec<Variant> = values.into_iter().filter_map(|dv| dv.value).collect();
    assert_eq!(got, vec![Variant::Int64(100)]);

    // A window starting before 1970: no bound before it (BadBoundNotFound), then the rows.
    let early = history_action(
        DateTime::ymd(1960, 1, 1),
        ua_time(Timestamp(start.0 + 3 * 10_000_000)),
        0,
        true,
    );
    let (status, values, _) = ua.history(&node, &early, ByteString::null()).await;
    assert!(status.is_good(), "{status}");
    assert_eq!(values[0].status(), StatusCode::BadBoundNotFound);
    let got: Vec<Variant> = values[1..]
        .iter()
        .filter_map(|dv| dv.value.clone())
        .collect();
    assert_eq!(got, (0..=3).map(Variant::Int64).collect::<Vec<_>>());

    // Several nodes in one call share the message size: every node gets rows and a
    // continuation point, instead of a response too large to send.
    let all = history_action(ua_time(start), ua_time(window_end), 0, false);
    let results = ua
        .history_many(&[node.clone(), node.clone(), node.clone()], &all)
        .await
        .expect("a response that fits");
    for (status, rows, more) in &results {
        assert!(status.is_good() && *rows > 1_000 && *more, "{results:?}");
    }

    // Errors: no time at all, an unknown node, an empty window.
    let (status, _, _) = ua
        .history(
            &node,
            &history_action(DateTime::null(), DateTime::null(), 10, false),
            ByteString::null(),
        )
        .await;
    assert_eq!(status, StatusCode::BadHistoryOperationInvalid);
    let (status, _, _) = ua
        .history(&ua.id("no-such/metric"), &action, ByteString::null())
        .await;
    assert_eq!(status, StatusCode::BadNodeIdUnknown);
    let future = Timestamp::now().saturating_add(Duration::from_secs(86_400));
    let empty = history_action(
        ua_time(future),
        ua_time(future.saturating_add(Duration::from_secs(60))),
        0,
        false,
    );
    let (status, values, _) = ua.history(&node, &empty, ByteString::null()).await;
    assert_eq!((status, values.len()), (StatusCode::GoodNoData, 0));
    ua.close().await;
    gw.stop().await;
}

/// ReadAtTimeDetails (Part 11 §6.5.5) with the async-opcua client: a stored value as it is, a
/// Float interpolated between its neighbours, an Int held, the time after the last value held as
/// Uncertain, before the first one Bad_NoData — one value per requested time, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_read_at_time_interpolates_floats_holds_the_rest_and_marks_the_edges() {
    use ua::types::{ReadAtTimeDetails, StatusCodeValueType};
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let device = &config.applications[0].devices[0];
    let of_type = |wanted: MetricType| {
        device
            .metrics
            .iter()
            .find(|m| m.metric_type == wanted && m.metric_name != "battery_mv")
            .unwrap_or_else(|| panic!("a {wanted:?} metric"))
            .metric_name
            .clone()
    };
    let (float, int) = (of_type(MetricType::Float), of_type(MetricType::Int));
    let device_id = device.device_id.clone();
    let t0 = Timestamp::now().saturating_sub(Duration::from_secs(86_400));
    let at = |seconds: i64| Timestamp(t0.0 + seconds * 1_000_000);
    let sample = |metric: &str, seconds: i64, value: Value| Sample {
        device_id: device_id.as_str().into(),
        metric: metric.into(),
        value,
        source_time: at(seconds),
        received_time: at(seconds),
        origin: SampleOrigin::Uplink,
    };
    {
        let mut store = Store::open(&config.storage.database_path).unwrap();
        store
            .append(&[
                sample(&float, 0, Value::Float(10.0)),
                sample(&float, 10, Value::Float(20.0)),
                sample(&int, 0, Value::Int(10)),
                sample(&int, 10, Value::Int(20)),
            ])
            .unwrap();
    }
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let read_at = |metric: &str, seconds: &[i64]| {
        let node = ua.id(&format!("{device_id}/{metric}"));
        let action = ua::client::HistoryReadAction::ReadAtTimeDetails(ReadAtTimeDetails {
            req_times: Some(seconds.iter().map(|s| ua_time(at(*s))).collect()),
            use_simple_bounds: true,
        });
        let ua = &ua;
        async move { ua.history(&node, &action, ByteString::null()).await }
    };
    let (status, values, next) = read_at(&float, &[5, 0, -5, 60, 8]).await;
    assert!(status.is_good(), "{status}");
    assert!(next.is_null_or_empty());
    let got: Vec<(Option<Variant>, StatusCode, Option<Timestamp>)> = values
        .iter()
        .map(|dv| {
            (
                dv.value.clone(),
                dv.status(),
                dv.source_timestamp.as_ref().and_then(gateway_time),
            )
        })
        .collect();
    assert_eq!(got[0].0, Some(Variant::Double(15.0)), "{got:?}");
    assert!(got[0].1.is_good());
    assert_eq!(got[0].1.value_type(), StatusCodeValueType::Interpolated);
    assert_eq!(got[0].2, Some(at(5)));
    assert_eq!(got[1].0, Some(Variant::Double(10.0)));
    assert_eq!(got[1].1.value_type(), StatusCodeValueType::Raw);
    assert_eq!(got[2].1, StatusCode::BadNoData, "before the first value");
    assert_eq!(got[3].0, Some(Variant::Double(20.0)));
    assert!(
        got[3].1.is_uncertain(),
        "after the last value: {:?}",
        got[3].1
    );
    assert_eq!(got[4].0, Some(Variant::Double(18.0)));
    assert_eq!(values.len(), 5);

    let (status, values, _) = read_at(&int, &[8]).await;
    assert!(status.is_good(), "{status}");
    assert_eq!(values[0].value, Some(Variant::Int64(10)), "an Int steps");

    // What the server says it can do (clients such as UaExpert offer history only when
    // AccessHistoryDataCapability is true).
    use ua::types::VariableId;
    let capability = |id: VariableId| {
        let ua = &ua;
        async move { ua.read_node(&id.into(), AttributeId::Value).await.value }
    };
    assert_eq!(
        capability(VariableId::HistoryServerCapabilities_AccessHistoryDataCapability).await,
        Some(Variant::Boolean(true))
    );
    assert_eq!(
        capability(VariableId::HistoryServerCapabilities_MaxReturnDataValues).await,
        Some(Variant::UInt32(
            config.opcua.max_history_data_results_per_node
        ))
    );
    for none in [
        VariableId::HistoryServerCapabilities_InsertDataCapability,
        VariableId::HistoryServerCapabilities_ReplaceDataCapability,
        VariableId::HistoryServerCapabilities_DeleteRawCapability,
        VariableId::HistoryServerCapabilities_AccessHistoryEventsCapability,
    ] {
        assert_eq!(
            capability(none).await,
            Some(Variant::Boolean(false)),
            "{none:?}"
        );
    }
    ua.close().await;
    gw.stop().await;
    sim.shutdown().await;
}
