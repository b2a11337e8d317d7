//! The supervisor's restart policy, exercised in-process with probe actors.
//!
//! Tests that measure delays run on tokio's paused clock (`start_paused`): time moves only when
//! every task waits, so a restart delay is observed exactly, whatever the machine's load.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use opcgw::backoff::Backoff;
use opcgw::config::AppConfig;
use opcgw_actors::tree::backoff::{IntensityPolicy, SupervisorPolicy};
use opcgw_actors::tree::child::{actor_child, draining_at_stop, with_after_stop, ChildSpec};
use opcgw_actors::tree::gateway::{Tree, TreeHandle};
use opcgw_actors::tree::messages::{Common, ConfigUpdate};
use opcgw_actors::tree::supervisor::{ChildState, FaultPlan, SupervisorMsg, TreeExit};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// A probe: records its starts and stops, answers pings, fails in every way an actor can on
/// request, and can be made to fail at start by holding a port it must bind.
struct Probe {
    name: &'static str,
    journal: Journal,
    bind_port: Option<u16>,
}

#[derive(Clone, Default)]
struct Journal {
    starts: Arc<Mutex<Vec<(&'static str, Instant)>>>,
    stops: Arc<Mutex<Vec<&'static str>>>,
    crashes: Arc<Mutex<Vec<(&'static str, Instant)>>>,
}

impl Journal {
    fn starts_of(&self, name: &str) -> Vec<Instant> {
        self.starts
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .collect()
    }
}

enum ProbeMsg {
    Common(Common),
    Ping(RpcReplyPort<u64>),
    /// Panics in `handle`.
    Crash,
    /// Returns an `Err` from `handle`.
    Fail,
    /// Stops itself, as an actor that decides its work is over would.
    StopSelf,
    /// From now on, panics in `post_stop`.
    PanicOnStop,
    /// Answers after 50 ms of work.
    Slow(RpcReplyPort<()>),
}

impl From<Common> for ProbeMsg {
    fn from(common: Common) -> Self {
        Self::Common(common)
    }
}

struct ProbeState {
    pings: u64,
    panic_on_stop: bool,
    _listener: Option<TcpListener>,
}

impl Actor for Probe {
    type Msg = ProbeMsg;
    type State = ProbeState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<ProbeMsg>,
        _: (),
    ) -> Result<ProbeState, ActorProcessingErr> {
        let listener = match self.bind_port {
            Some(port) => Some(TcpListener::bind(("127.0.0.1", port))?),
            None => None,
        };
        self.journal
            .starts
            .lock()
            .unwrap()
            .push((self.name, Instant::now()));
        Ok(ProbeState {
            pings: 0,
            panic_on_stop: false,
            _listener: listener,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ProbeMsg>,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        self.journal.stops.lock().unwrap().push(self.name);
        if state.panic_on_stop {
            panic!("probe {} panicked in post_stop on purpose", self.name)
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        message: ProbeMsg,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProbeMsg::Ping(reply) => {
                state.pings += 1;
                let _ = reply.send(state.pings);
            }
            ProbeMsg::Crash => {
                self.journal
                    .crashes
                    .lock()
                    .unwrap()
                    .push((self.name, Instant::now()));
                panic!("probe {} crashed on purpose", self.name)
            }
            ProbeMsg::Fail => {
                self.journal
                    .crashes
                    .lock()
                    .unwrap()
                    .push((self.name, Instant::now()));
                return Err(format!("probe {} failed on purpose", self.name).into());
            }
            ProbeMsg::StopSelf => myself.stop(Some(format!("probe {} is done", self.name))),
            ProbeMsg::PanicOnStop => state.panic_on_stop = true,
            ProbeMsg::Slow(reply) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = reply.send(());
            }
            ProbeMsg::Common(Common::InjectPanic(reason)) => {
                panic!("probe {}: {reason}", self.name)
            }
            ProbeMsg::Common(_) => {}
        }
        Ok(())
    }
}

/// Planned probe panics print one line instead of a backtrace: resolving a backtrace takes tens
/// of milliseconds in a debug build, which would blur the restart delays measured here.
fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .unwrap_or_default();
            if message.starts_with("probe ") {
                eprintln!("planned panic: {message}");
            } else {
                default(info);
            }
        }));
    });
}

fn probe(name: &'static str, journal: &Journal, bind_port: Option<u16>) -> Arc<dyn ChildSpec> {
    quiet_planned_panics();
    let journal = journal.clone();
    actor_child(name, move |_| {
        (
            Probe {
                name,
                journal: journal.clone(),
                bind_port,
            },
            (),
        )
    })
}

