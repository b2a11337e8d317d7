//! How opcgw runs: the supervised actor tree (one actor per duty) and its runtime pieces.
//! The `opcgw` binary in `main.rs` is a thin CLI over this library.
//!
//! Three kinds of code, one folder each: [`tree`] (the supervision machinery every actor
//! runs inside), [`duties`] (the actors that do the gateway's work) and [`cli`] (subcommands
//! and process setup of the binary that are not actors).

pub mod cli;
pub mod duties;
pub mod tree;
