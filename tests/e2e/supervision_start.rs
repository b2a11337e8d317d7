//! Child starts run beside the supervisor, not inside its mailbox: a child that takes long to
//! start does not hold back status queries, the first starts still happen in order, and a stop
//! that comes while a child restarts lets that start end before the work that needs it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opcgw::backoff::Backoff;
use opcgw::config::AppConfig;
use opcgw_actors::tree::backoff::{IntensityPolicy, SupervisorPolicy};
use opcgw_actors::tree::child::{actor_child, with_after_stop, ChildSpec};
use opcgw_actors::tree::gateway::{Tree, TreeHandle};
use opcgw_actors::tree::messages::{Common, ConfigUpdate};
use opcgw_actors::tree::supervisor::{ChildState, SupervisorMsg};
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// How long a slow start takes: far longer than a status query may.
const SLOW_START: Duration = Duration::from_secs(3);

/// Records when each start began and ended; starts after number `slow_from` take
/// `slow_for`; the first `fail_first` instances fail as soon as they run; fails when told to.
struct Starter {
    name: &'static str,
    log: StartLog,
    slow_from: usize,
    slow_for: Duration,
    fail_first: usize,
}

/// One start: the child's name, when it began, when it ended.
type StartEntry = (&'static str, Instant, Instant);

#[derive(Clone, Default)]
struct StartLog(Arc<Mutex<Vec<StartEntry>>>);

impl StartLog {
    fn starts_of(&self, name: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.0 == name)
            .count()
    }
}

enum StarterMsg {
    Common(Common),
    Fail,
}

impl From<Common> for StarterMsg {
    fn from(common: Common) -> Self {
        Self::Common(common)
    }
}

impl Actor for Starter {
    type Msg = StarterMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<StarterMsg>,
        _: (),
    ) -> Result<(), ActorProcessingErr> {
        let began = Instant::now();
        // Counted when it begins, so a test sees a slow start in progress.
        let number = {
            let mut log = self.log.0.lock().unwrap();
            log.push((self.name, began, began));
            log.iter().filter(|e| e.0 == self.name).count()
        };
        if number > self.slow_from {
            tokio::time::sleep(self.slow_for).await;
        }
        if number <= self.fail_first {
            // Handled right after the start: the failure races the start's report.
            myself.cast(StarterMsg::Fail)?;
        }
        let mut log = self.log.0.lock().unwrap();
        if let Some(entry) = log
            .iter_mut()
            .rev()
            .find(|e| e.0 == self.name && e.1 == began)
        {
            entry.2 = Instant::now();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<StarterMsg>,
        message: StarterMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StarterMsg::Fail => Err(format!("{} failed on purpose", self.name).into()),
            StarterMsg::Common(common) => {
                drop(common);
                Ok(())
            }
        }
    }
}

fn starter(
    name: &'static str,
    log: &StartLog,
    slow_from: usize,
    slow_for: Duration,
) -> Arc<dyn ChildSpec> {
    failing_starter(name, log, slow_from, slow_for, 0)
}

fn failing_starter(
    name: &'static str,
    log: &StartLog,
    slow_from: usize,
    slow_for: Duration,
    fail_first: usize,
) -> Arc<dyn ChildSpec> {
    let log = log.clone();
    actor_child(name, move |_| {
        (
            Starter {
                name,
                log: log.clone(),
                slow_from,
                slow_for,
                fail_first,
            },
            (),
        )
    })
}

fn policy() -> SupervisorPolicy {
    SupervisorPolicy {
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
        reset_after: Duration::from_secs(60),
        intensity: IntensityPolicy {
            max_restarts: 10,
            window: Duration::from_secs(300),
        },
        start_timeout: Duration::from_secs(10),
        shutdown_timeout: Duration::from_secs(10),
    }
}

async fn start(children: Vec<Arc<dyn ChildSpec>>) -> Tree {
    Tree::start_with(
        children,
        policy(),
        ConfigUpdate::initial(Arc::new(AppConfig::default())),
        Vec::new(),
    )
    .await
    .expect("tree starts")
}

