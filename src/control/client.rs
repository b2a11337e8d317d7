//! The client side of the control socket, used by `opcgw ctl` (and by tests): connect,
//! authenticate, then one request at a time, each bounded by the same timeout.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::BufReader;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::time::{timeout, timeout_at, Instant};

use super::framing::{read_frame, write_frame, FrameError};
use super::protocol::{auth_line, Envelope, ErrorCode, Request, Response};
use super::{MAX_FRAME_BYTES, MAX_RESPONSE_BYTES};

/// `opcgw ctl` exit status: the request succeeded.
pub const EXIT_OK: u8 = 0;
/// The daemon answered with an error, or the exchange failed (protocol, timeout, I/O).
pub const EXIT_ERROR: u8 = 1;
/// The daemon refused the token.
pub const EXIT_AUTH_FAILED: u8 = 2;
/// No daemon at the socket path (missing, refused, not permitted).
pub const EXIT_UNREACHABLE: u8 = 3;

/// The id of the auth frame; requests count up from 1, so the two never collide.
const AUTH_ID: u64 = 0;

/// Why a control exchange failed. An error *response* is not a `ClientError`: it comes back as
/// a [`Response`] with `ok: false`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The socket is missing, refuses connections, or may not be opened by this user.
    #[error("cannot reach the daemon: {0}")]
    Unreachable(String),
    #[error("authentication failed: check OPCGW_CONTROL__TOKEN or the control token file")]
    AuthFailed,
    /// The daemon sent something that is not a valid response, or closed mid-exchange.
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the daemon did not answer in time")]
    Timeout,
    #[error("I/O error: {0}")]
    Io(String),
}

impl ClientError {
    /// The exit status `opcgw ctl` ends with for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable(_) => EXIT_UNREACHABLE,
            Self::AuthFailed => EXIT_AUTH_FAILED,
            Self::Protocol(_) | Self::Timeout | Self::Io(_) => EXIT_ERROR,
        }
    }
}

/// An authenticated connection to the daemon.
#[derive(Debug)]
pub struct ControlClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    timeout: Duration,
    /// Set when the stream is no longer at a frame boundary (an oversized or garbled response):
    /// later requests fail at once rather than read garbage.
    broken: Option<String>,
}

impl ControlClient {
    /// Connects to the socket at `path` and authenticates with `token`. `timeout` bounds the
    /// connect, the handshake and, later, each request.
    pub async fn connect(
        path: &Path,
        token: &str,
        timeout_after: Duration,
    ) -> Result<ControlClient, ClientError> {
        let stream = match timeout(timeout_after, UnixStream::connect(path)).await {
            Err(_) => {
                return Err(ClientError::Unreachable(format!(
                    "{}: no connection within {} s",
                    path.display(),
                    timeout_after.as_secs_f32()
                )))
            }
            // Every connect failure means "no daemon here for you": the socket is missing,
            // stale (refused), or its mode and group keep this user out.
            Ok(Err(e)) => {
                return Err(ClientError::Unreachable(format!(
                    "{}: {e}{}",
                    path.display(),
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        " (run as the daemon's user or a member of control.socket_group)"
                    } else {
                        ""
                    }
                )))
            }
            Ok(Ok(stream)) => stream,
        };
        let (read_half, writer) = stream.into_split();
        let mut client = ControlClient {
            reader: BufReader::new(read_half),
            writer,
            next_id: AUTH_ID + 1,
            timeout: timeout_after,
            broken: None,
        };
        let deadline = Instant::now() + timeout_after;
        let id = Value::from(AUTH_ID);
        client
            .send_line(&auth_line(Some(id.clone()), token), deadline)
            .await?;
        let response = client.read_response(deadline).await?;
        let authenticated = response.ok
            && response.id.as_ref() == Some(&id)
            && response
                .result
                .as_ref()
                .and_then(|r| r.get("authenticated"))
                == Some(&Value::Bool(true));
        if authenticated {
            Ok(client)
        } else if is_auth_failure(&response) {
            Err(ClientError::AuthFailed)
        } else if let Some(refusal) = &response.error {
            // The token was right but the daemon would not take the connection (too many open).
            Err(ClientError::Protocol(format!(
                "the daemon refused the connection: {refusal}"
            )))
        } else {
            Err(ClientError::Protocol(
                "unexpected answer to the auth frame".into(),
            ))
        }
    }

    /// Sends `request` and waits for the response carrying its id. Responses with other ids
    /// (late answers to an earlier request that timed out) are skipped.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        if let Some(reason) = &self.broken {
            return Err(ClientError::Protocol(format!(
                "connection unusable after an earlier error: {reason}"
            )));
        }
        let id = Value::from(self.next_id);
        self.next_id += 1;
        let line = Envelope {
            id: Some(id.clone()),
            request: request.clone(),
        }
        .to_line()
        .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
        if line.len() > MAX_FRAME_BYTES {
            return Err(ClientError::Protocol(format!(
                "the request is {} bytes, more than the {MAX_FRAME_BYTES} a request may carry",
                line.len()
            )));
        }
        let deadline = Instant::now() + self.timeout;
        self.send_line(&line, deadline).await?;
        loop {
            let response = self.read_response(deadline).await?;
            if response.id.as_ref() == Some(&id) {
                return Ok(response);
            }
            if response.id.is_none() && is_auth_failure(&response) {
                return Err(ClientError::AuthFailed);
            }
        }
    }

    async fn send_line(&mut self, line: &str, deadline: Instant) -> Result<(), ClientError> {
        match timeout_at(deadline, write_frame(&mut self.writer, line)).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(e)) => Err(ClientError::Io(e.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_response(&mut self, deadline: Instant) -> Result<Response, ClientError> {
        let line =
            match timeout_at(deadline, read_frame(&mut self.reader, MAX_RESPONSE_BYTES)).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) => {
                    return Err(self.break_with("the daemon closed the connection".into()));
                }
                Ok(Err(FrameError::Io(e))) => return Err(ClientError::Io(e.to_string())),
                Ok(Err(e)) => return Err(self.break_with(format!("bad response frame: {e}"))),
            };
        serde_json::from_str::<Response>(&line)
            .map_err(|e| ClientError::Protocol(format!("bad response: {e}")))
    }

    fn break_with(&mut self, reason: String) -> ClientError {
        self.broken = Some(reason.clone());
        ClientError::Protocol(reason)
    }
}

fn is_auth_failure(response: &Response) -> bool {
    !response.ok
        && response
            .error
            .as_ref()
            .is_some_and(|e| e.code == ErrorCode::AuthFailed)
}
