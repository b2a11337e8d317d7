//! The typed messages between actors. Cast for events, call (with a timeout) for queries.

use std::sync::Arc;
use std::time::Duration;

use opcgw::chirpstack::client::{DeviceSummary, UpstreamError};
use opcgw::chirpstack::events::{DeviceEvent, EventError};
use opcgw::chirpstack::upstream::UpstreamStatus;
use opcgw::commands::{CommandRequest, CommandUpdate, NewCommand};
use opcgw::config::{AppConfig, ConfigDiff};
use opcgw::model::{Sample, Timestamp};
use opcgw::storage::{
    AppendReport, CommandFilter, CommandRecord, DownsampleQuery, Downsampled, Fold, HistoryPage,
    HistoryQuery, ProcessedPage, ProcessedQuery, StorageError, StorageErrorKind, StoreCounts,
};
use ractor::RpcReplyPort;
use serde::Serialize;

pub use crate::tree::peers::Peers;

/// How long a caller waits for an actor to answer a query before treating it as unavailable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A configuration that passed validation and classification, as broadcast after a reload.
#[derive(Debug, Clone)]
pub struct ConfigUpdate {
    pub config: Arc<AppConfig>,
    pub diff: Arc<ConfigDiff>,
    /// Increases by one per applied reload; 0 is the configuration the process started with.
    pub generation: u64,
}

impl ConfigUpdate {
    pub fn initial(config: Arc<AppConfig>) -> Self {
        Self {
            config,
            diff: Arc::new(ConfigDiff::default()),
            generation: 0,
        }
    }
}

/// What an actor says about itself when asked.
#[derive(Debug, Clone, Serialize)]
pub struct ActorReport {
    pub role: String,
    /// One line on what the actor is doing, for status pages.
    pub summary: String,
    pub config_generation: u64,
}

/// What the poller feeds to storage, the OPC UA server and the web console.
#[derive(Debug, Clone)]
pub enum Feed {
    /// New values, in arrival order (uplinks may replay older values after a reconnect).
    Samples(Arc<[Sample]>),
    Upstream(Arc<UpstreamStatus>),
    /// Last seen, battery and margin of devices, as ChirpStack lists them.
    DeviceHealth(Arc<[DeviceSummary]>),
    Command(Arc<CommandUpdate>),
}

/// Messages every child of the supervisor understands.
#[derive(Debug)]
pub enum Common {
    Status(RpcReplyPort<ActorReport>),
    ConfigChanged(ConfigUpdate),
    PeersChanged(Peers),
    /// Fault injection for crash-isolation tests: the actor panics while handling it. Only
    /// compiled into debug builds.
    #[cfg(debug_assertions)]
    InjectPanic(String),
}

/// Why a storage request failed, as its callers (OPC UA, web, control) see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum StorageFailure {
    /// The storage actor is not running (restarting, or cannot open its database) or did not
    /// answer in time.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The store answered with an error.
    #[error("{message}")]
    Store {
        kind: StorageErrorKind,
        message: String,
    },
}

