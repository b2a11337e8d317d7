//! `GET /api/events`: Server-Sent Events of live changes. A task per stream forwards the
//! gateway's broadcast to the client with a `: ping` heartbeat, and ends the stream on shutdown
//! (so a graceful stop never waits on it), at sign-out (the session's token is cancelled) and
//! when the session expires (checked at every heartbeat and at its deadline).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::web::auth::Principal;
use crate::web::views::LiveEvent;
use crate::web::WebState;

/// Events buffered for a slow client before the broadcast's own lag handling takes over.
const CLIENT_BUFFER: usize = 64;

pub async fn stream(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(CLIENT_BUFFER);
    let live = state.backend().subscribe();
    tokio::spawn(forward(state, principal, live, tx));
    let mut response = Sse::new(ReceiverStream::new(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn forward(
    state: WebState,
    principal: Principal,
    mut live: broadcast::Receiver<LiveEvent>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
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
        let event = tokio::select! {
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
                Event::default().comment("ping")
            }
            received = live.recv() => match received {
                Ok(event) => Event::default().event(event.name()).data(event.data()),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Event::default().event("lagged").data(json!({"missed": missed}).to_string())
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        // A client that stops reading must not hold the stream past shutdown or sign-out.
        tokio::select! {
            sent = tx.send(Ok(event)) => if sent.is_err() { return },
            _ = state.shutdown().cancelled() => return,
            _ = closed.cancelled() => return,
        }
    }
}
