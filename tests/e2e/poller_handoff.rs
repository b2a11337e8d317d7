//! What the poller and its event streams hand to the other actors, with stand-ins for those
//! actors: the values of the first seconds reach the siblings already running, and parsed
//! events waiting for the poller are bounded without losing any.

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opcgw::chirpstack::client::{ChirpstackClient, ClientSettings};
use opcgw_actors::duties::opcua as opcua_role;
use opcgw_actors::duties::poller::output::PeerOutput;
use opcgw_actors::duties::poller::streams::{StreamPool, MAX_EVENTS_IN_FLIGHT};
use opcgw_actors::duties::poller::{PollerActor, PollerArgs};
use opcgw_actors::tree::messages::{ConfigUpdate, Feed, OpcUaMsg, Peers, PollerMsg};
use ractor::{Actor, ActorRef};
use tokio::sync::mpsc;

use crate::logs;
use crate::poller::{gateway_config, simulator, wait_streams};

/// Stands in for the OPC UA actor: forwards what the poller feeds it.
struct OpcUaStandIn;

impl Actor for OpcUaStandIn {
    type Msg = OpcUaMsg;
    type State = mpsc::UnboundedSender<Feed>;
    type Arguments = mpsc::UnboundedSender<Feed>;

    async fn pre_start(
        &self,
        _myself: ActorRef<OpcUaMsg>,
        feed: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(feed)
    }

    async fn handle(
        &self,
        _myself: ActorRef<OpcUaMsg>,
        message: OpcUaMsg,
        feed: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let OpcUaMsg::Feed(item) = message {
            let _ = feed.send(item);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_the_first_seconds_reach_the_siblings_running_before_the_poller() {
    // In the tree, storage and OPC UA start before the poller; the supervisor's first
    // `PeersChanged` reaches the poller only after its streams are open. What arrives in
    // between must reach OPC UA all the same (it used to go to storage only, so a device
    // showed its stored value until its next uplink). Here no `PeersChanged` ever comes.
    logs::capture();
    let sim = simulator(|_| {}).await;
    let config = gateway_config(&sim, |_| {});
    let devices: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();
    let (tx, mut fed) = mpsc::unbounded_channel();
    let (opcua, _opcua_join) = Actor::spawn(None, OpcUaStandIn, tx)
        .await
        .expect("stand-in starts");
    let args = PollerArgs {
        config: ConfigUpdate::initial(Arc::new(config)),
        output: Box::new(PeerOutput::new()),
        peers: Peers::from_running(
            [(opcua_role::ROLE, opcua.get_cell())],
            &opcgw::storage::ReadSlot::new(),
        ),
    };
    let (poller, _join) = Actor::spawn(None, PollerActor, args)
        .await
        .expect("poller starts");
    wait_streams(&sim, devices.len()).await;
    for dev in &devices {
        sim.emit_uplink_now(dev);
    }
    let mut reported = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reported.len() < devices.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, fed.recv()).await {
            Ok(Some(Feed::Samples(samples))) => {
                reported.extend(samples.iter().map(|s| s.device_id.clone()));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!(
                "the OPC UA actor got values of {} of {} devices without a PeersChanged",
                reported.len(),
                devices.len()
            ),
        }
    }
    poller.stop(None);
    opcua.stop(None);
    sim.shutdown().await;
}

/// Stands in for the poller: keeps every event it is sent (and so its in-flight permit)
/// until told to let go (a `PollTick`); counts what it holds and what it got in all.
struct HoardingPoller;

#[derive(Default)]
struct Hoard {
    holding: AtomicUsize,
    total: AtomicUsize,
}

impl Actor for HoardingPoller {
    type Msg = PollerMsg;
    type State = (Vec<PollerMsg>, Arc<Hoard>);
    type Arguments = Arc<Hoard>;

    async fn pre_start(
        &self,
        _myself: ActorRef<PollerMsg>,
        hoard: Arc<Hoard>,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok((Vec::new(), hoard))
    }

    async fn handle(
        &self,
        _myself: ActorRef<PollerMsg>,
        message: PollerMsg,
        (kept, hoard): &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match message {
            PollerMsg::DeviceEvent { .. } => {
                kept.push(message);
                hoard.total.fetch_add(1, SeqCst);
            }
            PollerMsg::PollTick { .. } => kept.clear(),
            _ => {}
        }
        hoard.holding.store(kept.len(), SeqCst);
        Ok(())
    }
}

async fn hoarded(hoard: &Hoard, what: &str, done: impl Fn(&Hoard) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(hoard) {
        assert!(
            Instant::now() < deadline,
            "{what}: holding {}, {} in all",
            hoard.holding.load(SeqCst),
            hoard.total.load(SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parsed_events_waiting_for_the_poller_are_bounded_and_none_is_lost() {
    // 60 devices with 10 events each to replay when their streams open: 600 events, more
    // than may wait for the poller at once.
    let sim = simulator(|c| c.devices_per_application = 60).await;
    let devices: Vec<String> = sim.world().devices().map(|d| d.dev_eui.clone()).collect();
    for dev in &devices {
        for _ in 0..10 {
            sim.emit_uplink_now(dev);
        }
    }
    let config = gateway_config(&sim, |_| {});
    let client = ChirpstackClient::new(ClientSettings {
        server_address: config.chirpstack.server_address.clone(),
        api_token: config.chirpstack.api_token.clone(),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let hoard = Arc::new(Hoard::default());
    let (hoarder, _join) = Actor::spawn(None, HoardingPoller, hoard.clone())
        .await
        .expect("stand-in starts");
    let mut pool = StreamPool::new(client, 100, 4);
    pool.sync(&devices, &hoarder);
    hoarded(&hoard, "the first events", |h| {
        h.holding.load(SeqCst) >= MAX_EVENTS_IN_FLIGHT
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hoard.total.load(SeqCst),
        MAX_EVENTS_IN_FLIGHT,
        "no more events are handed over while {MAX_EVENTS_IN_FLIGHT} wait for the poller"
    );
    // The poller catches up: the rest arrives, every event once.
    hoarder.cast(PollerMsg::PollTick { generation: 0 }).unwrap();
    hoarded(&hoard, "every event", |h| h.total.load(SeqCst) >= 600).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hoard.total.load(SeqCst), 600);
    drop(pool);
    hoarder.stop(None);
    sim.shutdown().await;
}
