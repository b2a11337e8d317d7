//! One control connection, server side: the auth handshake, then requests answered one at a
//! time. The control actor owns the listener and runs [`serve_connection`] per accepted stream;
//! keeping the loop here makes the protocol's promises testable without the actor tree.
//!
//! Requests on one connection are answered in order, one at a time, and each response is
//! written whole by the single owner of the writer, so frames never interleave. Clients that
//! want parallelism open several connections.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio::time::timeout;

use super::framing::{read_frame, write_frame, FrameError};
use super::protocol::{parse_auth, parse_request, ErrorBody, ErrorCode, Response};
use super::token::TokenVerifier;
use super::{AUTH_TIMEOUT, IDLE_TIMEOUT, MAX_FRAME_BYTES};

/// Longest time one response may take to write. A peer that stops reading would otherwise
/// park the connection task forever on a full socket buffer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest time a handler may take before the client is answered `timeout`. Requests read and
/// queue; none should take long, and a client waiting forever is worse than an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Bounds of one connection. Tests shorten them; the daemon uses the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    pub auth_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub write_timeout: Duration,
    pub max_frame: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            auth_timeout: AUTH_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            max_frame: MAX_FRAME_BYTES,
        }
    }
}

/// Why a peer was not authenticated, for the log line (the peer itself only ever sees
/// `auth_failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRejection {
    /// No complete first frame within the auth timeout.
    Timeout,
    /// The peer closed before sending a frame.
    Closed,
    /// The first frame was too long or not UTF-8.
    BadFrame(String),
    /// The first frame was not `{"type":"auth","token":…}`.
    NotAuthFrame,
    WrongToken,
    Io(String),
}

impl AuthRejection {
    /// A short token for the `reason` field of the log event.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::BadFrame(_) => "bad_frame",
            Self::NotAuthFrame => "not_auth_frame",
            Self::WrongToken => "wrong_token",
            Self::Io(_) => "io",
        }
    }
}

/// How a connection ended, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEnd {
    AuthRejected(AuthRejection),
    /// The token was right, but the daemon would not take the connection (all authenticated
    /// slots taken); the peer was told why.
    Refused(String),
    /// The peer closed the connection.
    Closed,
    /// Silent for longer than the idle timeout.
    IdleTimeout,
    /// A frame exceeded the bound; it was answered `bad_request`, then the connection closed
    /// because the rest of the line is still unread.
    FrameTooLarge,
    ReadFailed(String),
    /// A response could not be written (peer gone or not reading).
    WriteFailed(String),
}

/// Runs the first-frame handshake: reads one frame within `options.auth_timeout` and checks it
/// is an auth frame with the right token. On success the peer is told so; on any failure it
/// gets exactly one `auth_failed` frame (no id, nothing else reflected) and the caller must
/// close the connection.
pub async fn authenticate_peer<R, W>(
    reader: &mut R,
    writer: &mut W,
    verifier: &TokenVerifier,
    options: &ServeOptions,
) -> Result<(), AuthRejection>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match handshake(reader, writer, verifier, options, || Ok(())).await {
        Ok(()) => Ok(()),
        Err(ConnectionEnd::AuthRejected(rejection)) => Err(rejection),
        // `admit` above never refuses, and the handshake ends in nothing else.
        Err(other) => Err(AuthRejection::Io(format!("{other:?}"))),
    }
}

/// The handshake, with `admit` asked (only once the token is verified, before the peer is told
/// it is authenticated) whether the connection may go on. A refusal is sent to the peer as an
/// error frame echoing the auth frame's id: the peer holds the token, so it may know why.
async fn handshake<R, W, A>(
    reader: &mut R,
    writer: &mut W,
    verifier: &TokenVerifier,
    options: &ServeOptions,
    admit: impl FnOnce() -> Result<A, ErrorBody>,
) -> Result<A, ConnectionEnd>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let outcome = match timeout(options.auth_timeout, read_frame(reader, options.max_frame)).await {
        Err(_) => Err(AuthRejection::Timeout),
        Ok(Ok(None)) => Err(AuthRejection::Closed),
        Ok(Err(FrameError::Io(e))) => Err(AuthRejection::Io(e.to_string())),
        Ok(Err(e)) => Err(AuthRejection::BadFrame(e.to_string())),
        Ok(Ok(Some(line))) => match parse_auth(&line) {
            None => Err(AuthRejection::NotAuthFrame),
            Some((id, token)) if verifier.verify(&token) => Ok(id),
            Some(_) => Err(AuthRejection::WrongToken),
        },
    };
    let id = match outcome {
        Ok(id) => id,
        Err(rejection) => {
            // Best effort: the peer may already be gone, and the connection closes either way.
            let _ = send(writer, &Response::auth_failed(), options.write_timeout).await;
            return Err(ConnectionEnd::AuthRejected(rejection));
        }
    };
    match admit() {
        Ok(admission) => {
            send(writer, &Response::authenticated(id), options.write_timeout)
                .await
                .map_err(|e| ConnectionEnd::AuthRejected(AuthRejection::Io(e)))?;
            Ok(admission)
        }
        Err(refusal) => {
            let message = refusal.message.clone();
            let _ = send(
                writer,
                &Response::from_error(id, refusal),
                options.write_timeout,
            )
            .await;
            Err(ConnectionEnd::Refused(message))
        }
    }
}

