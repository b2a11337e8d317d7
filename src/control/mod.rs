//! The control socket (docs/control.md): the protocol `opcgw ctl` and automation speak to the daemon
//! over a unix stream socket, and the client side of it.
//!
//! The wire format is newline-delimited JSON: one object per line, at most [`MAX_FRAME_BYTES`]
//! per request. The first frame of a connection must authenticate with the shared token
//! (`{"type":"auth","token":"…"}`) within [`AUTH_TIMEOUT`]; anything else earns exactly one
//! `auth_failed` frame and a closed connection, so an unauthenticated peer learns nothing about
//! the gateway. After that each request (`{"id":…,"type":"status"}`) gets one response echoing
//! its id, `{"id":…,"ok":true,"result":…}` or `{"id":…,"ok":false,"error":{"code","message"}}`.
//!
//! Files, one concern each:
//! - `framing`: reading one bounded line (never buffering more than the bound) and writing one.
//! - `protocol`: requests, responses, error codes and the typed parsing of a frame.
//! - `time_arg`: `since`/`until` arguments (RFC 3339 or "15m ago").
//! - `token`: where the token comes from, writing it to disk, comparing it in constant time.
//! - `admission`: which connections are kept when many arrive (pending ones give way,
//!   authenticated ones never do).
//! - `server`: the per-connection handshake and request loop the control actor runs.
//! - `socket_preflight`: whether another gateway already answers on the socket path.
//! - `client`: the connection `opcgw ctl` opens.
//! - `render`: human tables for `opcgw ctl` output.
//!
//! The control actor (in `opcgw-actors`) owns the listener: it binds the socket, reads the peer
//! uid, caps connections, and answers each [`Request`] from the other actors.

mod admission;
mod client;
mod framing;
mod protocol;
mod render;
mod server;
mod socket_preflight;
mod time_arg;
mod token;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use admission::{
    AdmissionRefused, Admitted, AuthenticatedSlot, ConnectionLimits, ConnectionTable, Ticket,
    MAX_AUTHENTICATED_CONNECTIONS, MAX_PENDING_CONNECTIONS,
};
pub use client::{
    ClientError, ControlClient, EXIT_AUTH_FAILED, EXIT_ERROR, EXIT_OK, EXIT_UNREACHABLE,
};
pub use framing::{read_frame, write_frame, FrameError};
pub use protocol::{
    parse_auth, parse_request, Envelope, ErrorBody, ErrorCode, ProtocolError, Request, Response,
    AUTH_FAILED_MESSAGE, MAX_ARG_BYTES, MAX_COMMAND_LIST_LIMIT, MAX_HISTORY_LIMIT, MAX_ID_BYTES,
};
pub use render::render;
pub use server::{
    authenticate_peer, serve_admitted, serve_connection, AuthRejection, ConnectionEnd,
    ServeOptions, REQUEST_TIMEOUT, WRITE_TIMEOUT,
};
pub use socket_preflight::{check_socket_not_in_use, ControlSocketInUse};
pub use time_arg::{history_window, parse_interval_arg, parse_time_arg, MAX_RELATIVE_SECONDS};
pub use token::{
    check_strength, generate_token, read_client_token, resolve_token, write_token_file, TokenError,
    TokenSource, TokenVerifier, MIN_TOKEN_BYTES, TOKEN_BYTES,
};

/// Longest request frame, newline included. Requests are a command and a few short arguments;
/// 64 KiB is generous for them and caps what an unauthenticated peer can make the daemon
/// buffer before the token is checked.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Longest response frame the client accepts. Responses carry results (a history page, the
/// device list), so they may be larger than requests; the server keeps within this bound (an
/// oversized result becomes an error), and the client still never buffers without limit.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How long a new connection may take to send its auth frame. Legitimate clients send it at
/// once; a peer that connects and stays silent only holds a connection slot this long.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an authenticated connection may stay silent before the server closes it, so
/// forgotten clients do not pin connection slots forever.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Rows `history` returns when the request names no `limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 1_000;

/// Commands `command_list` returns when the request names no `limit`.
pub const DEFAULT_COMMAND_LIST_LIMIT: usize = 50;
