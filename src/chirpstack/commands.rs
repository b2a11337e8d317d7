//! Downlink commands: their lifecycle from the gateway's queue to the device.
//!
//! `queued` (accepted by the gateway) -> `sent` (accepted into ChirpStack's device queue) ->
//! `acknowledged` (a confirmed downlink was acknowledged by the device) | `failed` (refused,
//! negatively acknowledged, or reported as an error) | `expired` (neither acknowledged nor
//! transmitted within `command_timeout_seconds`, and no longer queued). An unconfirmed
//! downlink cannot be acknowledged: `sent` with `transmitted` is its successful end.

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

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

/// A command to send to a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// The gateway's own id (the command queue sequence number).
    pub id: u64,
    pub device_id: String,
    pub f_port: u32,
    pub confirmed: bool,
    pub payload: Vec<u8>,
}

/// A change in a command's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandUpdate {
    pub id: u64,
    pub device_id: String,
    pub state: CommandState,
    /// ChirpStack's queue item id, once it has one.
    pub queue_item_id: Option<String>,
    /// A gateway transmitted the downlink.
    pub transmitted: bool,
    pub detail: Option<String>,
    pub at: Timestamp,
}
