// opcgw patch: accept_backoff, accept_log, admission and repeat_log are opcgw additions.
pub(crate) mod accept_backoff;
pub(crate) mod accept_log;
pub(crate) mod admission;
mod connect;
pub(crate) mod repeat_log;
mod reverse_tcp;
pub(crate) mod tcp;
pub use admission::ConnectionLimits;
pub(crate) use connect::Connector;
pub(crate) use reverse_tcp::ReverseTcpConnector;
