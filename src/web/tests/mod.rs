//! In-process tests of the console: requests through the whole router (`oneshot`) against a
//! fake backend, sessions on tokio's paused clock, and the accept loop over real 127.0.0.1
//! sockets.

mod support;

mod assets;
mod auth;
mod certificates;
mod config_routes;
mod csrf_and_headers;
mod events;
mod routes;
mod server;
mod sessions;