async fn lookup(handle: &TreeHandle, name: &str) -> ActorRef<StarterMsg> {
    let cell = handle
        .supervisor
        .call(
            |reply| SupervisorMsg::Lookup(name.into(), reply),
            Some(Duration::from_secs(2)),
        )
        .await
        .expect("supervisor answers")
        .success_or(())
        .expect("in time")
        .expect("running");
    cell.into()
}

/// Waits (2 s at most) until the second start of `name` has begun.
async fn restart_began(log: &StartLog, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while log.starts_of(name) < 2 {
        assert!(
            Instant::now() < deadline,
            "the restart of {name} never began"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_answers_while_a_child_is_restarting_slowly() {
    let log = StartLog::default();
    let tree = start(vec![starter("slow", &log, 1, SLOW_START)]).await;
    lookup(&tree.handle, "slow")
        .await
        .cast(StarterMsg::Fail)
        .expect("deliver");
    restart_began(&log, "slow").await;
    // The restart is now inside its slow start: a status query still answers at once.
    let asked = Instant::now();
    let status = tree.handle.status().await.expect("status");
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_millis(500),
        "status waited {waited:?} for a child's start"
    );
    assert_eq!(
        status.child("slow").map(|c| c.state),
        Some(ChildState::Starting)
    );
    assert!(tree.handle.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_starts_run_in_order_each_after_the_previous_one_ended() {
    let log = StartLog::default();
    let tree = start(vec![
        starter("first", &log, 0, Duration::from_millis(200)),
        starter("second", &log, 0, Duration::from_millis(100)),
        starter("third", &log, 5, Duration::ZERO),
    ])
    .await;
    let entries = log.0.lock().unwrap().clone();
    let names: Vec<&str> = entries.iter().map(|e| e.0).collect();
    assert_eq!(names, ["first", "second", "third"]);
    for pair in entries.windows(2) {
        assert!(
            pair[1].1 >= pair[0].2,
            "{} began before {} had started",
            pair[1].0,
            pair[0].0
        );
    }
    // `Tree::start` returned with every child running.
    let status = tree.handle.status().await.expect("status");
    assert!(
        status
            .children
            .iter()
            .all(|c| c.state == ChildState::Running),
        "{status:#?}"
    );
    assert!(tree.handle.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_fails_the_moment_it_starts_is_restarted_every_time() {
    let log = StartLog::default();
    let tree = start(vec![
        failing_starter("brittle", &log, 10, Duration::ZERO, 5),
        starter("steady", &log, 10, Duration::ZERO),
    ])
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = tree.handle.status().await.expect("status");
        let brittle = status.child("brittle").expect("brittle").clone();
        if brittle.state == ChildState::Running && brittle.restarts == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every failure is seen and restarted: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log.starts_of("brittle"), 6);
    assert!(tree.handle.shutdown(Duration::from_secs(10)).await);
}

/// The gateway stops while storage restarts (a crash a moment before): the poller's work after
/// its stop (its buffer handed to storage) must find the storage that is starting, not report
/// the buffer lost because no storage was running at that instant. Probes stand in for both,
/// under their roles' names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_left_after_a_stop_finds_a_sibling_that_was_restarting() {
    let log = StartLog::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let poller = {
        let seen = seen.clone();
        with_after_stop(
            starter("poller", &log, 10, Duration::ZERO),
            move |_within, peers| {
                seen.lock().unwrap().push(peers.storage().is_some());
                Box::pin(async {})
            },
        )
    };
    let tree = start(vec![
        starter("storage", &log, 1, Duration::from_millis(500)),
        poller,
    ])
    .await;
    lookup(&tree.handle, "storage")
        .await
        .cast(StarterMsg::Fail)
        .expect("deliver");
    restart_began(&log, "storage").await;
    // Storage is inside its 500 ms restart.
    assert!(tree.handle.shutdown(Duration::from_secs(10)).await);
    assert_eq!(
        *seen.lock().unwrap(),
        [true],
        "the poller's work after its stop ran without the storage that was starting"
    );
}
