//! One poll cycle: what streams cannot deliver. Device listings (last seen, battery, margin),
//! `GetMetrics` aggregates for metrics that uplinks never carry (and to reconcile after an
//! outage), and the downlink queues of commands that are overdue. Calls run concurrently,
//! bounded by `poll_concurrency`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chirpstack_api::common::Aggregation;
use opcgw::chirpstack::buckets::bucket_of;
use opcgw::chirpstack::client::{
    ChirpstackClient, DeviceSummary, MetricBuckets, QueueItem, UpstreamError,
};
use opcgw::chirpstack::mapping::{convert_aggregate, MetricMapping, Rejection};
use opcgw::config::MetricType;
use opcgw::model::{Sample, SampleOrigin, Timestamp};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The metrics of one device to fetch from `GetMetrics`.
#[derive(Debug, Clone)]
pub struct FallbackTarget {
    pub device_id: String,
    pub metrics: Vec<MetricMapping>,
    /// The `last_seen` whose bucket was already read: unchanged means nothing new to fetch.
    pub fetched_for: Option<Timestamp>,
}

pub struct CycleInput {
    pub client: ChirpstackClient,
    pub tenant_id: String,
    pub application_ids: Vec<String>,
    /// Check that the configured applications exist in the tenant.
    pub verify_applications: bool,
    pub page_size: u32,
    pub concurrency: usize,
    pub fallback: Vec<FallbackTarget>,
    pub aggregation: Aggregation,
    pub queues_to_check: Vec<String>,
    /// Read the link quality (RSSI, SNR) of these devices this cycle (every few cycles: it
    /// costs one call per device).
    pub link_quality_of: Vec<String>,
}

/// What a cycle found.
#[derive(Debug)]
pub struct CycleReport {
    pub finished: Timestamp,
    pub duration: Duration,
    /// The cycle as a whole failed (nothing could be listed).
    pub failure: Option<UpstreamError>,
    /// Individual calls that failed while others succeeded.
    pub partial_errors: Vec<String>,
    pub devices: Vec<DeviceSummary>,
    pub unknown_applications: Vec<String>,
    pub aggregates: Vec<Sample>,
    pub rejections: Vec<Rejection>,
    pub queues: HashMap<String, Vec<QueueItem>>,
    /// Devices whose bucket was read, with the `last_seen` it was read for.
    pub fetched: Vec<(String, Timestamp)>,
    /// The aggregation to use from now on (MINUTE falls back to HOUR on older servers).
    pub aggregation: Aggregation,
    pub calls: u32,
}

