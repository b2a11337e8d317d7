//! 004's CSRF rules on every mutating request, and the headers every response carries.

use axum::http::{header, StatusCode};

use super::support::*;
use crate::web::headers::CONTENT_SECURITY_POLICY;

const COMMAND: &str = "/api/devices/valve-1/commands/level";

fn command_body(key: &str) -> String {
    serde_json::json!({"value": 5, "idempotency_key": key}).to_string()
}

fn without(
    mut request: axum::http::Request<axum::body::Body>,
    name: header::HeaderName,
) -> axum::http::Request<axum::body::Body> {
    request.headers_mut().remove(name);
    request
}

#[tokio::test]
async fn the_origin_must_be_present_single_and_allowed() {
    let app = App::new();
    let response = app
        .send(as_operator(without(
            post_json(COMMAND, &command_body("key-0001")),
            header::ORIGIN,
        )))
        .await;
    assert_error(
        response,
        StatusCode::FORBIDDEN,
        "an Origin header is required",
    )
    .await;
    let twice = with_header(
        post_json(COMMAND, &command_body("key-0002")),
        "origin",
        ORIGIN,
    );
    assert_error(
        app.send(as_operator(twice)).await,
        StatusCode::FORBIDDEN,
        "exactly one Origin header is allowed",
    )
    .await;
    for origin in [
        "http://evil.example",
        "http://127.0.0.1:8081",
        "https://127.0.0.1:8080",
        "null",
    ] {
        let mut request = post_json(COMMAND, &command_body("key-0003"));
        request
            .headers_mut()
            .insert(header::ORIGIN, origin.parse().unwrap());
        let response = app.send(as_operator(request)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
    }
    assert_eq!(
        app.fake
            .enqueue_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let audit = app.shared.audit.recent();
    assert!(audit.iter().any(|e| e.detail.ends_with("reason=csrf")));
    // The default origin passes.
    let response = app
        .send(as_operator(post_json(COMMAND, &command_body("key-0004"))))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_default_port_equals_no_port() {
    let mut config = config();
    config.web.allowed_origins = vec![
        "http://gateway.local".into(),
        "https://gw.example:443".into(),
    ];
    let app = App::with_config(config);
    for (origin, key) in [
        ("http://gateway.local:80", "key-0001"),
        ("https://gw.example", "key-0002"),
        ("HTTP://GATEWAY.LOCAL", "key-0003"),
    ] {
        let mut request = post_json(COMMAND, &command_body(key));
        request
            .headers_mut()
            .insert(header::ORIGIN, origin.parse().unwrap());
        assert_eq!(
            app.send(as_operator(request)).await.status(),
            StatusCode::ACCEPTED,
            "{origin}"
        );
    }
    // Configuring origins replaces the default.
    let response = app
        .send(as_operator(post_json(COMMAND, &command_body("key-0004"))))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_content_type_must_be_exactly_json() {
    let app = App::new();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json-patch+json",
        "application/jsonx",
    ] {
        let mut request = post_json(COMMAND, &command_body("key-0001"));
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        let response = app.send(as_operator(request)).await;
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )
        .await;
    }
    let response = app
        .send(as_operator(without(
            post_json(COMMAND, &command_body("key-0001")),
            header::CONTENT_TYPE,
        )))
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut request = post_json(COMMAND, &command_body("key-0002"));
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json; charset=utf-8".parse().unwrap(),
    );
    assert_eq!(
        app.send(as_operator(request)).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn a_cookie_session_needs_its_own_csrf_token_and_basic_does_not() {
    let app = App::new();
    let (session, csrf) = app.sign_in().await;
    let response = app
        .send(cookie(
            post_json(COMMAND, &command_body("key-0001")),
            &session,
        ))
        .await;
    assert_error(
        response,
        StatusCode::FORBIDDEN,
        "missing or wrong X-CSRF-Token header",
    )
    .await;
    let request = with_header(
        cookie(post_json(COMMAND, &command_body("key-0001")), &session),
        "x-csrf-token",
        "forged",
    );
    assert_eq!(app.send(request).await.status(), StatusCode::FORBIDDEN);
    // Another session's token is not this session's.
    let (_, other_csrf) = app.sign_in().await;
    let request = with_header(
        cookie(post_json(COMMAND, &command_body("key-0001")), &session),
        "x-csrf-token",
        &other_csrf,
    );
    assert_eq!(app.send(request).await.status(), StatusCode::FORBIDDEN);
    let request = with_header(
        cookie(post_json(COMMAND, &command_body("key-0001")), &session),
        "x-csrf-token",
        &csrf,
    );
    assert_eq!(app.send(request).await.status(), StatusCode::ACCEPTED);
    // Sign-out is mutating too.
    let response = app
        .send(cookie(request_json("DELETE", "/api/session", ""), &session))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_itself_passes_the_origin_and_content_type_checks() {
    let app = App::new();
    let response = app
        .send(without(
            post_json("/api/session", &login_body(USER, PASSWORD)),
            header::ORIGIN,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let mut request = post_json("/api/session", &login_body(USER, PASSWORD));
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    assert_eq!(
        app.send(request).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert!(app.shared.sessions.is_empty());
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_api_ones_no_store() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    let cases = [
        (get("/api/status"), StatusCode::UNAUTHORIZED, true),
        (as_operator(get("/api/status")), StatusCode::OK, true),
        (
            as_operator(get("/api/nothing")),
            StatusCode::NOT_FOUND,
            true,
        ),
        (get("/index.html"), StatusCode::SEE_OTHER, false),
        (
            cookie(get("/missing.html"), &session),
            StatusCode::NOT_FOUND,
            false,
        ),
        (
            as_operator(post_json("/api/devices/valve-1/commands/level", "{")),
            StatusCode::BAD_REQUEST,
            true,
        ),
    ];
    for (request, status, api) in cases {
        let path = request.uri().to_string();
        let response = app.send(request).await;
        assert_eq!(response.status(), status, "{path}");
        let h = response.headers();
        assert_eq!(
            h[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            h.get(header::CACHE_CONTROL)
                .is_some_and(|v| v == "no-store"),
            api,
            "{path}"
        );
    }
    assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let mut config = config();
    config.web.max_body_bytes = 1024;
    let app = App::with_config(config);
    let big =
        serde_json::json!({"value": "x".repeat(2000), "idempotency_key": "key-0001"}).to_string();
    let response = app.send(as_operator(post_json(COMMAND, &big))).await;
    assert_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large",
    )
    .await;
    assert_eq!(
        app.fake
            .enqueue_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}
