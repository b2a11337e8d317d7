//! The OPC UA side of the gateway (DESIGN §7). What is here so far is independent of the OPC UA
//! library: the address space derived from the configuration, with its stable NodeIds, and
//! the changes a reloaded topology makes to it.

pub mod address_space;
