//! One poll cycle: what streams cannot deliver. Device listings (last seen, battery, margin),
//! `GetMetrics` aggregates for metrics that uplinks never carry (and to reconcile after an
//! outage), and the downlink queues of commands that are overdue. Calls run concurrently,
//! bounded by `poll_concurrency`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chirpstack_api::common::Aggregation;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{ChirpstackApi, Clock};
use crate::chirpstack::buckets::bucket_of;
use crate::chirpstack::client::{DeviceSummary, MetricBuckets, QueueItem, UpstreamError};
use crate::chirpstack::mapping::{convert_aggregate, MetricMapping, Rejection};
use crate::config::MetricType;
use crate::model::{Sample, SampleOrigin, Timestamp};

/// Waits before the retries of a call the server answered UNAVAILABLE (a proxy's hiccup, a
/// server restarting a worker): one failed call must not cost a device a whole poll period.
pub const TRANSIENT_RETRY_DELAYS: [Duration; 2] =
    [Duration::from_millis(100), Duration::from_millis(300)];

/// `call`, made again after each of [`TRANSIENT_RETRY_DELAYS`] while its answer is a transient
/// failure; with the number of calls made.
async fn retried<T, F, Fut>(mut call: F) -> (u32, Result<T, UpstreamError>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, UpstreamError>>,
{
    let mut calls = 1;
    let mut answer = call().await;
    for delay in TRANSIENT_RETRY_DELAYS {
        match &answer {
            Err(error) if error.is_transient() => {
                tokio::time::sleep(delay).await;
                calls += 1;
                answer = call().await;
            }
            _ => break,
        }
    }
    (calls, answer)
}

/// The metrics of one device to fetch from `GetMetrics`.
#[derive(Debug, Clone)]
pub struct FallbackTarget {
    pub device_id: Arc<str>,
    pub metrics: Vec<MetricMapping>,
    /// The `last_seen` whose bucket was already read: unchanged means nothing new to fetch.
    pub fetched_for: Option<Timestamp>,
}

/// What one cycle asks for (planned by [`super::PollCycle::plan`]).
#[derive(Debug, Clone)]
pub struct CycleInput {
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
#[derive(Debug, Clone)]
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

/// What every phase of a cycle shares: the API, the bound on concurrent calls, the clock.
struct Calls<C> {
    api: Arc<C>,
    permits: Arc<Semaphore>,
}

impl<C> Clone for Calls<C> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            permits: self.permits.clone(),
        }
    }
}

