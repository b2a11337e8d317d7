//! `POST /api/session` (sign in), `GET /api/session`, `DELETE /api/session` (sign out).

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::web::auth::audit::{WEB_LOGIN, WEB_LOGOUT};
use crate::web::auth::sessions::SESSION_COOKIE;
use crate::web::auth::{session_cookies, source_ip, Principal};
use crate::web::error::ApiError;
use crate::web::json::ApiJson;
use crate::web::views::WebTime;
use crate::web::WebState;

#[derive(Deserialize)]
pub struct SignIn {
    user: String,
    password: String,
}

pub async fn sign_in(State(state): State<WebState>, request: Request) -> Response {
    let source = source_ip(request.extensions());
    let path = request.uri().path().to_string();
    let old_tokens: Vec<String> = session_cookies(request.headers())
        .into_iter()
        .map(str::to_string)
        .collect();
    let ApiJson(body) = match ApiJson::<SignIn>::from_request(request, &state).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    if let Err(reason) = state.check_credentials(&body.user, &body.password) {
        state.audit().auth_failed(source, &body.user, &path, reason);
        state.slow_down(source).await;
        return ApiError::new(StatusCode::UNAUTHORIZED, "invalid user name or password")
            .into_response();
    }
    state.throttle().succeeded(source);
    // A sign-in always gets a new token: an old one (perhaps planted) dies here.
    for token in &old_tokens {
        state.sessions().revoke(token);
    }
    let session = state.sessions().create(&body.user, source);
    state
        .audit()
        .session_event(WEB_LOGIN, source, &body.user, "");
    let mut response = Json(json!({
        "csrf_token": session.csrf_token,
        "user": body.user,
        "idle_expires_in": state.sessions().idle_timeout().as_secs(),
        "expires_at": WebTime(session.expires_at),
    }))
    .into_response();
    let secure = if state.settings().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
        session.token
    );
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        // The token is URL-safe base64: this cannot happen, and must not log the token if it did.
        Err(_) => ApiError::internal().into_response(),
    }
}

pub async fn current(Extension(principal): Extension<Principal>) -> Response {
    match principal {
        Principal::Session(s) => Json(json!({
            "user": s.user,
            "csrf_token": s.csrf_token,
            "expires_at": WebTime(s.expires_at),
        }))
        .into_response(),
        Principal::Basic { user } => {
            Json(json!({"user": user, "csrf_token": null, "expires_at": null})).into_response()
        }
    }
}

pub async fn sign_out(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    request: Request,
) -> Response {
    if let Principal::Session(session) = &principal {
        for token in session_cookies(request.headers()) {
            state.sessions().revoke(token);
        }
        state.audit().session_event(
            WEB_LOGOUT,
            source_ip(request.extensions()),
            &session.user,
            "",
        );
    }
    let secure = if state.settings().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