/// Serves one connection until it ends: the handshake, then each request frame parsed and
/// handed to `handler`, whose result (or error) becomes the response echoing the request's id.
/// Malformed frames are answered `bad_request` (or `unknown_command`) without reaching the
/// handler; blank lines are ignored. A handler slower than `options.request_timeout` is
/// abandoned (its future dropped) and the client answered `timeout`.
pub async fn serve_connection<R, W, H, Fut>(
    reader: R,
    writer: W,
    verifier: &TokenVerifier,
    options: &ServeOptions,
    handler: H,
) -> ConnectionEnd
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
    H: FnMut(super::Request) -> Fut,
    Fut: Future<Output = Result<Value, ErrorBody>>,
{
    serve_admitted(reader, writer, verifier, options, || Ok(()), handler).await
}

/// [`serve_connection`] with an admission check: once the token is verified, `admit` decides
/// whether the connection may go on (the control actor takes one of its authenticated slots
/// there). What `admit` returns is held until the connection ends, so a slot given back on drop
/// is freed exactly then. A refusal is sent to the peer and ends the connection.
pub async fn serve_admitted<R, W, H, Fut, A>(
    mut reader: R,
    mut writer: W,
    verifier: &TokenVerifier,
    options: &ServeOptions,
    admit: impl FnOnce() -> Result<A, ErrorBody>,
    mut handler: H,
) -> ConnectionEnd
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
    H: FnMut(super::Request) -> Fut,
    Fut: Future<Output = Result<Value, ErrorBody>>,
{
    let _admission = match handshake(&mut reader, &mut writer, verifier, options, admit).await {
        Ok(admission) => admission,
        Err(end) => return end,
    };
    loop {
        let line = match timeout(
            options.idle_timeout,
            read_frame(&mut reader, options.max_frame),
        )
        .await
        {
            Err(_) => return ConnectionEnd::IdleTimeout,
            Ok(Ok(None)) => return ConnectionEnd::Closed,
            Ok(Ok(Some(line))) => line,
            Ok(Err(FrameError::Io(e))) => return ConnectionEnd::ReadFailed(e.to_string()),
            Ok(Err(e)) => {
                let response = Response::err(None, ErrorCode::BadRequest, e.to_string());
                if let Err(e) = send(&mut writer, &response, options.write_timeout).await {
                    return ConnectionEnd::WriteFailed(e);
                }
                if e.leaves_stream_in_sync() {
                    continue;
                }
                return ConnectionEnd::FrameTooLarge;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let response = match parse_request(&line) {
            Err(error) => error.into_response(),
            Ok(envelope) => match timeout(options.request_timeout, handler(envelope.request)).await
            {
                Ok(Ok(result)) => Response::ok(envelope.id, result),
                Ok(Err(error)) => Response::from_error(envelope.id, error),
                Err(_) => Response::err(
                    envelope.id,
                    ErrorCode::Timeout,
                    format!(
                        "no answer within {} s; the request may still complete",
                        options.request_timeout.as_secs_f32()
                    ),
                ),
            },
        };
        if let Err(e) = send(&mut writer, &response, options.write_timeout).await {
            return ConnectionEnd::WriteFailed(e);
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    response: &Response,
    limit: Duration,
) -> Result<(), String> {
    match timeout(limit, write_frame(writer, &response.to_line())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("not written within {} s", limit.as_secs_f32())),
    }
}
