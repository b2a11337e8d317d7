//! HistoryRead processed (Part 13 aggregates) through a real async-opcua client: several
//! aggregates of one variable in one request, continuation points, backwards time, the
//! per-node errors, and the AggregateFunctions the server advertises.

use ua::client::HistoryReadAction;
use ua::types::{
    AggregateConfiguration, HistoryData, HistoryReadResult, HistoryReadValueId, NumericRange,
    QualifiedName, ReadProcessedDetails, StatusCodeValueType, TimestampsToReturn,
};

use super::*;

/// One HistoryRead with `details` for `nodes[i]` asking `aggregates[i]`.
async fn read_processed(
    ua: &Ua,
    details: &ReadProcessedDetails,
    nodes: &[(NodeId, Option<ByteString>)],
) -> Result<Vec<HistoryReadResult>, StatusCode> {
    let to_read: Vec<HistoryReadValueId> = nodes
        .iter()
        .map(|(id, continuation)| HistoryReadValueId {
            node_id: id.clone(),
            index_range: NumericRange::None,
            data_encoding: QualifiedName::null(),
            continuation_point: continuation.clone().unwrap_or_else(ByteString::null),
        })
        .collect();
    ua.session
        .history_read(
            HistoryReadAction::ReadProcessedDetails(details.clone()),
            TimestampsToReturn::Source,
            false,
            &to_read,
        )
        .await
        .map_err(|e| e.status())
}

fn values(result: &HistoryReadResult) -> Vec<ua::types::DataValue> {
    result
        .history_data
        .clone()
        .into_inner_as::<HistoryData>()
        .and_then(|d| d.data_values)
        .unwrap_or_default()
}

