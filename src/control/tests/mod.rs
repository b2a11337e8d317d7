//! Tests of the control-socket library: framing bounds, request parsing, tokens, the server's
//! connection loop over real socket pairs, and the client against a real listener.

mod admission;
mod client;
mod framing;
mod protocol;
mod render;
mod server;
mod time_arg;
mod token;