pub async fn run_cycle(input: CycleInput) -> CycleReport {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(input.concurrency.max(1)));
    let mut report = CycleReport {
        finished: Timestamp::now(),
        duration: Duration::ZERO,
        failure: None,
        partial_errors: Vec::new(),
        devices: Vec::new(),
        unknown_applications: Vec::new(),
        aggregates: Vec::new(),
        rejections: Vec::new(),
        queues: HashMap::new(),
        fetched: Vec::new(),
        aggregation: input.aggregation,
        calls: 0,
    };

    if input.verify_applications {
        report.calls += 1;
        match input
            .client
            .list_applications(&input.tenant_id, input.page_size)
            .await
        {
            Ok(apps) => {
                report.unknown_applications = input
                    .application_ids
                    .iter()
                    .filter(|id| !apps.iter().any(|a| &a.id == *id))
                    .cloned()
                    .collect();
            }
            Err(error) => return finish(report, started, Some(error)),
        }
    }

    // Device listings, one application per task.
    let mut listings = JoinSet::new();
    for application_id in input.application_ids.clone() {
        let (client, permits, page_size) = (input.client.clone(), permits.clone(), input.page_size);
        listings.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (
                application_id.clone(),
                client.list_devices(&application_id, page_size).await,
            )
        });
    }
    let mut listing_errors = Vec::new();
    while let Some(joined) = listings.join_next().await {
        report.calls += 1;
        match joined {
            Ok((_, Ok(devices))) => report.devices.extend(devices),
            Ok((application_id, Err(error))) => listing_errors.push((application_id, error)),
            Err(join) => report
                .partial_errors
                .push(format!("listing task failed: {join}")),
        }
    }
    if !listing_errors.is_empty() && listing_errors.len() == input.application_ids.len() {
        // Nothing answered: the cycle failed as a whole (down, or the token is refused).
        let (_, error) = listing_errors.swap_remove(0);
        return finish(report, started, Some(error));
    }
    for (application_id, error) in listing_errors {
        report
            .partial_errors
            .push(format!("listing application {application_id}: {error}"));
    }

    // GetMetrics for metrics without uplink values. ChirpStack answers with every bucket of
    // the range, empty ones as 0, so "no data" cannot be told from a real 0: ask for the one
    // bucket that holds the device's last uplink (ChirpStack's own `last_seen_at`), which is
    // the newest bucket that has data.
    let last_seen: HashMap<String, Timestamp> = report
        .devices
        .iter()
        .filter_map(|d| Some((d.dev_eui.clone(), d.last_seen?)))
        .collect();
    let received = Timestamp::now();
    let mut metrics = JoinSet::new();
    for target in input.fallback {
        let Some(seen) = last_seen.get(&target.device_id).copied() else {
            continue; // never seen (or not listed): no bucket can hold data
        };
        if target.fetched_for == Some(seen) {
            continue; // no uplink since the bucket was read
        }
        let (client, permits, aggregation) =
            (input.client.clone(), permits.clone(), input.aggregation);
        metrics.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let mut calls = 1;
            let mut used = aggregation;
            let (start, end) = bucket_of(used, seen);
            let mut result = client
                .get_metrics(&target.device_id, start, end, used)
                .await;
            if used == Aggregation::Minute
                && matches!(result, Err(UpstreamError::InvalidArgument(_)))
            {
                // Servers older than the MINUTE aggregation refuse it: fall back to HOUR.
                used = Aggregation::Hour;
                calls += 1;
                let (start, end) = bucket_of(used, seen);
                result = client
                    .get_metrics(&target.device_id, start, end, used)
                    .await;
            }
            (target, used, calls, seen, result)
        });
    }
    while let Some(joined) = metrics.join_next().await {
        let Ok((target, used, calls, seen, result)) = joined else {
            continue;
        };
        report.calls += calls;
        if used != input.aggregation {
            report.aggregation = used;
        }
        match result {
            Ok(buckets) => {
                bucket_samples(
                    &target,
                    &buckets,
                    bucket_of(used, seen).0,
                    received,
                    &mut report,
                );
                report.fetched.push((target.device_id.clone(), seen));
            }
            Err(error) => report
                .partial_errors
                .push(format!("GetMetrics {}: {error}", target.device_id)),
        }
    }

    // Link quality of the last uplink's bucket.
    let mut links = JoinSet::new();
    for device in &input.link_quality_of {
        let Some(seen) = last_seen.get(device).copied() else {
            continue;
        };
        let (client, permits, device) = (input.client.clone(), permits.clone(), device.clone());
        let aggregation = report.aggregation;
        links.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (start, end) = bucket_of(aggregation, seen);
            (
                device.clone(),
                start,
                client
                    .get_link_metrics(&device, start, end, aggregation)
                    .await,
            )
        });
    }
    while let Some(joined) = links.join_next().await {
        report.calls += 1;
        let Ok((device, bucket, result)) = joined else {
            continue;
        };
        match result {
            Ok((rssi, snr)) => {
                let at = |series: &MetricBuckets| {
                    series
                        .buckets
                        .iter()
                        .find(|(t, _)| *t == bucket)
                        .map(|(_, v)| *v)
                };
                if let Some(summary) = report.devices.iter_mut().find(|d| d.dev_eui == device) {
                    summary.rssi = at(&rssi).filter(|v| v.is_finite());
                    summary.snr = at(&snr).filter(|v| v.is_finite());
                }
            }
            Err(error) => report
                .partial_errors
                .push(format!("GetLinkMetrics {device}: {error}")),
        }
    }

    // Queues of overdue commands.
    let mut queues = JoinSet::new();
    for device_id in input.queues_to_check {
        let (client, permits) = (input.client.clone(), permits.clone());
        queues.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = client.get_queue(&device_id).await;
            (device_id, result)
        });
    }
    while let Some(joined) = queues.join_next().await {
        report.calls += 1;
        match joined {
            Ok((device_id, Ok(items))) => {
                report.queues.insert(device_id, items);
            }
            Ok((device_id, Err(error))) => report
                .partial_errors
                .push(format!("GetQueue {device_id}: {error}")),
            Err(join) => report
                .partial_errors
                .push(format!("queue task failed: {join}")),
        }
    }
    finish(report, started, None)
}

fn finish(
    mut report: CycleReport,
    started: Instant,
    failure: Option<UpstreamError>,
) -> CycleReport {
    report.failure = failure;
    report.duration = started.elapsed();
    report.finished = Timestamp::now();
    report
}

/// The value of each target metric in the bucket starting at `bucket`, as an aggregated
/// sample stamped with the bucket start (never the gateway clock).
fn bucket_samples(
    target: &FallbackTarget,
    buckets: &std::collections::BTreeMap<String, MetricBuckets>,
    bucket: Timestamp,
    received: Timestamp,
    report: &mut CycleReport,
) {
    for metric in &target.metrics {
        if metric.metric_type == MetricType::String {
            continue;
        }
        let Some(series) = buckets.get(&metric.upstream_name) else {
            continue;
        };
        let Some((bucket_start, value)) = series.buckets.iter().find(|(ts, _)| *ts == bucket)
        else {
            continue;
        };
        match convert_aggregate(*value, metric.metric_type) {
            Ok(value) => report.aggregates.push(Sample {
                device_id: target.device_id.clone(),
                metric: metric.metric_name.clone(),
                value,
                source_time: *bucket_start,
                received_time: received,
                origin: SampleOrigin::Aggregate,
            }),
            Err(reason) => report.rejections.push(Rejection {
                device_id: target.device_id.clone(),
                metric: metric.metric_name.clone(),
                reason,
                preview: format!("{value}"),
            }),
        }
    }
}