/// Runs one cycle against `api`, at most `input.concurrency` calls at a time.
pub async fn run_cycle<C: ChirpstackApi>(
    api: Arc<C>,
    input: CycleInput,
    clock: &dyn Clock,
) -> CycleReport {
    let started = Instant::now();
    let calls = Calls {
        api,
        permits: Arc::new(Semaphore::new(input.concurrency.max(1))),
    };
    let mut report = CycleReport {
        finished: clock.now(),
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
    let outcome = async {
        if input.verify_applications {
            verify_applications(&calls, &input, &mut report).await?;
        }
        list_devices(&calls, &input, &mut report).await?;
        let last_seen: HashMap<String, Timestamp> = report
            .devices
            .iter()
            .filter_map(|d| Some((d.dev_eui.clone(), d.last_seen?)))
            .collect();
        fetch_metrics(&calls, &input, &last_seen, clock.now(), &mut report).await;
        fetch_link_quality(&calls, &input, &last_seen, &mut report).await;
        check_queues(&calls, &input, &mut report).await;
        Ok(())
    }
    .await;
    report.failure = outcome.err();
    report.duration = started.elapsed();
    report.finished = clock.now();
    report
}

/// Which configured applications the tenant does not have.
async fn verify_applications<C: ChirpstackApi>(
    calls: &Calls<C>,
    input: &CycleInput,
    report: &mut CycleReport,
) -> Result<(), UpstreamError> {
    let (count, apps) = retried(|| {
        calls
            .api
            .list_applications(&input.tenant_id, input.page_size)
    })
    .await;
    report.calls += count;
    let apps = apps?;
    report.unknown_applications = input
        .application_ids
        .iter()
        .filter(|id| !apps.iter().any(|a| &a.id == *id))
        .cloned()
        .collect();
    Ok(())
}

/// Device listings, one application per task. Fails the cycle only when no listing answered
/// (down, or the token is refused).
async fn list_devices<C: ChirpstackApi>(
    calls: &Calls<C>,
    input: &CycleInput,
    report: &mut CycleReport,
) -> Result<(), UpstreamError> {
    let mut listings = JoinSet::new();
    for application_id in input.application_ids.clone() {
        let (calls, page_size) = (calls.clone(), input.page_size);
        listings.spawn(async move {
            let _permit = calls.permits.acquire_owned().await;
            let (count, result) =
                retried(|| calls.api.list_devices(&application_id, page_size)).await;
            (application_id, count, result)
        });
    }
    let mut listing_errors = Vec::new();
    while let Some(joined) = listings.join_next().await {
        match joined {
            Ok((_, count, Ok(devices))) => {
                report.calls += count;
                report.devices.extend(devices);
            }
            Ok((application_id, count, Err(error))) => {
                report.calls += count;
                listing_errors.push((application_id, error));
            }
            Err(join) => {
                report.calls += 1;
                report
                    .partial_errors
                    .push(format!("listing task failed: {join}"));
            }
        }
    }
    if !listing_errors.is_empty() && listing_errors.len() == input.application_ids.len() {
        let (_, error) = listing_errors.swap_remove(0);
        return Err(error);
    }
    for (application_id, error) in listing_errors {
        report
            .partial_errors
            .push(format!("listing application {application_id}: {error}"));
    }
    Ok(())
}

/// `GetMetrics` for metrics without uplink values. ChirpStack answers with every bucket of
/// the range, empty ones as 0, so "no data" cannot be told from a real 0: ask for the one
/// bucket that holds the device's last uplink (ChirpStack's own `last_seen_at`), which is the
/// newest bucket that has data.
async fn fetch_metrics<C: ChirpstackApi>(
    calls: &Calls<C>,
    input: &CycleInput,
    last_seen: &HashMap<String, Timestamp>,
    received: Timestamp,
    report: &mut CycleReport,
) {
    let mut metrics = JoinSet::new();
    for target in input.fallback.iter().cloned() {
        let Some(seen) = last_seen.get(&*target.device_id).copied() else {
            continue; // never seen (or not listed): no bucket can hold data
        };
        if target.fetched_for == Some(seen) {
            continue; // no uplink since the bucket was read
        }
        let (calls, aggregation) = (calls.clone(), input.aggregation);
        metrics.spawn(async move {
            let _permit = calls.permits.acquire_owned().await;
            let (used, count, result) =
                get_bucket(&*calls.api, &target.device_id, seen, aggregation).await;
            (target, used, count, seen, result)
        });
    }
    while let Some(joined) = metrics.join_next().await {
        let Ok((target, used, count, seen, result)) = joined else {
            continue;
        };
        report.calls += count;
        if used != input.aggregation {
            report.aggregation = used;
        }
        match result {
            Ok(buckets) => {
                bucket_samples(&target, &buckets, bucket_of(used, seen).0, received, report);
                report.fetched.push((target.device_id.to_string(), seen));
            }
            Err(error) => report
                .partial_errors
                .push(format!("GetMetrics {}: {error}", target.device_id)),
        }
    }
}

/// The bucket of `seen` at `aggregation`; servers older than the MINUTE aggregation refuse
/// it, and then HOUR is asked instead. Returns the aggregation used and the calls made.
async fn get_bucket<C: ChirpstackApi + ?Sized>(
    api: &C,
    device_id: &str,
    seen: Timestamp,
    aggregation: Aggregation,
) -> (
    Aggregation,
    u32,
    Result<BTreeMap<String, MetricBuckets>, UpstreamError>,
) {
    let (start, end) = bucket_of(aggregation, seen);
    let (count, result) = retried(|| api.get_metrics(device_id, start, end, aggregation)).await;
    if aggregation == Aggregation::Minute
        && matches!(result, Err(UpstreamError::InvalidArgument(_)))
    {
        let (start, end) = bucket_of(Aggregation::Hour, seen);
        let (more, result) =
            retried(|| api.get_metrics(device_id, start, end, Aggregation::Hour)).await;
        return (Aggregation::Hour, count + more, result);
    }
    (aggregation, count, result)
}

/// Link quality of the last uplink's bucket.
async fn fetch_link_quality<C: ChirpstackApi>(
    calls: &Calls<C>,
    input: &CycleInput,
    last_seen: &HashMap<String, Timestamp>,
    report: &mut CycleReport,
) {
    let mut links = JoinSet::new();
    for device in &input.link_quality_of {
        let Some(seen) = last_seen.get(device).copied() else {
            continue;
        };
        let (calls, device) = (calls.clone(), device.clone());
        let aggregation = report.aggregation;
        links.spawn(async move {
            let _permit = calls.permits.acquire_owned().await;
            let (start, end) = bucket_of(aggregation, seen);
            let (count, result) =
                retried(|| calls.api.get_link_metrics(&device, start, end, aggregation)).await;
            (device, start, count, result)
        });
    }
    // RSSI and SNR by device, applied in one pass over the listed devices (finding each
    // device in the list cost 10,000 x 1,667 string compares a cycle at 10,000 devices).
    let mut quality: HashMap<String, (Option<f32>, Option<f32>)> = HashMap::new();
    while let Some(joined) = links.join_next().await {
        let Ok((device, bucket, count, result)) = joined else {
            report.calls += 1;
            continue;
        };
        report.calls += count;
        match result {
            Ok((rssi, snr)) => {
                let at = |series: &MetricBuckets| {
                    series
                        .buckets
                        .iter()
                        .find(|(t, _)| *t == bucket)
                        .map(|(_, v)| *v)
                        .filter(|v| v.is_finite())
                };
                quality.insert(device, (at(&rssi), at(&snr)));
            }
            Err(error) => report
                .partial_errors
                .push(format!("GetLinkMetrics {device}: {error}")),
        }
    }
    if quality.is_empty() {
        return;
    }
    for summary in &mut report.devices {
        if let Some((rssi, snr)) = quality.remove(&summary.dev_eui) {
            (summary.rssi, summary.snr) = (rssi, snr);
        }
    }
}

/// Queues of overdue commands.
async fn check_queues<C: ChirpstackApi>(
    calls: &Calls<C>,
    input: &CycleInput,
    report: &mut CycleReport,
) {
    let mut queues = JoinSet::new();
    for device_id in input.queues_to_check.iter().cloned() {
        let calls = calls.clone();
        queues.spawn(async move {
            let _permit = calls.permits.acquire_owned().await;
            let (count, result) = retried(|| calls.api.get_queue(&device_id)).await;
            (device_id, count, result)
        });
    }
    while let Some(joined) = queues.join_next().await {
        match joined {
            Ok((device_id, count, Ok(items))) => {
                report.calls += count;
                report.queues.insert(device_id, items);
            }
            Ok((device_id, count, Err(error))) => {
                report.calls += count;
                report
                    .partial_errors
                    .push(format!("GetQueue {device_id}: {error}"));
            }
            Err(join) => {
                report.calls += 1;
                report
                    .partial_errors
                    .push(format!("queue task failed: {join}"));
            }
        }
    }
}

/// The value of each target metric in the bucket starting at `bucket`, as an aggregated
/// sample stamped with the bucket start (never the gateway clock).
fn bucket_samples(
    target: &FallbackTarget,
    buckets: &BTreeMap<String, MetricBuckets>,
    bucket: Timestamp,
    received: Timestamp,
    report: &mut CycleReport,
) {
    for metric in &target.metrics {
        if metric.metric_type == MetricType::String {
            continue;
        }
        let Some(series) = buckets.get(&*metric.upstream_name) else {
            continue;
        };
        let Some((bucket_start, value)) = series.buckets.iter().find(|(ts, _)| *ts == bucket)
        else {
            continue;
        };
        match convert_aggregate(*value, metric.metric_type) {
            Ok(value) => report.aggregates.push(Sample {
                device_id: Arc::clone(&target.device_id),
                metric: Arc::clone(&metric.metric_name),
                value,
                source_time: *bucket_start,
                received_time: received,
                origin: SampleOrigin::Aggregate,
            }),
            Err(reason) => report.rejections.push(Rejection {
                device_id: target.device_id.to_string(),
                metric: metric.metric_name.to_string(),
                reason,
                preview: format!("{value}"),
            }),
        }
    }
}
