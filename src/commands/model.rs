//! The command model: what a downlink is, its lifecycle states, and the messages that carry it
//! from an operator to storage, to ChirpStack and back.

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// Where a command is in its lifecycle (see the module documentation of `crate::commands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    Queued,
    Sent,
    Acknowledged,
    Failed,
    Expired,
}

impl CommandState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Acknowledged => "acknowledged",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Acknowledged | Self::Failed | Self::Expired)
    }
}

/// What a command sends: the one place that names a downlink's fields. Requests, stored records
/// and new commands carry it (flattened where serialized, so the JSON keeps its flat shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Downlink {
    pub device_id: String,
    pub command_name: String,
    pub f_port: u32,
    pub confirmed: bool,
    pub payload: Vec<u8>,
}

/// A command accepted from an operator (OPC UA write, web console, control socket), made by
/// [`crate::commands::prepare`] and queued durably by storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCommand {
    #[serde(flatten)]
    pub downlink: Downlink,
    /// Who asked ("opcua:operator", "web:admin", "ctl:uid=1000"), for the audit trail.
    pub requested_by: String,
}

/// A command to send to a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// The gateway's own id (the command queue sequence number).
    pub id: u64,
    #[serde(flatten)]
    pub downlink: Downlink,
}

/// A change in a command's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandUpdate {
    pub id: u64,
    pub device_id: String,
    #[serde(default)]
    pub command_name: String,
    pub state: CommandState,
    /// ChirpStack's queue item id, once it has one.
    pub queue_item_id: Option<String>,
    /// A gateway transmitted the downlink.
    pub transmitted: bool,
    pub detail: Option<String>,
    pub at: Timestamp,
}
