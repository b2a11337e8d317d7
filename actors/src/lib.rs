//! How opcgw runs: the supervised actor tree (one actor per duty) and its runtime pieces.
//! The `opcgw` binary in `main.rs` is a thin CLI over this library.

pub mod backoff;
pub mod child;
pub mod control;
pub mod ctl;
pub mod demo;
pub mod duty;
pub mod logging;
pub mod messages;
pub mod opcua;
pub mod peers;
pub mod poller;
pub mod reload;
pub mod simulate;
pub mod storage;
pub mod storage_client;
pub mod supervisor;
pub mod task;
pub mod tree;
pub mod web;
