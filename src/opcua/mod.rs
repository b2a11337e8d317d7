//! The OPC UA side of the gateway (docs/opcua.md): the address space derived from the
//! configuration, the live values and their quality, and the async-opcua server that serves
//! them (endpoints, users, limits, HistoryRead, command writes).

pub mod address_space;
pub mod auth;
#[cfg(test)]
mod encrypted_password_tests;
pub mod keypair;
pub mod nodes;
#[cfg(test)]
mod reference_store_tests;
pub mod server;
pub mod standard_nodes;
#[cfg(test)]
mod standard_nodes_tests;
pub mod values;
