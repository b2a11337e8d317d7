//! The binary's subcommands and process setup that are not actors: `opcgw ctl` (client of the
//! control socket), `opcgw demo`, `opcgw simulate`, the logging set up before the tree
//! starts and the systemd notifications. Code belongs here when it runs in the `opcgw` process outside the supervision tree.

pub mod ctl;
pub mod demo;
pub mod logging;
pub mod memory;
pub mod probe;
pub mod service_manager;
pub mod simulate;
