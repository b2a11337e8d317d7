//! Downlink commands, independent of where they come from and where they go: the command model,
//! its validation and its payload encoding. OPC UA writes, `opcgw ctl command` and the web
//! console all queue commands through [`prepare`]; storage keeps them; the ChirpStack side
//! (`chirpstack::commands`) dispatches them.
//!
//! Lifecycle: `queued` (accepted by the gateway) -> `sent` (accepted into ChirpStack's device
//! queue) -> `acknowledged` (a confirmed downlink was acknowledged by the device) | `failed`
//! (refused, negatively acknowledged, or reported as an error) | `expired` (neither
//! acknowledged nor transmitted within `command_timeout_seconds`, and no longer queued). An
//! unconfirmed downlink cannot be acknowledged: `sent` with `transmitted` is its successful end.
//!
//! Files: `model` (the types), `validate` (type, range and size checks), `payload` (encoding),
//! `prepare` (request to command).

mod model;
mod payload;
mod prepare;
#[cfg(test)]
mod tests;
mod validate;

pub use model::{CommandRequest, CommandState, CommandUpdate, Downlink, NewCommand};
pub use payload::{encode_payload, MAX_PAYLOAD_BYTES};
pub use prepare::{find_command, prepare, CommandInput, CommandRejection};
