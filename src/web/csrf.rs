//! 004's CSRF defence for every request but GET/HEAD/OPTIONS: exactly one `Origin` header,
//! found in `[web].allowed_origins` (default `http://<bind_address>:<port>`; `:80`/`:443` equal
//! to no port), `Content-Type: application/json` exactly (optional parameters) else 415, and for
//! cookie sessions an `X-CSRF-Token` header equal to the session's (constant-time). It runs after
//! authentication, so it knows whether the caller is a cookie session.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::security::constant_time_eq;
use crate::web::auth::audit::{crud_event, EditVerdict};
use crate::web::auth::{source_ip, Principal};
use crate::web::error::ApiError;
use crate::web::handlers::config::csrf_subject;
use crate::web::WebState;

pub const CSRF_HEADER: &str = "x-csrf-token";

/// `scheme://host[:port]` lower-cased, with the scheme's default port dropped; `None` when it
/// is not an origin of that form (`null`, a path, credentials...).
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    // The port follows the last ':' outside an IPv6 literal's brackets.
    let host_end = rest.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match rest[host_end..].rfind(':') {
        Some(i) => (&rest[..host_end + i], Some(&rest[host_end + i + 1..])),
        None => (rest, None),
    };
    if host.is_empty() {
        return None;
    }
    match port {
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => None,
        Some(p) if p.trim_start_matches('0') == default_port => Some(format!("{scheme}://{host}")),
        Some(p) => Some(format!("{scheme}://{host}:{}", p.trim_start_matches('0'))),
        None => Some(format!("{scheme}://{host}")),
    }
}

/// `application/json`, optionally followed by `;` parameters, nothing else.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default();
    essence.eq_ignore_ascii_case("application/json")
}

fn is_safe(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS
}

pub async fn check_csrf(State(state): State<WebState>, request: Request, next: Next) -> Response {
    if is_safe(request.method()) {
        return next.run(request).await;
    }
    if let Err(error) = verdict(&state, &request) {
        let user = request
            .extensions()
            .get::<Principal>()
            .map(|p| p.user().to_string())
            .unwrap_or_default();
        let source = source_ip(request.extensions());
        state
            .audit()
            .auth_failed(source, &user, request.uri().path(), "csrf");
        // A refused configuration change is also that change's refusal (004's audit events).
        if let Some((subject, target)) = csrf_subject(request.uri().path()) {
            state.audit().config_event(
                crud_event(subject, None),
                source,
                &user,
                &target,
                EditVerdict::Rejected { reason: "csrf" },
            );
        }
        return error.into_response();
    }
    next.run(request).await
}

fn verdict(state: &WebState, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (Some(origin), None) => origin,
        (None, _) => return Err(ApiError::forbidden("an Origin header is required")),
        (Some(_), Some(_)) => {
            return Err(ApiError::forbidden("exactly one Origin header is allowed"))
        }
    };
    let allowed = origin
        .to_str()
        .ok()
        .and_then(normalize_origin)
        .is_some_and(|o| state.settings().allowed_origins.contains(&o));
    if !allowed {
        return Err(ApiError::forbidden(
            "origin not allowed (add it to [web].allowed_origins if this is the console's address)",
        ));
    }
    if !is_json_content_type(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    }
    if let Some(Principal::Session(session)) = request.extensions().get::<Principal>() {
        let sent = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, session.csrf_token.as_bytes()) {
            return Err(ApiError::forbidden("missing or wrong X-CSRF-Token header"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::normalize_origin;

    #[test]
    fn origins_normalise_with_default_port_equivalence() {
        let same = [
            ("http://gateway.local:80", "http://gateway.local"),
            ("HTTP://Gateway.Local", "http://gateway.local"),
            ("https://gw:443", "https://gw"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://[::1]:80", "http://[::1]"),
            ("http://[::1]", "http://[::1]"),
        ];
        for (input, expected) in same {
            assert_eq!(
                normalize_origin(input).as_deref(),
                Some(expected),
                "{input}"
            );
        }
        // :443 on http is not the default port.
        assert_eq!(
            normalize_origin("http://gw:443").as_deref(),
            Some("http://gw:443")
        );
        for bad in [
            "null",
            "",
            "ftp://gw",
            "http://",
            "http://gw/path",
            "http://u@gw",
            "http://gw:",
            "http://gw:x",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }
}
