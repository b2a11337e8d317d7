//! Who gets in: HTTP Basic for scripts, cookie sessions for browsers, the sign-in page for
//! pages, and the audit trail of refusals.

use axum::http::{header, StatusCode};

use super::support::*;

#[tokio::test]
async fn an_api_request_without_credentials_gets_401_with_the_basic_challenge() {
    let app = App::new();
    let response = app.send(get("/api/devices")).await;
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"opcgw\""
    );
    assert_error(
        response,
        StatusCode::UNAUTHORIZED,
        "authentication required",
    )
    .await;
    let audit = app.shared.audit.recent();
    assert_eq!(audit[0].event, "web_auth_failed");
    assert_eq!(audit[0].detail, "path=/api/devices reason=missing");
    assert_eq!(audit[0].source_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn the_realm_comes_from_the_configuration() {
    let mut config = config();
    config.web.auth_realm = "opcgw-prod-east".into();
    let app = App::with_config(config);
    let response = app.send(get("/api/status")).await;
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"opcgw-prod-east\""
    );
}

#[tokio::test]
async fn a_fetch_from_a_page_gets_401_without_the_challenge() {
    // A browser would otherwise pop its own password prompt over the sign-in page.
    let app = App::new();
    let response = app
        .send(with_header(get("/api/session"), "sec-fetch-mode", "cors"))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    let response = app
        .send(cookie(get("/api/devices"), "opcgw_session=forged"))
        .await;
    assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    assert_error(
        response,
        StatusCode::UNAUTHORIZED,
        "session expired or signed out; sign in again",
    )
    .await;
}

#[tokio::test]
async fn basic_credentials_of_the_opcua_user_open_every_api_route() {
    let app = App::new();
    for path in [
        "/api/health",
        "/api/status",
        "/api/devices",
        "/api/devices/valve-1",
        "/api/commands",
        "/api/audit",
    ] {
        let response = app.send(as_operator(get(path))).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let body = json_body(app.send(as_operator(get("/api/health"))).await).await;
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test(start_paused = true)]
async fn every_basic_refusal_is_the_same_401_and_audited_with_its_reason() {
    let app = App::new();
    let cases = [
        (
            with_header(get("/api/status"), "authorization", "Bearer abc"),
            "",
            "malformed_scheme",
        ),
        (
            with_header(get("/api/status"), "authorization", "Basic !!!"),
            "",
            "malformed_base64",
        ),
        (
            with_header(get("/api/status"), "authorization", "Basic b3BlcmF0b3I="),
            "",
            "missing_colon",
        ),
        (
            basic(get("/api/status"), "intruder\u{1b}[31m", PASSWORD),
            "intruder\\u{1b}[31m",
            "user_mismatch",
        ),
        (
            basic(get("/api/status"), USER, "wrong"),
            USER,
            "password_mismatch",
        ),
    ];
    for (request, user, reason) in cases {
        let response = app.send(request).await;
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"opcgw\""
        );
        assert_error(
            response,
            StatusCode::UNAUTHORIZED,
            "authentication required",
        )
        .await;
        let last = app.shared.audit.recent().remove(0);
        assert_eq!(last.event, "web_auth_failed");
        assert_eq!(last.user, user, "sanitised user");
        assert_eq!(last.detail, format!("path=/api/status reason={reason}"));
        assert!(!last.detail.contains(PASSWORD) && !last.user.contains(PASSWORD));
    }
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_are_slowed_per_source_address_and_a_success_resets_it() {
    let app = App::new();
    let mut delays = Vec::new();
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let response = app.send(basic(get("/api/status"), USER, "wrong")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        delays.push(started.elapsed().as_millis());
    }
    assert_eq!(delays, [300, 600, 1200]);
    // Sign-in refusals share the same throttle.
    let started = tokio::time::Instant::now();
    let response = app
        .send(post_json("/api/session", &login_body(USER, "wrong")))
        .await;
    assert_error(
        response,
        StatusCode::UNAUTHORIZED,
        "invalid user name or password",
    )
    .await;
    assert_eq!(started.elapsed().as_millis(), 2400);
    // Never a lockout: the right password still works, and forgets the failures.
    assert_eq!(
        app.send(as_operator(get("/api/status"))).await.status(),
        StatusCode::OK
    );
    let started = tokio::time::Instant::now();
    app.send(basic(get("/api/status"), USER, "wrong")).await;
    assert_eq!(started.elapsed().as_millis(), 300);
}

#[tokio::test]
async fn a_page_without_a_session_goes_to_the_sign_in_page_which_is_public() {
    let app = App::new();
    for (path, location) in [
        ("/", "/login.html?next=/"),
        ("/index.html", "/login.html?next=/index.html"),
        ("/devices.html", "/login.html?next=/devices.html"),
        (
            "/device.html?id=0000000000000001&x=a%20b",
            "/login.html?next=/device.html%3Fid%3D0000000000000001%26x%3Da%2520b",
        ),
        ("/other/page.html", "/login.html?next=/other/page.html"),
    ] {
        let response = app.send(get(path)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[header::LOCATION], location);
    }
    // The sign-in page and its assets are never redirected nor challenged (404 here when the
    // embedded tree of this build does not hold one).
    for path in [
        "/login.html",
        "/favicon.svg",
        "/favicon.ico",
        "/js/login.js",
        "/js/api.js",
        "/css/console.css",
        "/vendor/uplot/uPlot.iife.min.js",
    ] {
        let status = app.send(get(path)).await.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
    }
    // A page request with a session is served (or 404), not redirected.
    let (session, _) = app.sign_in().await;
    let status = app
        .send(cookie(get("/no-such-page.html"), &session))
        .await
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unknown_api_route_and_a_wrong_method_answer_json_errors() {
    let app = App::new();
    let response = app.send(as_operator(get("/api/nothing"))).await;
    assert_error(response, StatusCode::NOT_FOUND, "no such API route").await;
    let response = app
        .send(as_operator(request_json("PUT", "/api/devices", "{}")))
        .await;
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
    .await;
}
