//! opcgw: a ChirpStack to OPC UA gateway.
//!
//! This crate is the library of what the gateway can do, as plain Rust: configuration, the
//! data model, the ChirpStack client and simulator, storage, the OPC UA server, the control
//! protocol and the security rules shared by all of them. It knows nothing about actors; the `opcgw-actors` package owns the long-lived
//! resources and decides how these pieces run.

pub mod backoff;
pub mod chirpstack;
pub mod commands;
pub mod config;
pub mod control;
pub mod metrics;
pub mod model;
pub mod naming;
pub mod opcua;
pub mod security;
pub mod storage;
pub mod web;
