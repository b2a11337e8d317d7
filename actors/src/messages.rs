//! The typed messages between actors. Cast for events, call (with a timeout) for queries.

use std::sync::Arc;
use std::time::Duration;

use opcgw::config::{AppConfig, ConfigDiff};
use ractor::RpcReplyPort;
use serde::Serialize;

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

/// Messages every child of the supervisor understands.
#[derive(Debug)]
pub enum Common {
    Status(RpcReplyPort<ActorReport>),
    ConfigChanged(ConfigUpdate),
    /// Fault injection for crash-isolation tests: the actor panics while handling it. Only
    /// compiled into debug builds.
    #[cfg(debug_assertions)]
    InjectPanic(String),
}

/// Messages of the storage actor (the owner of the redb file).
#[derive(Debug)]
pub enum StorageMsg {
    Common(Common),
}

/// Messages of the OPC UA server actor.
#[derive(Debug)]
pub enum OpcUaMsg {
    Common(Common),
}

/// Messages of the ChirpStack poller actor.
#[derive(Debug)]
pub enum PollerMsg {
    Common(Common),
}

/// Messages of the web console actor.
#[derive(Debug)]
pub enum WebMsg {
    Common(Common),
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

common_from!(StorageMsg, OpcUaMsg, PollerMsg, WebMsg, ControlMsg, ReloadMsg);
