//! The part of the ChirpStack API a poll cycle uses, as a trait: the tonic client implements
//! it, and so does the test double of the cycle's unit tests.

use std::collections::BTreeMap;
use std::future::Future;

use async_trait::async_trait;
use chirpstack_api::common::Aggregation;

use crate::chirpstack::client::{
    ApplicationSummary, DeviceSummary, MetricBuckets, QueueItem, UpstreamError, MAX_LISTED_ITEMS,
};
use crate::model::Timestamp;

/// The calls of one poll cycle. Listings are fetched page by page (`limit`, `offset`); the
/// provided `list_*` methods collect every page.
#[async_trait]
pub trait ChirpstackApi: Send + Sync + 'static {
    /// One page of the tenant's applications, with the total the server claims.
    async fn list_applications_page(
        &self,
        tenant_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<ApplicationSummary>), UpstreamError>;

    /// One page of an application's devices, with the total the server claims.
    async fn list_devices_page(
        &self,
        application_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<DeviceSummary>), UpstreamError>;

    /// Aggregated measurements of a device in `[start, end)`.
    async fn get_metrics(
        &self,
        dev_eui: &str,
        start: Timestamp,
        end: Timestamp,
        aggregation: Aggregation,
    ) -> Result<BTreeMap<String, MetricBuckets>, UpstreamError>;

    /// Gateway RSSI and SNR of a device in `[start, end)`, per bucket.
    async fn get_link_metrics(
        &self,
        dev_eui: &str,
        start: Timestamp,
        end: Timestamp,
        aggregation: Aggregation,
    ) -> Result<(MetricBuckets, MetricBuckets), UpstreamError>;

    /// The device's downlink queue.
    async fn get_queue(&self, dev_eui: &str) -> Result<Vec<QueueItem>, UpstreamError>;

    /// Every application of `tenant_id`, `page_size` per call.
    async fn list_applications(
        &self,
        tenant_id: &str,
        page_size: u32,
    ) -> Result<Vec<ApplicationSummary>, UpstreamError> {
        paginate(page_size, |limit, offset| {
            self.list_applications_page(tenant_id, limit, offset)
        })
        .await
    }

    /// Every device of `application_id`, `page_size` per call.
    async fn list_devices(
        &self,
        application_id: &str,
        page_size: u32,
    ) -> Result<Vec<DeviceSummary>, UpstreamError> {
        paginate(page_size, |limit, offset| {
            self.list_devices_page(application_id, limit, offset)
        })
        .await
    }
}

/// Collects every page of a listing. The first page says how many there are; the loop ends on
/// a short or empty page too, and never collects more than [`MAX_LISTED_ITEMS`].
pub async fn paginate<T, F, Fut>(page_size: u32, mut fetch: F) -> Result<Vec<T>, UpstreamError>
where
    F: FnMut(u32, u32) -> Fut,
    Fut: Future<Output = Result<(u32, Vec<T>), UpstreamError>>,
{
    let page_size = page_size.max(1);
    let mut out = Vec::new();
    loop {
        let (total, page) = fetch(page_size, out.len() as u32).await?;
        let got = page.len();
        out.extend(page);
        if got == 0
            || got < page_size as usize
            || out.len() >= total as usize
            || out.len() >= MAX_LISTED_ITEMS
        {
            out.truncate(MAX_LISTED_ITEMS);
            return Ok(out);
        }
    }
}
