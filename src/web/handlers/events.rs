//! `GET /api/events`: Server-Sent Events of live changes. A task per stream forwards the
//! gateway's broadcast to the client with a `: ping` heartbeat, and ends the stream on shutdown
//! (so a graceful stop never waits on it), at sign-out (the session's token is cancelled) and
//! when the session expires (checked at every heartbeat and at its deadline).
//!
//! Events that are already waiting when the stream wakes up go out together as one chunk (up
//! to [`MAX_BATCH_EVENTS`]): at 10,000 samples/s and 50 open pages one write per event was the
//! cost that made streams fall behind.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::web::auth::Principal;
use crate::web::views::LiveFrame;
use crate::web::WebState;

/// Chunks buffered for a slow client before the broadcast's own lag handling takes over.
const CLIENT_BUFFER: usize = 64;
/// Most events written as one chunk.
pub const MAX_BATCH_EVENTS: usize = 512;
/// A chunk stops growing past this many bytes.
const MAX_BATCH_BYTES: usize = 64 * 1024;

pub async fn stream(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<String, Infallible>>(CLIENT_BUFFER);
    let live = state.backend().subscribe();
    tokio::spawn(forward(state, principal, live, tx));
    let mut response = Body::from_stream(ReceiverStream::new(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn push_live(chunk: &mut String, frame: &LiveFrame) {
    chunk.push_str(frame.as_str());
}

fn push_lagged(chunk: &mut String, missed: u64) {
    let frame = LiveFrame::event("lagged", &json!({ "missed": missed }).to_string());
    push_live(chunk, &frame);
}

/// Adds the events already waiting, without waiting for more (an ended broadcast is seen by
/// the next `recv`).
fn drain_ready(live: &mut broadcast::Receiver<LiveFrame>, chunk: &mut String) {
    for _ in 1..MAX_BATCH_EVENTS {
        if chunk.len() >= MAX_BATCH_BYTES {
            break;
        }
        match live.try_recv() {
            Ok(event) => push_live(chunk, &event),
            Err(TryRecvError::Lagged(missed)) => push_lagged(chunk, missed),
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
}

async fn forward(
    state: WebState,
    principal: Principal,
    mut live: broadcast::Receiver<LiveFrame>,
    tx: mpsc::Sender<Result<String, Infallible>>,
) {
    let period = state.settings().heartbeat;
    let mut heartbeat = interval_at(Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (closed, session) = match &principal {
        Principal::Session(s) => (s.closed.clone(), Some(s.clone())),
        // Basic-auth streams end only at shutdown (or when the client goes).
        Principal::Basic { .. } => (CancellationToken::new(), None),
    };
    loop {
        let deadline = session
            .as_ref()
            .and_then(|s| state.sessions().deadline(s))
            .unwrap_or_else(|| Instant::now() + period * 4);
        let mut chunk = String::new();
        tokio::select! {
            _ = state.shutdown().cancelled() => return,
            _ = closed.cancelled() => return,
            _ = tx.closed() => return,
            _ = tokio::time::sleep_until(deadline), if session.is_some() => {
                if session.as_ref().is_some_and(|s| !state.sessions().is_live(s)) {
                    return;
                }
                continue;
            }
            _ = heartbeat.tick() => {
                if session.as_ref().is_some_and(|s| !state.sessions().is_live(s)) {
                    return;
                }
                chunk.push_str(": ping\n\n");
            }
            received = live.recv() => {
                match received {
                    Ok(event) => push_live(&mut chunk, &event),
                    Err(RecvError::Lagged(missed)) => push_lagged(&mut chunk, missed),
                    Err(RecvError::Closed) => return,
                }
                drain_ready(&mut live, &mut chunk);
            }
        }
        // A client that stops reading must not hold the stream past shutdown or sign-out.
        tokio::select! {
            sent = tx.send(Ok(chunk)) => if sent.is_err() { return },
            _ = state.shutdown().cancelled() => return,
            _ = closed.cancelled() => return,
        }
    }
}
