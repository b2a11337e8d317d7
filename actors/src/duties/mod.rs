//! The duties: one actor per job of the gateway (storage, OPC UA server, ChirpStack poller,
//! web console, metrics and health probes, control socket, configuration reload), each a child of the supervision tree.
//! An actor belongs here when the tree starts it; the gateway's logic it calls lives in the
//! `opcgw` library, and the machinery it runs inside lives in `tree`.

pub mod control;
pub mod metrics;
pub mod opcua;
pub mod poller;
pub mod reload;
pub mod storage;
pub mod web;