fn policy(initial_ms: u64, max_ms: u64, max_restarts: u32) -> SupervisorPolicy {
    SupervisorPolicy {
        backoff: Backoff::new(
            Duration::from_millis(initial_ms),
            Duration::from_millis(max_ms),
        )
        .with_jitter(0.2),
        reset_after: Duration::from_secs(60),
        intensity: IntensityPolicy {
            max_restarts,
            window: Duration::from_secs(300),
        },
        start_timeout: Duration::from_secs(5),
        // 2 s per child for up to three children.
        shutdown_timeout: Duration::from_secs(6),
    }
}

async fn start(
    children: Vec<Arc<dyn ChildSpec>>,
    policy: SupervisorPolicy,
    faults: Vec<FaultPlan>,
) -> Tree {
    Tree::start_with(
        children,
        policy,
        ConfigUpdate::initial(Arc::new(AppConfig::default())),
        faults,
    )
    .await
    .expect("tree starts")
}

async fn lookup(handle: &TreeHandle, name: &str) -> Option<ActorRef<ProbeMsg>> {
    let cell = handle
        .supervisor
        .call(
            |reply| SupervisorMsg::Lookup(name.into(), reply),
            Some(Duration::from_secs(2)),
        )
        .await
        .ok()?
        .success_or(())
        .ok()??;
    Some(cell.into())
}

/// Pings `name` every 5 ms until stopped; returns how many pings were answered and how many
/// went unanswered.
fn keep_pinging(
    handle: TreeHandle,
    name: &'static str,
) -> (
    tokio::task::JoinHandle<(u64, u64)>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let (mut answered, mut missed) = (0, 0);
        let actor = lookup(&handle, name).await.expect("sibling is running");
        loop {
            match actor
                .call(ProbeMsg::Ping, Some(Duration::from_millis(500)))
                .await
            {
                Ok(ractor::rpc::CallResult::Success(_)) => answered += 1,
                _ => missed += 1,
            }
            tokio::select! {
                _ = &mut stop_rx => return (answered, missed),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    });
    (task, stop_tx)
}

