//! ChirpStack: the gRPC client, event parsing, value mapping, and a simulator of the API.

pub mod buckets;
pub mod client;
pub mod commands;
pub mod discovery;
pub mod event_stream;
pub mod events;
pub mod mapping;
pub mod poll;
pub mod series;
pub mod simulator;
pub mod upstream;
