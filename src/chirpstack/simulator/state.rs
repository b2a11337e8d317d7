//! The simulator's shared state: the world, each device's runtime (frame counters, event log,
//! uplink history, downlink queue), and the fault knobs. Services, the uplink schedule and the
//! handle all hold it through an `Arc`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tonic::Status;

use super::downlinks::QueuedDownlink;
use super::event_log::EventLog;
use super::faults::{lock, Gate};
use super::streams::StreamRegistry;
use super::world::World;
use super::{AckBehaviour, RecordedDownlink, SimulatorConfig};
use crate::chirpstack::events::DeviceInfoJson;
use crate::model::Timestamp;

/// Uplink times older than this are forgotten (`GetMetrics` history horizon).
pub(crate) const HISTORY_HORIZON: Duration = Duration::from_secs(2 * 3600);
/// At most this many uplink times per device, whatever the horizon.
pub(crate) const HISTORY_MAX_POINTS: usize = 10_000;
/// At most this many downlinks are kept for `SimulatorHandle::downlinks`.
const RECORDED_DOWNLINKS_MAX: usize = 10_000;

/// What one device has done so far.
#[derive(Debug)]
pub(crate) struct DeviceRuntime {
    pub(crate) f_cnt_up: u32,
    pub(crate) f_cnt_down: u32,
    pub(crate) last_uplink: Option<Timestamp>,
    pub(crate) events: EventLog,
    /// When each retained uplink happened: its values are recomputed from the world, so this is
    /// the whole metric history (8 bytes per uplink instead of one number per measurement).
    pub(crate) uplink_times: VecDeque<Timestamp>,
    pub(crate) queue: Vec<QueuedDownlink>,
}

pub(crate) struct SimState {
    pub(crate) config: SimulatorConfig,
    pub(crate) world: World,
    pub(crate) gate: Gate,
    pub(crate) streams: StreamRegistry,
    devices: Vec<Mutex<DeviceRuntime>>,
    /// Per device, the sequence number of its newest event: open streams wait on it.
    updates: Vec<watch::Sender<u64>>,
    recorded_downlinks: Mutex<VecDeque<RecordedDownlink>>,
    ack_behaviour: Mutex<AckBehaviour>,
    ids: Mutex<StdRng>,
    /// Devices deleted from the tenant (by world index): not listed, not found.
    deleted: Mutex<HashSet<usize>>,
}

impl SimState {
    pub(crate) fn new(config: SimulatorConfig, world: World) -> Self {
        let count = world.device_count();
        let devices = (0..count)
            .map(|_| {
                Mutex::new(DeviceRuntime {
                    f_cnt_up: 0,
                    f_cnt_down: 0,
                    last_uplink: None,
                    events: EventLog::new(config.event_history),
                    uplink_times: VecDeque::new(),
                    queue: Vec::new(),
                })
            })
            .collect();
        Self {
            gate: Gate::new(&config.api_token, config.seed),
            ids: Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x6f70_6367_7769_6473)),
            streams: StreamRegistry::new(),
            updates: (0..count).map(|_| watch::channel(0).0).collect(),
            recorded_downlinks: Mutex::new(VecDeque::new()),
            ack_behaviour: Mutex::new(AckBehaviour::default()),
            deleted: Mutex::new(HashSet::new()),
            devices,
            config,
            world,
        }
    }

    /// Runs `f` on device `index`'s runtime (a short, synchronous critical section).
    pub(crate) fn with_device<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut DeviceRuntime) -> R,
    ) -> R {
        f(&mut lock(&self.devices[index]))
    }

    /// Finds a device from request text: malformed => InvalidArgument, unknown => NotFound,
    /// as ChirpStack answers (it parses the EUI before looking it up).
    pub(crate) fn lookup(&self, dev_eui: &str) -> Result<usize, Status> {
        let valid = dev_eui.len() == 16 && dev_eui.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(Status::invalid_argument(
                "dev_eui must be 16 hexadecimal characters",
            ));
        }
        self.world
            .device(dev_eui)
            .map(|device| device.index)
            .filter(|&index| self.exists(index))
            .ok_or_else(|| {
                Status::not_found(format!(
                    "device {} does not exist",
                    dev_eui.to_ascii_lowercase()
                ))
            })
    }

    /// Whether device `index` is in the tenant (not deleted).
    pub(crate) fn exists(&self, index: usize) -> bool {
        !lock(&self.deleted).contains(&index)
    }

    /// Deletes device `index` from the tenant, or brings it back; false when nothing changed.
    pub(crate) fn set_exists(&self, index: usize, exists: bool) -> bool {
        let mut deleted = lock(&self.deleted);
        if exists {
            deleted.remove(&index)
        } else {
            deleted.insert(index)
        }
    }

    /// Appends an event to device `index`'s log and wakes its open streams.
    pub(crate) fn append_event(
        &self,
        index: usize,
        kind: &str,
        time: Timestamp,
        body: String,
        properties: HashMap<String, String>,
    ) {
        let seq = self.with_device(index, |device| {
            device.events.append(kind, time, body, properties)
        });
        self.notify(index, seq);
    }

    pub(crate) fn notify(&self, index: usize, seq: u64) {
        self.updates[index].send_replace(seq);
    }

    pub(crate) fn subscribe_events(&self, index: usize) -> watch::Receiver<u64> {
        self.updates[index].subscribe()
    }

    /// `deviceInfo` of every event body of device `index`.
    pub(crate) fn device_info(&self, index: usize) -> DeviceInfoJson {
        let device = self.world.device_at(index);
        DeviceInfoJson {
            tenant_id: self.world.tenant_id.clone(),
            application_id: device.application_id.clone(),
            application_name: self.world.application_of(index).name.clone(),
            device_name: device.name.clone(),
            dev_eui: device.dev_eui.clone(),
            tags: Default::default(),
        }
    }

    /// A fresh random (seeded) UUID v4 string: queue item and deduplication ids.
    pub(crate) fn new_uuid(&self) -> String {
        let bits: u128 = lock(&self.ids).gen();
        let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
        let hex = format!("{bits:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    pub(crate) fn random_u32(&self) -> u32 {
        lock(&self.ids).gen()
    }

    pub(crate) fn record_downlink(&self, downlink: RecordedDownlink) {
        let mut recorded = lock(&self.recorded_downlinks);
        if recorded.len() == RECORDED_DOWNLINKS_MAX {
            recorded.pop_front();
        }
        recorded.push_back(downlink);
    }

    pub(crate) fn recorded_downlinks(&self) -> Vec<RecordedDownlink> {
        lock(&self.recorded_downlinks).iter().cloned().collect()
    }

    pub(crate) fn ack_behaviour(&self) -> AckBehaviour {
        *lock(&self.ack_behaviour)
    }

    pub(crate) fn set_ack_behaviour(&self, behaviour: AckBehaviour) {
        *lock(&self.ack_behaviour) = behaviour;
    }
}
