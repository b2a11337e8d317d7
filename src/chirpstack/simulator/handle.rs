//! [`SimulatorHandle`]: what a test, benchmark or `opcgw simulate` holds to observe and break
//! a running simulator.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::faults::lock;
use super::server::{bind, Session};
use super::state::SimState;
use super::uplinks::spawn_schedule;
use super::world::World;
use super::{AckBehaviour, RecordedDownlink, SimulatorConfig};
use crate::model::{Timestamp, Value};

/// A running simulator. Clones share it; it stops when the last clone is dropped or on
/// [`SimulatorHandle::shutdown`].
#[derive(Clone)]
pub struct SimulatorHandle {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<SimState>,
    addr: SocketAddr,
    /// The serving session; `None` during an outage.
    session: Mutex<Option<Session>>,
    /// Serialises outage transitions (they await, so the session lock cannot cover them).
    transition: tokio::sync::Mutex<()>,
    schedule: Mutex<Option<JoinHandle<()>>>,
    /// Set by `shutdown`: an outage can end, a shutdown cannot.
    shut_down: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.state.streams.end_all();
        if let Some(session) = lock(&self.session).take() {
            session.abort();
        }
        if let Some(schedule) = lock(&self.schedule).take() {
            schedule.abort();
        }
    }
}

pub(crate) async fn start(
    config: SimulatorConfig,
    addr: SocketAddr,
) -> std::io::Result<SimulatorHandle> {
    config.validate()?;
    let listener = bind(addr)?;
    let addr = listener.local_addr()?;
    let started = Timestamp::now();
    let world = config.world(started);
    let state = Arc::new(SimState::new(config, world));
    state.record_past_uplinks(started);
    let session = Session::spawn(Arc::clone(&state), listener);
    let schedule = spawn_schedule(Arc::clone(&state));
    Ok(SimulatorHandle {
        inner: Arc::new(Inner {
            state,
            addr,
            session: Mutex::new(Some(session)),
            transition: tokio::sync::Mutex::new(()),
            schedule: Mutex::new(schedule),
            shut_down: AtomicBool::new(false),
        }),
    })
}

impl SimulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`, ready for `Channel::from_shared`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The simulated tenant: applications, devices, metric catalogue.
    pub fn world(&self) -> &World {
        &self.inner.state.world
    }

    /// The value metric `metric` of `dev_eui` has in an uplink at `at` (`battery_mv`
    /// included, though only `GetMetrics` reports it); `None` for unknown names.
    pub fn expected_value(&self, dev_eui: &str, metric: &str, at: Timestamp) -> Option<Value> {
        let world = self.world();
        let device = world.device(dev_eui)?;
        let m = world.metrics.iter().position(|m| m.name == metric)?;
        Some(world.value(device.index, m, at))
    }

    /// Delay added before every call is handled (unary calls and stream opens).
    pub fn set_latency(&self, latency: Duration) {
        self.inner.state.gate.set_latency(latency);
    }

    /// Fraction (0..=1) of unary calls that fail with `UNAVAILABLE`, drawn from the seeded RNG.
    pub fn set_error_rate(&self, fraction: f64) {
        self.inner.state.gate.set_error_rate(fraction);
    }

    /// Every `n`-th unary call from now on fails with UNAVAILABLE (0: none), counting
    /// authorized calls from this moment: a deterministic fault for tests.
    pub fn set_fail_every(&self, n: u64) {
        self.inner.state.gate.set_fail_every(n);
    }

    /// Takes the server down: connections and streams dropped, nothing listening on the port.
    /// Uplinks go on into the event logs and metric history, as they would in ChirpStack.
    pub async fn start_outage(&self) {
        let _transition = self.inner.transition.lock().await;
        self.inner.state.streams.end_all();
        let session = lock(&self.inner.session).take();
        if let Some(session) = session {
            session.stop().await;
        }
    }

    /// Serves again on the same port (a new stream replays what happened meanwhile). Fails if
    /// the port was taken meanwhile or the simulator was shut down.
    pub async fn end_outage(&self) -> std::io::Result<()> {
        let _transition = self.inner.transition.lock().await;
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the simulator was shut down"));
        }
        if lock(&self.inner.session).is_some() {
            return Ok(());
        }
        let listener = bind(self.inner.addr)?;
        let session = Session::spawn(Arc::clone(&self.inner.state), listener);
        *lock(&self.inner.session) = Some(session);
        Ok(())
    }

    /// Ends every open event stream with `UNAVAILABLE`; the server keeps running.
    pub fn drop_streams(&self) {
        self.inner.state.streams.end_all();
    }

    /// Replaces the bearer token every call must carry.
    pub fn set_api_token(&self, token: &str) {
        self.inner.state.gate.set_token(token);
    }

    /// Appends an event with this type and body, verbatim, to the device's log and open
    /// streams (malformed-input tests). Unknown devices are ignored.
    pub fn inject_raw_event(&self, dev_eui: &str, kind: &str, body: &str) {
        if let Some(device) = self.world().device(dev_eui) {
            let index = device.index;
            let state = &self.inner.state;
            state.append_event(
                index,
                kind,
                Timestamp::now(),
                body.to_string(),
                Default::default(),
            );
        }
    }

    /// Deletes a device from the tenant, as an operator would in ChirpStack: it is no longer
    /// listed and every call naming it answers NOT_FOUND. False for unknown or already deleted
    /// devices.
    pub fn delete_device(&self, dev_eui: &str) -> bool {
        self.world()
            .device(dev_eui)
            .is_some_and(|device| self.inner.state.set_exists(device.index, false))
    }

    /// Brings a deleted device back (the way a test adds a device at run time: start with it
    /// deleted, then add it). False for unknown or present devices.
    pub fn add_device(&self, dev_eui: &str) -> bool {
        self.world()
            .device(dev_eui)
            .is_some_and(|device| self.inner.state.set_exists(device.index, true))
    }

    /// Generates one uplink of the device now. Unknown devices are ignored.
    pub fn emit_uplink_now(&self, dev_eui: &str) {
        if let Some(device) = self.world().device(dev_eui) {
            self.inner.state.emit_uplink(device.index);
        }
    }

    /// Calls of `method` (`"DeviceService.GetMetrics"`) that reached the server, rejected ones
    /// included.
    pub fn calls(&self, method: &str) -> u64 {
        self.inner.state.gate.calls(method)
    }

    pub fn unauthenticated_calls(&self) -> u64 {
        self.inner.state.gate.unauthenticated_calls()
    }

    pub fn open_streams(&self) -> usize {
        self.inner.state.streams.open_count()
    }

    /// Every accepted `Enqueue`, oldest first (the last 10,000).
    pub fn downlinks(&self) -> Vec<RecordedDownlink> {
        self.inner.state.recorded_downlinks()
    }

    /// How devices answer downlinks enqueued from now on.
    pub fn set_ack_behaviour(&self, behaviour: AckBehaviour) {
        self.inner.state.set_ack_behaviour(behaviour);
    }

    /// Stops serving and generating, whoever else holds a clone.
    pub async fn shutdown(self) {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        self.start_outage().await;
        if let Some(schedule) = lock(&self.inner.schedule).take() {
            schedule.abort();
        }
    }
}
