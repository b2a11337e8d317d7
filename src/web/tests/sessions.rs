//! Console sessions: sign-in, the cookie, idle and absolute expiry on tokio's paused clock,
//! rotation, sign-out, and survival across router rebuilds.

use std::time::Duration;

use axum::http::StatusCode;

use super::support::*;

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_answers_the_csrf_token() {
    let app = App::new();
    let response = app
        .send(post_json("/api/session", &login_body(USER, PASSWORD)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie_header = set_cookie(&response).unwrap();
    let (pair, attributes) = cookie_header.split_once(';').unwrap();
    let token = pair.strip_prefix("opcgw_session=").unwrap();
    assert_eq!(token.len(), 43, "256 bits in URL-safe base64");
    assert_eq!(attributes, " HttpOnly; SameSite=Strict; Path=/");
    let body = json_body(response).await;
    assert_eq!(body["user"], USER);
    assert_eq!(body["idle_expires_in"], 1800);
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 43);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        !body.to_string().contains(token),
        "the session token is only in the cookie"
    );
    assert_eq!(app.shared.audit.recent()[0].event, "web_login");

    let response = app.send(cookie(get("/api/session"), pair)).await;
    let current = json_body(response).await;
    assert_eq!(current["user"], USER);
    assert_eq!(current["csrf_token"], body["csrf_token"]);
}

#[tokio::test]
async fn secure_cookies_marks_the_cookie_secure() {
    let mut config = config();
    config.web.secure_cookies = true;
    let app = App::with_config(config);
    let response = app
        .send(post_json("/api/session", &login_body(USER, PASSWORD)))
        .await;
    assert!(set_cookie(&response).unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn a_wrong_password_creates_no_session() {
    let app = App::new();
    let response = app
        .send(post_json("/api/session", &login_body(USER, "nope")))
        .await;
    assert!(set_cookie(&response).is_none());
    assert_error(
        response,
        StatusCode::UNAUTHORIZED,
        "invalid user name or password",
    )
    .await;
    assert!(app.shared.sessions.is_empty());
    let response = app
        .send(post_json("/api/session", "{\"user\": \"x\"}"))
        .await;
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "the body is not a JSON object of the expected shape (wrong or missing field)",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_expires_and_use_keeps_it_alive() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(29 * 60)).await;
        assert_eq!(
            app.send(cookie(get("/api/devices"), &session))
                .await
                .status(),
            StatusCode::OK
        );
    }
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    let response = app.send(cookie(get("/api/devices"), &session)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let expired = app
        .shared
        .audit
        .recent()
        .into_iter()
        .find(|e| e.event == "web_session_expired")
        .unwrap();
    assert_eq!(
        (expired.user.as_str(), expired.detail.as_str()),
        (USER, "idle")
    );
    assert!(
        app.shared.sessions.is_empty(),
        "an expired session is removed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_session_still_ends_at_its_absolute_expiry() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    // 12 h of a request every 20 minutes: never idle.
    for _ in 0..35 {
        tokio::time::advance(Duration::from_secs(20 * 60)).await;
        assert_eq!(
            app.send(cookie(get("/api/status"), &session))
                .await
                .status(),
            StatusCode::OK
        );
    }
    tokio::time::advance(Duration::from_secs(20 * 60)).await;
    assert_eq!(
        app.send(cookie(get("/api/status"), &session))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let expired = app
        .shared
        .audit
        .recent()
        .into_iter()
        .find(|e| e.event == "web_session_expired")
        .unwrap();
    assert_eq!(expired.detail, "absolute");
}

#[tokio::test(start_paused = true)]
async fn the_sweep_removes_expired_sessions_nobody_uses_again() {
    let app = App::new();
    app.sign_in().await;
    app.sign_in().await;
    assert_eq!(app.shared.sessions.len(), 2);
    tokio::time::advance(Duration::from_secs(31 * 60)).await;
    assert_eq!(app.shared.sessions.sweep(), 2);
    assert!(app.shared.sessions.is_empty());
}

#[tokio::test]
async fn every_sign_in_gets_a_new_token_and_kills_the_one_it_came_with() {
    let app = App::new();
    let (first, _) = app.sign_in().await;
    let response = app
        .send(cookie(
            post_json("/api/session", &login_body(USER, PASSWORD)),
            &first,
        ))
        .await;
    let second = set_cookie(&response)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    assert_eq!(
        app.send(cookie(get("/api/status"), &first)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send(cookie(get("/api/status"), &second)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_out_revokes_the_session_and_clears_the_cookie() {
    let app = App::new();
    let (session, csrf) = app.sign_in().await;
    let request = with_header(
        cookie(request_json("DELETE", "/api/session", ""), &session),
        "x-csrf-token",
        &csrf,
    );
    let response = app.send(request).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie(&response)
        .unwrap()
        .starts_with("opcgw_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"));
    assert_eq!(app.shared.audit.recent()[0].event, "web_logout");
    let response = app.send(cookie(get("/api/status"), &session)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_survive_a_rebuild_of_the_router() {
    let mut app = App::new();
    let (session, _) = app.sign_in().await;
    app.rebuild();
    assert_eq!(
        app.send(cookie(get("/api/devices"), &session))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_table_keeps_only_a_digest_of_the_token() {
    let app = App::new();
    let (session, _) = app.sign_in().await;
    let token = session.strip_prefix("opcgw_session=").unwrap();
    let dump = format!("{:?}", app.shared.sessions);
    assert!(!dump.contains(token));
}
