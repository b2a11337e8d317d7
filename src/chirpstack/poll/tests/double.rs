//! An in-memory ChirpStack for the cycle's tests: applications and devices served page by
//! page, `GetMetrics` answering one bucket per metric, switches for an outage, every n-th
//! call failing, a failing device, a server without MINUTE aggregation and slow calls, and a log of every call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chirpstack_api::common::Aggregation;

use crate::chirpstack::client::{
    ApplicationSummary, DeviceSummary, MetricBuckets, QueueItem, UpstreamError,
};
use crate::chirpstack::poll::{ChirpstackApi, Clock};
use crate::model::Timestamp;

/// What the double serves; tests change it between cycles.
#[derive(Debug, Default)]
pub struct World {
    pub applications: Vec<String>,
    pub devices: HashMap<String, Vec<DeviceSummary>>,
    /// Per device, the value of each upstream metric in whatever bucket is asked for.
    pub metrics: HashMap<String, BTreeMap<String, f32>>,
    /// Every call fails as if the server were unreachable (connection refused).
    pub down: bool,
    /// Every n-th call is answered UNAVAILABLE (a proxy's hiccup), counting from the first.
    pub fail_every: Option<usize>,
    /// `GetMetrics` of these devices fails.
    pub failing_devices: HashSet<String>,
    /// MINUTE aggregation is refused, as older servers do.
    pub refuse_minute: bool,
    /// Each call takes this long (on tokio's clock).
    pub latency: Duration,
}

/// One call as the double saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    ListApplications {
        offset: u32,
    },
    ListDevices {
        application: String,
        offset: u32,
    },
    GetMetrics {
        device: String,
        aggregation: Aggregation,
        start: Timestamp,
    },
    GetLinkMetrics {
        device: String,
    },
    GetQueue {
        device: String,
    },
}

#[derive(Default)]
pub struct Double {
    pub world: Mutex<World>,
    pub calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    entered: AtomicUsize,
    /// The most calls that were in progress at once.
    pub max_in_flight: AtomicUsize,
}

impl Double {
    pub fn new(world: World) -> Self {
        Self {
            world: Mutex::new(world),
            ..Self::default()
        }
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records the call, waits the latency, and says whether the server is down.
    async fn enter(&self, call: Call) -> Result<(), UpstreamError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let nth = self.entered.fetch_add(1, Ordering::SeqCst) + 1;
        let (latency, down, fail_every) = {
            let world = self.world();
            (world.latency, world.down, world.fail_every)
        };
        tokio::time::sleep(latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if down {
            return Err(UpstreamError::Refused("connection refused".into()));
        }
        if fail_every.is_some_and(|n| nth % n == 0) {
            return Err(UpstreamError::Unavailable(
                "injected: every n-th call fails".into(),
            ));
        }
        Ok(())
    }
}

fn page<T: Clone>(all: &[T], limit: u32, offset: u32) -> (u32, Vec<T>) {
    let items = all
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .cloned()
        .collect();
    (all.len() as u32, items)
}

#[async_trait]
impl ChirpstackApi for Double {
    async fn list_applications_page(
        &self,
        _tenant_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<ApplicationSummary>), UpstreamError> {
        self.enter(Call::ListApplications { offset }).await?;
        let apps: Vec<ApplicationSummary> = self
            .world()
            .applications
            .iter()
            .map(|id| ApplicationSummary {
                id: id.clone(),
                name: id.clone(),
            })
            .collect();
        Ok(page(&apps, limit, offset))
    }

    async fn list_devices_page(
        &self,
        application_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(u32, Vec<DeviceSummary>), UpstreamError> {
        self.enter(Call::ListDevices {
            application: application_id.into(),
            offset,
        })
        .await?;
        let world = self.world();
        let Some(devices) = world.devices.get(application_id) else {
            return Err(UpstreamError::NotFound(format!(
                "application {application_id}"
            )));
        };
        Ok(page(devices, limit, offset))
    }

    async fn get_metrics(
        &self,
        dev_eui: &str,
        start: Timestamp,
        _end: Timestamp,
        aggregation: Aggregation,
    ) -> Result<BTreeMap<String, MetricBuckets>, UpstreamError> {
        self.enter(Call::GetMetrics {
            device: dev_eui.into(),
            aggregation,
            start,
        })
        .await?;
        let world = self.world();
        if aggregation == Aggregation::Minute && world.refuse_minute {
            return Err(UpstreamError::InvalidArgument(
                "aggregation MINUTE is not supported".into(),
            ));
        }
        if world.failing_devices.contains(dev_eui) {
            return Err(UpstreamError::Other {
                code: "Internal".into(),
                message: "metrics store failed".into(),
            });
        }
        let metrics = world.metrics.get(dev_eui).cloned().unwrap_or_default();
        Ok(metrics
            .into_iter()
            .map(|(name, value)| {
                let buckets = vec![(start, value)];
                (name.clone(), MetricBuckets { name, buckets })
            })
            .collect())
    }

    async fn get_link_metrics(
        &self,
        dev_eui: &str,
        start: Timestamp,
        _end: Timestamp,
        _aggregation: Aggregation,
    ) -> Result<(MetricBuckets, MetricBuckets), UpstreamError> {
        self.enter(Call::GetLinkMetrics {
            device: dev_eui.into(),
        })
        .await?;
        let series = |name: &str, value: f32| MetricBuckets {
            name: name.into(),
            buckets: vec![(start, value)],
        };
        Ok((series("gw_rssi", -80.0), series("gw_snr", 7.5)))
    }

    async fn get_queue(&self, dev_eui: &str) -> Result<Vec<QueueItem>, UpstreamError> {
        self.enter(Call::GetQueue {
            device: dev_eui.into(),
        })
        .await?;
        Ok(Vec::new())
    }
}

/// A wall clock that stands still unless a test moves it.
pub struct FixedClock(pub Mutex<Timestamp>);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