impl From<StorageError> for StorageFailure {
    fn from(error: StorageError) -> Self {
        Self::Store {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

pub type StorageReply<T> = RpcReplyPort<Result<T, StorageFailure>>;

/// Messages of the storage actor (the owner of the redb file).
#[derive(Debug)]
pub enum StorageMsg {
    Common(Common),
    Feed(Feed),
    /// Durable append of the pieces in order, in one commit: the reply comes after it.
    Append {
        pieces: Vec<Arc<[Sample]>>,
        /// `Deferred` during a catch-up: more samples wait behind these, or they are a
        /// full-size batch.
        fold: Fold,
        reply: StorageReply<AppendReport>,
    },
    /// Persist a command's new state.
    UpdateCommand {
        update: Arc<CommandUpdate>,
        reply: StorageReply<Option<CommandRecord>>,
    },
    Latest {
        device_id: Option<String>,
        reply: StorageReply<Vec<Sample>>,
    },
    History {
        query: HistoryQuery,
        reply: StorageReply<HistoryPage>,
    },
    /// One window of one series in at most `query.max_points` points, summarised in storage
    /// (the console's charts).
    Downsample {
        query: DownsampleQuery,
        reply: StorageReply<Downsampled>,
    },
    /// OPC UA Part 13 aggregates of one series over one page of intervals.
    Processed {
        query: ProcessedQuery,
        reply: StorageReply<ProcessedPage>,
    },
    /// Queue a command durably; the poller is told to dispatch it once it is stored.
    EnqueueCommand {
        command: NewCommand,
        reply: StorageReply<CommandRecord>,
    },
    Commands {
        filter: CommandFilter,
        reply: StorageReply<Vec<CommandRecord>>,
    },
    Counts {
        reply: StorageReply<StoreCounts>,
    },
    /// Run one bounded retention chunk (rescheduled by the actor itself; a stale
    /// `generation` does nothing).
    PruneTick {
        generation: u64,
    },
}

/// Messages of the OPC UA server actor.
#[derive(Debug)]
pub enum OpcUaMsg {
    Common(Common),
    Feed(Feed),
    /// Re-evaluate quality, refresh the `Gateway` folder (sent every second by the actor's
    /// own timer).
    Tick,
    /// The latest stored value of every metric (after a start or restart).
    Seed(Vec<Sample>),
    /// Per-actor health for `Gateway/Health/<role>`.
    Health(Vec<(String, String)>),
    /// Open OPC UA sessions (`None` when `[opcua].diagnostics_enabled` is off).
    Sessions(RpcReplyPort<u32>),
}

/// Messages of the ChirpStack poller actor.
pub enum PollerMsg {
    Common(Common),
    /// Time for a poll cycle (`generation` makes stale timers harmless).
    PollTick {
        generation: u64,
    },
    /// A poll cycle finished.
    CycleDone(Box<opcgw::chirpstack::poll::CycleReport>),
    /// A parsed event from a device's event stream.
    DeviceEvent {
        dev_eui: String,
        event: DeviceEvent,
        received: Timestamp,
        /// Held until the poller has handled the event: bounds the parsed events waiting in
        /// its mailbox (see `streams::MAX_EVENTS_IN_FLIGHT`).
        in_flight: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// An event that could not be parsed (it is dropped; this is for the audit trail).
    BadEvent {
        dev_eui: String,
        error: EventError,
    },
    /// A device's event stream opened, or closed (with why).
    StreamState {
        dev_eui: String,
        open: bool,
        error: Option<UpstreamError>,
    },
    /// Send a command to a device.
    Dispatch(CommandRequest),
    /// Track a command that was already sent before a restart (never enqueued again).
    Resume {
        request: CommandRequest,
        queue_item_id: String,
        transmitted: bool,
        sent_at: Timestamp,
    },
    /// The outcome of an `Enqueue` call.
    CommandEnqueued {
        id: u64,
        result: Result<String, UpstreamError>,
    },
    /// The current upstream status.
    Upstream(RpcReplyPort<UpstreamStatus>),
    /// The poller's counters.
    Counters(RpcReplyPort<crate::duties::poller::PollerCounters>),
    /// Time to see whether storage caught up and the held event streams may go on.
    ReleaseCheck,
}

impl std::fmt::Debug for PollerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Common(_) => "Common",
            Self::PollTick { .. } => "PollTick",
            Self::CycleDone(_) => "CycleDone",
            Self::DeviceEvent { .. } => "DeviceEvent",
            Self::BadEvent { .. } => "BadEvent",
            Self::StreamState { .. } => "StreamState",
            Self::Dispatch(_) => "Dispatch",
            Self::Resume { .. } => "Resume",
            Self::CommandEnqueued { .. } => "CommandEnqueued",
            Self::Upstream(_) => "Upstream",
            Self::Counters(_) => "Counters",
            Self::ReleaseCheck => "ReleaseCheck",
        };
        f.write_str(name)
    }
}

/// Messages of the metrics actor (`[metrics]`: `/metrics`, `/healthz`, `/readyz`).
#[derive(Debug)]
pub enum MetricsMsg {
    Common(Common),
}

/// Messages of the web console actor.
#[derive(Debug)]
pub enum WebMsg {
    Common(Common),
    Feed(Feed),
    /// Re-evaluate quality (sent every second by the actor's own timer).
    Tick,
    /// The latest stored value of every metric (after a start or restart).
    Seed(Vec<Sample>),
    /// The supervisor's view of every actor, for `health` events.
    Tree(crate::tree::supervisor::TreeStatus),
}

/// Messages of the control-socket actor.
#[derive(Debug)]
pub enum ControlMsg {
    Common(Common),
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadTrigger {
    Sighup,
    Ctl,
    Web,
}

impl ReloadTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sighup => "sighup",
            Self::Ctl => "ctl",
            Self::Web => "web",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadFailure {
    Validation,
    Io,
    RestartRequired,
}

impl ReloadFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Io => "io",
            Self::RestartRequired => "restart_required",
        }
    }
}

