//! Every error answer of the API: `{"error": "<human text>"}` (+ `"field"`), and the one table
//! that turns a [`WebBackendError`] into a status. A storage failure's detail goes to the log
//! (`event="api_<route>_storage_error"`), never into a response.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tracing::warn;

use crate::web::backend::WebBackendError;

/// What a client is told; `message` is safe to show (it never holds internal detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<&'static str>,
    /// `WWW-Authenticate` value of a 401 that invites HTTP Basic.
    pub challenge: Option<HeaderValue>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
            challenge: None,
        }
    }

    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }

    /// The answer to a backend failure on `route` (a short name such as `devices`); logs the
    /// detail as `event="api_<route>_storage_error"`.
    pub fn from_backend(route: &str, error: WebBackendError) -> Self {
        let (status, message) = backend_status(&error);
        warn!(
            event = %format!("api_{route}_storage_error"),
            status = status.as_u16(),
            error = %error,
            "web console request failed in the gateway"
        );
        Self::new(status, message)
    }
}

/// The one table: what each backend failure answers.
pub fn backend_status(error: &WebBackendError) -> (StatusCode, &'static str) {
    match error {
        // Storage restarts by itself: the same request works again shortly.
        WebBackendError::Unavailable | WebBackendError::Timeout => {
            (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
        // Busy, not broken: works again once the device's earlier commands complete.
        WebBackendError::CommandQueueFull(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the device's command queue is full; try again once its queued commands complete",
        ),
        WebBackendError::Internal(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                error: &self.message,
                field: self.field,
            }),
        )
            .into_response();
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