async fn wait_until<F: Fn(&opcgw_actors::tree::supervisor::TreeStatus) -> bool>(
    handle: &TreeHandle,
    timeout: Duration,
    what: &str,
    pred: F,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = handle.status().await.expect("status");
        if pred(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_child_is_restarted_with_backoff_while_its_sibling_keeps_working() {
    let journal = Journal::default();
    let tree = start(
        vec![
            probe("steady", &journal, None),
            probe("crashy", &journal, None),
        ],
        policy(100, 400, 100),
        vec![],
    )
    .await;
    let handle = tree.handle.clone();
    let (pinger, stop_pinger) = keep_pinging(handle.clone(), "steady");

    let nominal = [100u64, 200, 400, 400];
    for round in 0..nominal.len() {
        wait_until(&handle, Duration::from_secs(5), "crashy running", |s| {
            s.child("crashy")
                .is_some_and(|c| c.state == ChildState::Running && c.restarts == round as u32)
        })
        .await;
        let crashy = lookup(&handle, "crashy").await.expect("crashy is running");
        crashy.cast(ProbeMsg::Crash).expect("send crash");
    }
    wait_until(&handle, Duration::from_secs(5), "fourth restart", |s| {
        s.child("crashy")
            .is_some_and(|c| c.state == ChildState::Running && c.restarts == 4)
    })
    .await;

    let starts = journal.starts_of("crashy");
    let crashes: Vec<Instant> = journal
        .crashes
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(starts.len(), 5, "initial start + 4 restarts");
    for (i, expected) in nominal.iter().enumerate() {
        let observed = starts[i + 1].duration_since(crashes[i]).as_millis() as u64;
        // Jitter shortens by up to 20%; on the paused clock nothing else adds to the delay
        // (the timer wheel rounds up to the next millisecond).
        let (low, high) = (expected * 8 / 10, expected + 1);
        assert!(
            (low..=high).contains(&observed),
            "restart {i}: waited {observed} ms, policy says {low}-{expected} ms"
        );
    }

    let status = handle.status().await.unwrap();
    let crashy = status.child("crashy").unwrap();
    assert_eq!(crashy.restarts, 4);
    assert!(
        crashy
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("crashed on purpose"),
        "{crashy:?}"
    );
    let steady = status.child("steady").unwrap();
    assert_eq!((steady.restarts, steady.state), (0, ChildState::Running));
    assert_eq!(
        journal.starts_of("steady").len(),
        1,
        "the sibling was never restarted"
    );

    let _ = stop_pinger.send(());
    let (answered, missed) = pinger.await.unwrap();
    assert_eq!(
        missed, 0,
        "the sibling missed pings while its neighbour was crashing"
    );
    assert!(answered > 50, "the sibling answered only {answered} pings");
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_cannot_bind_its_port_is_retried_until_the_port_is_free() {
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let journal = Journal::default();
    let tree = start(
        vec![
            probe("steady", &journal, None),
            probe("listener", &journal, Some(port)),
        ],
        policy(50, 200, 3),
        vec![],
    )
    .await;
    let handle = tree.handle.clone();
    let (pinger, stop_pinger) = keep_pinging(handle.clone(), "steady");

    wait_until(
        &handle,
        Duration::from_secs(5),
        "several failed starts",
        |s| s.child("listener").is_some_and(|c| c.start_failures >= 4),
    )
    .await;
    let status = handle.status().await.unwrap();
    let listener = status.child("listener").unwrap();
    assert!(
        matches!(listener.state, ChildState::Backoff | ChildState::Starting),
        "{listener:?}"
    );
    let error = listener
        .last_error
        .clone()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        error.contains("address") && error.contains("in use"),
        "{error}"
    );
    // Start failures are not crash loops: they never trip the intensity limit (3 here).
    assert!(tree.exit.borrow().is_none());

    drop(squatter);
    wait_until(&handle, Duration::from_secs(5), "listener up", |s| {
        s.child("listener")
            .is_some_and(|c| c.state == ChildState::Running)
    })
    .await;
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the child now owns the port");

    let _ = stop_pinger.send(());
    let (answered, missed) = pinger.await.unwrap();
    assert_eq!(missed, 0);
    assert!(answered > 10);
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_restart_intensity_stops_the_tree_in_reverse_order() {
    let journal = Journal::default();
    let children = vec![
        probe("first", &journal, None),
        probe("second", &journal, None),
        probe("third", &journal, None),
    ];
    let faults = vec![FaultPlan {
        child: "second".into(),
        after: Duration::from_millis(10),
    }];
    let mut tree = start(children, policy(5, 20, 3), faults).await;

    tokio::time::timeout(Duration::from_secs(10), tree.exit.changed())
        .await
        .expect("tree ends")
        .unwrap();
    let exit = tree.exit.borrow().clone();
    assert_eq!(
        exit,
        Some(TreeExit::IntensityExceeded {
            child: "second".into(),
            restarts: 4
        })
    );
    tokio::time::timeout(Duration::from_secs(5), &mut tree.join)
        .await
        .expect("supervisor stops")
        .unwrap();

    assert_eq!(
        journal.starts_of("second").len(),
        4,
        "initial start + 3 restarts, the 4th failure escalates"
    );
    let stops = journal.stops.lock().unwrap().clone();
    // `second` stopped by failing (post_stop does not run after a panic); the others in reverse.
    assert_eq!(stops, ["third", "first"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_children_in_reverse_start_order() {
    let journal = Journal::default();
    let names = ["a", "b", "c", "d"];
    let tree = start(
        names.iter().map(|n| probe(n, &journal, None)).collect(),
        policy(50, 100, 3),
        vec![],
    )
    .await;
    let started: Vec<&str> = journal
        .starts
        .lock()
        .unwrap()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(started, names);
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    assert_eq!(*journal.stops.lock().unwrap(), ["d", "c", "b", "a"]);
    assert_eq!(*tree.exit.borrow(), Some(TreeExit::Clean));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_a_child_leaves_for_after_its_stop_runs_before_the_children_before_it_stop() {
    let journal = Journal::default();
    let given = Arc::new(Mutex::new(Vec::new()));
    let after_b = {
        let journal = journal.clone();
        let given = given.clone();
        with_after_stop(probe("b", &journal, None), move |within, _peers| {
            let journal = journal.clone();
            given.lock().unwrap().push(within);
            Box::pin(async move {
                // Work that takes a while (the poller's buffer going to storage).
                tokio::time::sleep(Duration::from_millis(300)).await;
                journal.stops.lock().unwrap().push("after b");
            })
        })
    };
    let tree = start(
        vec![
            probe("a", &journal, None),
            after_b,
            probe("c", &journal, None),
        ],
        policy(50, 100, 3),
        vec![],
    )
    .await;
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    assert_eq!(*journal.stops.lock().unwrap(), ["c", "b", "after b", "a"]);
    // The budget is 6 s for three children: `c` stopped at once, so `b` and its work had
    // about half of what was left, more than an equal third.
    let within = given.lock().unwrap().clone();
    assert_eq!(within.len(), 1);
    assert!(
        within[0] > Duration::from_millis(2_500) && within[0] <= Duration::from_secs(3),
        "{within:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_drains_at_stop_answers_what_waits_in_its_mailbox() {
    let journal = Journal::default();
    let tree = start(
        vec![
            draining_at_stop(probe("draining", &journal, None)),
            probe("plain", &journal, None),
        ],
        policy(50, 100, 3),
        vec![],
    )
    .await;
    // Eight calls of 50 ms queued in each, then the stop at once.
    let mut waiting = Vec::new();
    for name in ["draining", "plain"] {
        let probe = lookup(&tree.handle, name).await.expect("running");
        let mut answers = Vec::new();
        for _ in 0..8 {
            let (reply, answer) = ractor::concurrency::oneshot();
            probe.cast(ProbeMsg::Slow(reply.into())).unwrap();
            answers.push(answer);
        }
        waiting.push((name, answers));
    }
    assert!(tree.handle.shutdown(Duration::from_secs(10)).await);
    let mut answered = std::collections::HashMap::new();
    for (name, answers) in waiting {
        let mut count = 0;
        for answer in answers {
            count += usize::from(answer.await.is_ok());
        }
        answered.insert(name, count);
    }
    // The plain child stops after the call in hand; the draining one answers all eight.
    assert_eq!(answered["draining"], 8, "{answered:?}");
    assert!(answered["plain"] <= 1, "{answered:?}");
    assert_eq!(*journal.stops.lock().unwrap(), ["plain", "draining"]);
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ran_healthy_long_enough_restarts_from_the_first_delay_again() {
    let journal = Journal::default();
    let mut policy = policy(100, 1_000, 100);
    policy.reset_after = Duration::from_millis(600);
    let tree = start(vec![probe("crashy", &journal, None)], policy, vec![]).await;
    let handle = tree.handle.clone();

    // Crashes right after each restart grow the delay: 100, 200, 400 ms...
    for round in 0..3u32 {
        wait_until(&handle, Duration::from_secs(5), "crashy running", |s| {
            s.child("crashy")
                .is_some_and(|c| c.state == ChildState::Running && c.restarts == round)
        })
        .await;
        lookup(&handle, "crashy")
            .await
            .unwrap()
            .cast(ProbeMsg::Crash)
            .unwrap();
    }
    wait_until(&handle, Duration::from_secs(5), "third restart", |s| {
        s.child("crashy")
            .is_some_and(|c| c.state == ChildState::Running && c.restarts == 3)
    })
    .await;
    // ...but after running healthy past reset_after, the next delay is the first one again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    lookup(&handle, "crashy")
        .await
        .unwrap()
        .cast(ProbeMsg::Crash)
        .unwrap();
    wait_until(&handle, Duration::from_secs(5), "fourth restart", |s| {
        s.child("crashy")
            .is_some_and(|c| c.state == ChildState::Running && c.restarts == 4)
    })
    .await;

    let starts = journal.starts_of("crashy");
    let crashes: Vec<Instant> = journal
        .crashes
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t)| *t)
        .collect();
    let delays: Vec<u64> = (0..4)
        .map(|i| starts[i + 1].duration_since(crashes[i]).as_millis() as u64)
        .collect();
    assert!(delays[2] >= 320, "the third delay grew: {delays:?}");
    assert!(
        (80..=101).contains(&delays[3]),
        "the delay after a healthy run is the first one again: {delays:?}"
    );
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
}

/// The ways a running child can end without being asked to.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `handle` returns an `Err`.
    ErrFromHandle,
    /// The child stops itself.
    StopsItself,
    /// The child stops itself and then panics in `post_stop`.
    PanicInPostStop,
    /// Something kills the child (no `post_stop`).
    Killed,
}

async fn inflict(actor: &ActorRef<ProbeMsg>, fault: Fault) {
    match fault {
        Fault::ErrFromHandle => actor.cast(ProbeMsg::Fail).expect("send fail"),
        Fault::StopsItself => actor.cast(ProbeMsg::StopSelf).expect("send stop"),
        Fault::PanicInPostStop => {
            actor.cast(ProbeMsg::PanicOnStop).expect("arm the panic");
            actor.cast(ProbeMsg::StopSelf).expect("send stop");
        }
        Fault::Killed => actor.kill(),
    }
}

/// With at most 2 restarts in the window, `fault` twice is restarted twice (the status says
/// why) while the sibling keeps running untouched; the third time stops the tree, reporting
/// the child, and the sibling is stopped cleanly.
async fn a_fault_is_restarted_then_escalates(fault: Fault, reported_as: &str) {
    let journal = Journal::default();
    let mut tree = start(
        vec![
            probe("steady", &journal, None),
            probe("faulty", &journal, None),
        ],
        policy(10, 40, 2),
        vec![],
    )
    .await;
    let handle = tree.handle.clone();
    for round in 0..2u32 {
        let actor = lookup(&handle, "faulty").await.expect("faulty is running");
        inflict(&actor, fault).await;
        wait_until(&handle, Duration::from_secs(5), "faulty restarted", |s| {
            s.child("faulty")
                .is_some_and(|c| c.state == ChildState::Running && c.restarts == round + 1)
        })
        .await;
        let status = handle.status().await.unwrap();
        let faulty = status.child("faulty").unwrap();
        let error = faulty.last_error.as_deref().unwrap_or_default();
        assert!(error.contains(reported_as), "{fault:?}: {error}");
        let steady = status.child("steady").unwrap();
        assert_eq!((steady.restarts, steady.state), (0, ChildState::Running));
    }
    assert_eq!(journal.starts_of("faulty").len(), 3, "{fault:?}");
    assert!(tree.exit.borrow().is_none(), "{fault:?}: escalated early");

    let actor = lookup(&handle, "faulty").await.expect("faulty is running");
    inflict(&actor, fault).await;
    tokio::time::timeout(Duration::from_secs(10), tree.exit.changed())
        .await
        .expect("the tree ends")
        .unwrap();
    assert_eq!(
        *tree.exit.borrow(),
        Some(TreeExit::IntensityExceeded {
            child: "faulty".into(),
            restarts: 3
        }),
        "{fault:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), &mut tree.join)
        .await
        .expect("the supervisor stops")
        .unwrap();
    assert_eq!(
        journal.starts_of("faulty").len(),
        3,
        "{fault:?}: no 4th start"
    );
    assert_eq!(journal.starts_of("steady").len(), 1, "{fault:?}");
    assert!(
        journal.stops.lock().unwrap().contains(&"steady"),
        "{fault:?}: the sibling was stopped cleanly"
    );
}

#[tokio::test(start_paused = true)]
async fn an_err_from_handle_is_restarted_then_escalates() {
    a_fault_is_restarted_then_escalates(
        Fault::ErrFromHandle,
        "failed: probe faulty failed on purpose",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_child_that_stops_itself_is_restarted_then_escalates() {
    a_fault_is_restarted_then_escalates(
        Fault::StopsItself,
        "stopped unexpectedly: probe faulty is done",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_post_stop_is_restarted_then_escalates() {
    a_fault_is_restarted_then_escalates(Fault::PanicInPostStop, "panicked in post_stop on purpose")
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_child_is_restarted_then_escalates() {
    a_fault_is_restarted_then_escalates(Fault::Killed, "stopped unexpectedly: killed").await;
}

/// A child whose `post_stop` panics while the tree shuts down does not stop the shutdown: the
/// children started before it are still stopped, in reverse order, and the exit is clean.
#[tokio::test(start_paused = true)]
async fn a_panic_in_post_stop_during_shutdown_does_not_stop_the_shutdown() {
    let journal = Journal::default();
    let names = ["a", "b", "c"];
    let tree = start(
        names.iter().map(|n| probe(n, &journal, None)).collect(),
        policy(10, 40, 2),
        vec![],
    )
    .await;
    let b = lookup(&tree.handle, "b").await.expect("b is running");
    b.cast(ProbeMsg::PanicOnStop).expect("arm the panic");
    // Answered after the message before it: the panic is armed.
    b.call(ProbeMsg::Ping, Some(Duration::from_secs(2)))
        .await
        .expect("b armed its panic");
    assert!(tree.handle.shutdown(Duration::from_secs(5)).await);
    assert_eq!(*journal.stops.lock().unwrap(), ["c", "b", "a"]);
    assert_eq!(*tree.exit.borrow(), Some(TreeExit::Clean));
    assert_eq!(
        journal.starts_of("b").len(),
        1,
        "not restarted while stopping"
    );
}