/// The result of one reload, as logged and as answered to `ctl reload`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReloadOutcome {
    Succeeded {
        changed_section_count: usize,
        includes_topology_change: bool,
        duration_ms: u64,
        changed_knobs: Vec<String>,
        generation: u64,
    },
    Failed {
        reason: ReloadFailure,
        #[serde(skip_serializing_if = "Option::is_none")]
        changed_knob: Option<String>,
        /// Sanitised: names files and keys, never values.
        error: String,
    },
}

/// Messages of the reload actor (owner of the live configuration and the config file).
#[derive(Debug)]
pub enum ReloadMsg {
    Common(Common),
    Reload {
        trigger: ReloadTrigger,
        reply: Option<RpcReplyPort<ReloadOutcome>>,
    },
    /// One edit of the `[[application]]` tree (from the console): checked against drift on
    /// disk, applied to the file's document, validated as a load would, written atomically and
    /// applied as a reload (the previous bytes restored when the reload refuses it).
    Edit {
        edit: opcgw::config::edit::ConfigEdit,
        reply:
            RpcReplyPort<Result<opcgw::config::edit::EditOutcome, opcgw::config::edit::EditError>>,
    },
    /// The console's view of the configuration: knobs, where each comes from, editing status.
    Describe {
        reply: RpcReplyPort<opcgw::config::edit::ConfigView>,
    },
    /// Discover the devices of `discover = true` applications now; a discovery already running
    /// answers this request too.
    Discover {
        trigger: DiscoverTrigger,
        reply: Option<RpcReplyPort<DiscoverOutcome>>,
    },
    /// What a discovery task found (sent by the task to the actor that spawned it).
    Discovered {
        result: Result<Box<opcgw::chirpstack::discovery::Discovery>, UpstreamError>,
        started: std::time::Instant,
    },
    /// Time for the periodic discovery (a stale `generation` does nothing).
    DiscoverTick {
        generation: u64,
    },
}

/// What asked for a discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoverTrigger {
    Start,
    Timer,
    Sighup,
    Ctl,
    /// A reload or an edit turned `discover` on for an application.
    Reload,
}

impl DiscoverTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Timer => "timer",
            Self::Sighup => "sighup",
            Self::Ctl => "ctl",
            Self::Reload => "reload",
        }
    }
}

/// The result of one discovery, as logged and as answered to `ctl discover`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DiscoverOutcome {
    Succeeded {
        /// Devices ChirpStack lists in the discovered applications.
        listed: usize,
        /// Devices no longer listed but kept (`on_device_removed = "keep"`).
        gone: usize,
        /// Discovered devices that joined or left the address space with this discovery.
        added_devices: Vec<String>,
        removed_devices: Vec<String>,
        /// Measurements left out (unknown kind, or a key that cannot be a metric name).
        skipped_measurements: usize,
        calls: usize,
        duration_ms: u64,
        /// The live configuration generation after it (unchanged when nothing changed).
        generation: u64,
    },
    Failed {
        /// Sanitised; the last known devices stay served.
        error: String,
    },
}

macro_rules! common_from {
    ($($msg:ident),*) => {
        $(impl From<Common> for $msg {
            fn from(common: Common) -> Self {
                Self::Common(common)
            }
        })*
    };
}

common_from!(StorageMsg, OpcUaMsg, PollerMsg, WebMsg, MetricsMsg, ControlMsg, ReloadMsg);
