//! The route handlers, one file per group. They speak only through [`crate::web::WebBackend`].

pub mod certificates;
pub mod commands;
pub mod config;
pub mod events;
pub mod read;
pub mod session;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::web::auth::is_api;
use crate::web::error::ApiError;
use crate::web::WebState;

/// Unknown API routes answer 404 JSON; everything else is a page or asset.
pub async fn fallback(State(state): State<WebState>, request: Request) -> Response {
    let path = request.uri().path();
    if is_api(path) {
        return ApiError::not_found("no such API route").into_response();
    }
    state
        .assets()
        .serve(request.method(), path, request.headers())
        .await
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
