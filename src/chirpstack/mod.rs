//! ChirpStack: the gRPC client, event parsing, value mapping, and a simulator of the API.

pub mod events;
pub mod simulator;