fn details(
    start: Timestamp,
    end: Timestamp,
    interval_ms: f64,
    aggregates: &[ObjectId],
) -> ReadProcessedDetails {
    ReadProcessedDetails {
        start_time: ua_time(start),
        end_time: ua_time(end),
        processing_interval: interval_ms,
        aggregate_type: Some(aggregates.iter().map(|a| (*a).into()).collect()),
        aggregate_configuration: AggregateConfiguration {
            use_server_capabilities_defaults: true,
            ..Default::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processed_reads_compute_part_13_aggregates_page_by_page() {
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Gateway::config_for(&sim, dir.path());
    // 12 intervals come in pages of 5.
    config.opcua.max_history_data_results_per_node = 5;
    let device = &config.applications[0].devices[0];
    let metric_of = |wanted: MetricType| {
        device
            .metrics
            .iter()
            .find(|m| m.metric_type == wanted && m.metric_name != "battery_mv")
            .map(|m| m.metric_name.clone())
    };
    let float = metric_of(MetricType::Float).expect("a Float metric");
    let text = metric_of(MetricType::String);
    let device_id = device.device_id.clone();
    // Two hours at 10 s a day ago, value = row number: interval k of 10 minutes holds
    // 60k..60k+59.
    let t0 = Timestamp((Timestamp::now().0 - 86_400_000_000) / 3_600_000_000 * 3_600_000_000);
    let at = |seconds: i64| Timestamp(t0.0 + seconds * 1_000_000);
    {
        let rows: Vec<Sample> = (0..720)
            .map(|i| Sample {
                device_id: device_id.as_str().into(),
                metric: float.as_str().into(),
                value: Value::Float(i as f64),
                source_time: at(i * 10),
                received_time: at(i * 10),
                origin: SampleOrigin::Uplink,
            })
            .collect();
        let mut store = Store::open(&config.storage.database_path).unwrap();
        store.append(&rows).unwrap();
    }
    let gw = Gateway::start(config.clone(), dir).await;
    let ua = gw.client().await;
    let node = ua.id(&format!("{device_id}/{float}"));

    // Four aggregates of the same variable in one request, paged together.
    let asked = [
        ObjectId::AggregateFunction_Average,
        ObjectId::AggregateFunction_Minimum,
        ObjectId::AggregateFunction_Maximum,
        ObjectId::AggregateFunction_Count,
    ];
    let request = details(at(0), at(7_200), 600_000.0, &asked);
    let mut continuations: Vec<Option<ByteString>> = vec![None; asked.len()];
    let mut got: Vec<Vec<ua::types::DataValue>> = vec![Vec::new(); asked.len()];
    let mut calls = 0;
    loop {
        let nodes: Vec<(NodeId, Option<ByteString>)> = continuations
            .iter()
            .map(|c| (node.clone(), c.clone()))
            .collect();
        let results = read_processed(&ua, &request, &nodes)
            .await
            .expect("history read");
        calls += 1;
        for (i, result) in results.iter().enumerate() {
            assert!(result.status_code.is_good(), "{:?}", result.status_code);
            let page = values(result);
            assert!(page.len() <= 5);
            got[i].extend(page);
            continuations[i] = (!result.continuation_point.is_null_or_empty())
                .then(|| result.continuation_point.clone());
        }
        if continuations.iter().all(Option::is_none) {
            break;
        }
        assert!(calls < 10, "the continuation points never end");
    }
    assert_eq!(calls, 3, "12 intervals in pages of 5");
    for values in &got {
        assert_eq!(values.len(), 12);
    }
    for k in 0..12 {
        let base = 60.0 * k as f64;
        let stamp = Some(at(600 * k));
        let average = &got[0][k as usize];
        assert_eq!(
            average.value,
            Some(Variant::Double(base + 29.5)),
            "interval {k}"
        );
        assert_eq!(
            average.source_timestamp.as_ref().and_then(gateway_time),
            stamp
        );
        let status = average.status();
        assert!(status.is_good());
        assert_eq!(status.value_type(), StatusCodeValueType::Calculated);
        assert!(!status.partial(), "Average is never Partial");
        assert_eq!(got[1][k as usize].value, Some(Variant::Double(base)));
        // The minimum sits on the interval's start: a raw value.
        assert_eq!(
            got[1][k as usize].status().value_type(),
            StatusCodeValueType::Raw
        );
        assert_eq!(got[2][k as usize].value, Some(Variant::Double(base + 59.0)));
        assert_eq!(got[3][k as usize].value, Some(Variant::Int32(60)));
        // Complete intervals (the last one is Partial only while no newer value is stored,
        // and the poller stores live values meanwhile).
        if k < 11 {
            assert!(!got[3][k as usize].status().partial(), "interval {k}");
        }
    }

    // Two reads of the same variable continued in one call stay apart: 10-minute and
    // 5-minute averages, both at their sixth interval.
    let ten = details(
        at(0),
        at(7_200),
        600_000.0,
        &[ObjectId::AggregateFunction_Average],
    );
    let five = details(
        at(0),
        at(3_600),
        300_000.0,
        &[ObjectId::AggregateFunction_Average],
    );
    let mut points = Vec::new();
    for request in [&ten, &five] {
        let results = read_processed(&ua, request, &[(node.clone(), None)])
            .await
            .unwrap();
        assert!(!results[0].continuation_point.is_null_or_empty());
        points.push(results[0].continuation_point.clone());
    }
    let both = details(
        at(0),
        at(7_200),
        600_000.0,
        &[ObjectId::AggregateFunction_Average; 2],
    );
    let results = read_processed(
        &ua,
        &both,
        &[
            (node.clone(), Some(points[0].clone())),
            (node.clone(), Some(points[1].clone())),
        ],
    )
    .await
    .unwrap();
    assert_eq!(values(&results[0])[0].value, Some(Variant::Double(329.5)));
    assert_eq!(values(&results[1])[0].value, Some(Variant::Double(164.5)));

    // Backwards: newest first, each interval holding its later bound.
    let backwards = details(
        at(7_200),
        at(0),
        3_600_000.0,
        &[ObjectId::AggregateFunction_Count],
    );
    let results = read_processed(&ua, &backwards, &[(node.clone(), None)])
        .await
        .unwrap();
    let counts = values(&results[0]);
    let stamps: Vec<_> = counts
        .iter()
        .map(|v| v.source_timestamp.as_ref().and_then(gateway_time))
        .collect();
    assert_eq!(stamps, [Some(at(7_200)), Some(at(3_600))]);
    // (1 h, 2 h] holds rows 361..=719, (0, 1 h] rows 1..=360.
    assert_eq!(counts[0].value, Some(Variant::Int32(359)));
    assert_eq!(counts[1].value, Some(Variant::Int32(360)));

    // Interpolative and TimeAverage of a sloped Float, a Start with its raw time.
    let shapes = details(
        at(5),
        at(65),
        30_000.0,
        &[
            ObjectId::AggregateFunction_Interpolative,
            ObjectId::AggregateFunction_TimeAverage,
            ObjectId::AggregateFunction_Start,
        ],
    );
    let results = read_processed(
        &ua,
        &shapes,
        &[
            (node.clone(), None),
            (node.clone(), None),
            (node.clone(), None),
        ],
    )
    .await
    .unwrap();
    let interpolated = values(&results[0]);
    assert_eq!(interpolated[0].value, Some(Variant::Double(0.5)));
    assert_eq!(
        interpolated[0].status().value_type(),
        StatusCodeValueType::Interpolated
    );
    let averaged = values(&results[1]);
    match averaged[0].value {
        Some(Variant::Double(v)) => assert!((v - 2.0).abs() < 1e-9, "0.5 .. 3.5 over 30 s: {v}"),
        ref other => panic!("{other:?}"),
    }
    let start = values(&results[2]);
    assert_eq!(start[1].value, Some(Variant::Double(4.0)));
    assert_eq!(
        start[1].source_timestamp.as_ref().and_then(gateway_time),
        Some(at(40))
    );

    // Per node errors; the good node in the same request still answers.
    let mut mixed_nodes = vec![
        (node.clone(), None),
        (node.clone(), None),
        (ua.id("no-such-device/x"), None),
    ];
    let mut mixed_aggregates = vec![
        ObjectId::AggregateFunction_Average,
        ObjectId::AggregateFunction_StandardDeviationSample,
        ObjectId::AggregateFunction_Average,
    ];
    if let Some(text) = &text {
        mixed_nodes.push((ua.id(&format!("{device_id}/{text}")), None));
        mixed_aggregates.push(ObjectId::AggregateFunction_Average);
        mixed_nodes.push((ua.id(&format!("{device_id}/{text}")), None));
        mixed_aggregates.push(ObjectId::AggregateFunction_Count);
    }
    let mixed = details(at(0), at(7_200), 0.0, &mixed_aggregates);
    let results = read_processed(&ua, &mixed, &mixed_nodes).await.unwrap();
    assert!(results[0].status_code.is_good());
    assert_eq!(values(&results[0]).len(), 1, "interval 0: one interval");
    assert_eq!(results[1].status_code, StatusCode::BadAggregateNotSupported);
    assert_eq!(results[2].status_code, StatusCode::BadNodeIdUnknown);
    if text.is_some() {
        assert_eq!(
            results[3].status_code,
            StatusCode::BadAggregateNotSupported,
            "no average of a String"
        );
        assert!(results[4].status_code.is_good(), "a count of a String");
    }

    // Request-level and argument errors.
    let mut mismatch = details(at(0), at(60), 0.0, &[ObjectId::AggregateFunction_Average]);
    mismatch.aggregate_type = Some(Vec::new());
    assert_eq!(
        read_processed(&ua, &mismatch, &[(node.clone(), None)])
            .await
            .err(),
        Some(StatusCode::BadAggregateListMismatch)
    );
    let empty_range = details(at(60), at(60), 0.0, &[ObjectId::AggregateFunction_Average]);
    let results = read_processed(&ua, &empty_range, &[(node.clone(), None)])
        .await
        .unwrap();
    assert_eq!(results[0].status_code, StatusCode::BadInvalidArgument);
    let mut invalid = details(at(0), at(60), 0.0, &[ObjectId::AggregateFunction_Average]);
    invalid.aggregate_configuration = AggregateConfiguration {
        use_server_capabilities_defaults: false,
        treat_uncertain_as_bad: true,
        percent_data_bad: 80,
        percent_data_good: 0,
        use_sloped_extrapolation: false,
    };
    let results = read_processed(&ua, &invalid, &[(node.clone(), None)])
        .await
        .unwrap();
    assert_eq!(
        results[0].status_code,
        StatusCode::BadAggregateInvalidInputs
    );

    ua.close().await;
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_supported_aggregates_are_advertised_in_both_folders() {
    let sim = simulator(|c| c.devices_per_application = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Gateway::config_for(&sim, dir.path());
    let gw = Gateway::start(config, dir).await;
    let ua = gw.client().await;
    for folder in [
        ObjectId::Server_ServerCapabilities_AggregateFunctions,
        ObjectId::HistoryServerCapabilities_AggregateFunctions,
    ] {
        let mut names: Vec<String> = ua
            .children(&folder.into())
            .await
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.sort();
        let mut expected: Vec<String> = opcgw::storage::Aggregate::ALL
            .iter()
            .map(|a| a.name().to_string())
            .collect();
        expected.sort();
        assert_eq!(names, expected, "{folder:?}");
    }
    ua.close().await;
    gw.stop().await;
    sim.shutdown().await;
}
