//! `GET /api/events`: live events, heartbeat, lag notice, and the stream ending at sign-out,
//! at session expiry and at shutdown.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use http_body_util::BodyExt;

use super::support::*;
use crate::model::{Quality, Timestamp, Value};
use crate::web::views::LiveEvent;

/// The next SSE frame as text, or `None` when the stream ended.
async fn next_frame(body: &mut Body) -> Option<String> {
    loop {
        let frame = body.frame().await?.ok()?;
        if let Ok(data) = frame.into_data() {
            return Some(String::from_utf8(data.to_vec()).unwrap());
        }
    }
}

async fn open_stream(app: &App, session: &str) -> Body {
    let response = app.send(cookie(get("/api/events"), session)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers();
    assert_eq!(h[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert_eq!(h["x-accel-buffering"], "no");
    response.into_body()
}

/// Lets the stream's task subscribe and wait.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_value_arrives_as_a_named_event_and_pings_keep_the_stream_alive() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    let mut body = open_stream(&app, &session).await;
    settle().await;
    let sample = sample(
        "temperature",
        Value::Float(22.25),
        Timestamp(1_700_000_000_123_000),
    );
    app.fake
        .live
        .send(LiveEvent::value_of(&sample, Quality::Good).into())
        .unwrap();
    let frame = next_frame(&mut body).await.unwrap();
    assert_eq!(
        frame,
        "event: value\ndata: {\"device_id\":\"valve-1\",\"metric\":\"temperature\",\"value\":22.25,\
\"timestamp\":\"2023-11-14T22:13:20.123Z\",\"received\":\"2023-11-14T22:13:20.123Z\",\"quality\":\"good\"}\n\n"
    );
    let started = tokio::time::Instant::now();
    assert_eq!(next_frame(&mut body).await.unwrap(), ": ping\n\n");
    assert_eq!(started.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn a_slow_client_is_told_how_many_events_it_missed() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    let mut body = open_stream(&app, &session).await;
    settle().await;
    // The fake's broadcast holds 16; the stream's task buffers 64 more before it stops reading.
    for i in 0..200 {
        let s = sample(
            "temperature",
            Value::Float(f64::from(i)),
            Timestamp(i64::from(i)),
        );
        app.fake
            .live
            .send(LiveEvent::value_of(&s, Quality::Good).into())
            .unwrap();
    }
    let mut lagged = None;
    for _ in 0..200 {
        let frame = next_frame(&mut body).await.unwrap();
        if frame.starts_with("event: lagged") {
            lagged = Some(frame);
            break;
        }
    }
    let lagged = lagged.expect("a lagged event");
    assert!(lagged.contains("\"missed\":"), "{lagged}");
}

#[tokio::test]
async fn sign_out_closes_the_sessions_streams() {
    let app = App::new();
    let (session, csrf) = app.sign_in().await;
    let mut body = open_stream(&app, &session).await;
    let request = with_header(
        cookie(request_json("DELETE", "/api/session", ""), &session),
        "x-csrf-token",
        &csrf,
    );
    assert_eq!(app.send(request).await.status(), StatusCode::NO_CONTENT);
    let ended = tokio::time::timeout(Duration::from_secs(5), next_frame(&mut body)).await;
    assert_eq!(ended, Ok(None), "the stream ends at sign-out");
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_ends_its_stream_even_while_the_page_stays_open() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    let mut body = open_stream(&app, &session).await;
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    while let Some(frame) = next_frame(&mut body).await {
        assert_eq!(frame, ": ping\n\n");
        pings += 1;
    }
    assert_eq!(started.elapsed(), Duration::from_secs(30 * 60));
    assert_eq!(pings, 119, "a ping every 15 s until the idle expiry");
    assert!(app
        .shared
        .audit
        .recent()
        .iter()
        .any(|e| e.event == "web_session_expired"));
}

#[tokio::test]
async fn shutdown_ends_every_stream_including_basic_ones() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    let mut cookie_stream = open_stream(&app, &session).await;
    let mut basic_stream = app.send(as_operator(get("/api/events"))).await.into_body();
    app.shutdown.cancel();
    for body in [&mut cookie_stream, &mut basic_stream] {
        let ended = tokio::time::timeout(Duration::from_secs(5), next_frame(body)).await;
        assert_eq!(ended, Ok(None));
    }
}

/// Events already waiting when the stream wakes go out as one chunk, in order.
#[tokio::test(start_paused = true)]
async fn waiting_events_go_out_together_in_order() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    let mut body = open_stream(&app, &session).await;
    settle().await;
    for (i, value) in [1.0, 2.0, 3.0].into_iter().enumerate() {
        let sample = sample(
            "temperature",
            Value::Float(value),
            Timestamp(1_700_000_000_000_000 + i as i64),
        );
        app.fake
            .live
            .send(LiveEvent::value_of(&sample, Quality::Good).into())
            .unwrap();
    }
    let frame = next_frame(&mut body).await.unwrap();
    let events: Vec<&str> = frame.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 3, "one chunk with the three events: {frame}");
    for (event, value) in events.iter().zip(["1.0", "2.0", "3.0"]) {
        assert!(event.starts_with("event: value\ndata: {"), "{event}");
        assert!(event.contains(&format!("\"value\":{value}")), "{event}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_configuration_generation_arrives_as_a_config_event() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    let mut body = open_stream(&app, &session).await;
    settle().await;
    app.fake
        .live
        .send(LiveEvent::Config(crate::web::views::ConfigEvent { generation: 7 }).into())
        .unwrap();
    let frame = next_frame(&mut body).await.unwrap();
    assert_eq!(frame, "event: config\ndata: {\"generation\":7}\n\n");
}
