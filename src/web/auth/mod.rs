//! Who is asking: a console session (cookie) or HTTP Basic with the `[opcua]` user, checked by
//! the constant-time [`CredentialVerifier`]. One middleware runs before every route: it attaches
//! the [`Principal`] to the request, answers API requests without valid credentials with 401
//! (+ `WWW-Authenticate: Basic realm="..."` for scripts) and sends page requests to the sign-in
//! page. Failed attempts are slowed per source address and audited.

pub mod audit;
mod basic;
pub mod sessions;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

pub use basic::{parse_basic, BasicRejection};
use sessions::{SessionInfo, SESSION_COOKIE};

use crate::web::error::ApiError;
use crate::web::WebState;

/// The sign-in page, where page requests without a session are sent.
pub const LOGIN_PAGE: &str = "/login.html";

/// Pages and assets anyone may load: the sign-in page, the icon, and the scripts, styles and
/// vendored files under these folders (code and layout, never data: every value a page shows
/// comes from `/api`, which needs a session). Every other page needs a session.
pub const PUBLIC_ASSET_DIRS: &[&str] = &["/css/", "/js/", "/vendor/"];

/// The single public files (see [`PUBLIC_ASSET_DIRS`]).
pub const PUBLIC_FILES: &[&str] = &[LOGIN_PAGE, "/favicon.svg", "/favicon.ico"];

/// Whether a GET of `path` needs no session.
pub fn is_public_asset(path: &str) -> bool {
    PUBLIC_FILES.contains(&path)
        || (PUBLIC_ASSET_DIRS.iter().any(|dir| path.starts_with(dir)) && !path.contains(".."))
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub enum Principal {
    Session(SessionInfo),
    Basic { user: String },
}

impl Principal {
    pub fn user(&self) -> &str {
        match self {
            Self::Session(s) => &s.user,
            Self::Basic { user } => user,
        }
    }
}

/// The source address the server recorded for the connection (none in tests that omit it).
pub fn source_ip(request_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Sign-in itself needs no credentials (it checks its own).
fn is_public(method: &Method, path: &str) -> bool {
    (path == "/api/session" && method == Method::POST)
        || ((method == Method::GET || method == Method::HEAD) && is_public_asset(path))
}

/// Values of the session cookie in the request (browsers may send several).
pub fn session_cookies(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .collect()
}

pub async fn require_auth(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    if is_public(&method, &path) {
        return next.run(request).await;
    }
    let cookies: Vec<String> = session_cookies(request.headers())
        .into_iter()
        .map(str::to_string)
        .collect();
    if let Some(session) = cookies
        .iter()
        .find_map(|token| state.sessions().authenticate(token))
    {
        request.extensions_mut().insert(Principal::Session(session));
        return next.run(request).await;
    }
    let source = source_ip(request.extensions());
    let has_authorization = request.headers().contains_key(header::AUTHORIZATION);
    if has_authorization {
        match state.check_basic(request.headers()) {
            Ok(user) => {
                state.throttle().succeeded(source);
                request.extensions_mut().insert(Principal::Basic { user });
                return next.run(request).await;
            }
            Err((user, reason)) => {
                state.audit().auth_failed(source, &user, &path, reason);
                state.slow_down(source).await;
                return unauthorized(&state, request.headers(), !cookies.is_empty());
            }
        }
    }
    if is_api(&path) || !(method == Method::GET || method == Method::HEAD) {
        state.audit().auth_failed(source, "", &path, "missing");
        return unauthorized(&state, request.headers(), !cookies.is_empty());
    }
    Redirect::to(&login_redirect(&path, request.uri().query())).into_response()
}

/// The sign-in page, told which page to return to (`?next=`, percent-encoded; the page checks
/// it is one of ours before going there).
fn login_redirect(path: &str, query: Option<&str>) -> String {
    let target = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut encoded = String::with_capacity(target.len());
    for byte in target.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{LOGIN_PAGE}?next={encoded}")
}

/// Answers 401. Scripts get the Basic challenge; a browser's own requests (a stale session
/// cookie, or `Sec-Fetch-Mode` of a `fetch`) do not, so it shows its sign-in page instead of
/// its native password prompt.
fn unauthorized(state: &WebState, headers: &HeaderMap, had_session_cookie: bool) -> Response {
    let from_page_script = headers
        .get("sec-fetch-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|mode| mode != "navigate");
    let mut error = if had_session_cookie {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "session expired or signed out; sign in again",
        )
    } else {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication required")
    };
    if !had_session_cookie && !from_page_script {
        error.challenge = Some(state.challenge());
    }
    error.into_response()
}

/// `Basic realm="<realm>"` (the realm was validated: printable ASCII without quotes).
pub fn challenge_for(realm: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"opcgw\""))
}
