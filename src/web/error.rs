//! Every error answer of the API: `{"error": "<human text>"}` (+ `"field"`; configuration edits
//! add `"reason"` and `"problems"`), and the tables that turn a [`WebBackendError`] and an
//! [`EditError`] into a status. A storage failure's detail goes to the log
//! (`event="api_<route>_storage_error"`), never into a response.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tracing::warn;

use crate::config::edit::{EditError, EditSubject, FieldProblem};
use crate::web::backend::WebBackendError;

/// What a client is told; `message` is safe to show (it never holds internal detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<Box<str>>,
    /// The machine-readable cause of a configuration edit's refusal ([`EditError::reason`]).
    pub reason: Option<&'static str>,
    /// Field-level problems of a refused edit, in the request's terms (boxed: most answers
    /// have none, and every `Result` carrying an `ApiError` stays small).
    pub problems: Box<[FieldProblem]>,
    /// `WWW-Authenticate` value of a 401 that invites HTTP Basic.
    pub challenge: Option<HeaderValue>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    problems: &'a [FieldProblem],
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
            reason: None,
            problems: Box::default(),
            challenge: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.field = Some(field.into().into());
        self
    }

    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// A refused configuration edit: its status from [`edit_status`], its text, `reason`, the
    /// field at fault and every field-level problem.
    pub fn from_edit(error: &EditError) -> Self {
        let mut answer =
            Self::new(edit_status(error), error.to_string()).with_reason(error.reason());
        answer.field = edit_field(error).map(String::into_boxed_str);
        if let EditError::Validation { problems } = error {
            answer.problems = problems.clone().into_boxed_slice();
        }
        answer
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

/// The one table of configuration edits: what each refusal answers.
pub fn edit_status(error: &EditError) -> StatusCode {
    match error {
        EditError::NotFound { .. } => StatusCode::NOT_FOUND,
        // The request is well formed but the file or the tree is not in a state that allows it:
        // fix that first (reload, unset the variable, edit by hand, free the id, restart).
        EditError::Conflict { .. }
        | EditError::AmbientDrift
        | EditError::EnvOverride { .. }
        | EditError::UnsupportedLayout(_)
        | EditError::RestartRequired { .. } => StatusCode::CONFLICT,
        EditError::Validation { .. } | EditError::Immutable { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        EditError::ReloadFailed(_) | EditError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        EditError::Disabled(_) | EditError::Poisoned(_) | EditError::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The field a refusal is about, in the request's terms (the first one when there are several).
fn edit_field(error: &EditError) -> Option<String> {
    match error {
        EditError::NotFound { subject, .. } => Some(
            match subject {
                EditSubject::Application => "application_id",
                EditSubject::Device => "device_id",
                EditSubject::Command => "command_name",
            }
            .to_string(),
        ),
        EditError::Immutable { field } | EditError::EnvOverride { field, .. } => {
            Some(field.clone())
        }
        EditError::Validation { problems } => problems
            .first()
            .map(|p| p.field.clone())
            .filter(|f| !f.is_empty()),
        EditError::RestartRequired { knob } => Some(knob.clone()),
        _ => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                error: &self.message,
                reason: self.reason,
                field: self.field.as_deref(),
                problems: &self.problems,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::edit::EditSubject;

    /// Every refusal, its status, its reason and the field it names.
    #[test]
    fn every_edit_refusal_has_one_status_reason_and_field() {
        let not_found = |subject| EditError::NotFound {
            subject,
            id: "x".into(),
        };
        let problem = FieldProblem {
            field: "command[0].command_port".into(),
            message: "1-223".into(),
        };
        let table = [
            (
                not_found(EditSubject::Application),
                404,
                "application_not_found",
                Some("application_id"),
            ),
            (
                not_found(EditSubject::Device),
                404,
                "device_not_found",
                Some("device_id"),
            ),
            (
                not_found(EditSubject::Command),
                404,
                "command_not_found",
                Some("command_name"),
            ),
            (
                EditError::Conflict {
                    message: "dup".into(),
                },
                409,
                "conflict",
                None,
            ),
            (EditError::AmbientDrift, 409, "ambient_drift", None),
            (
                EditError::EnvOverride {
                    field: "device_name".into(),
                    variable: "OPCGW_APPLICATION__0__NAME".into(),
                },
                409,
                "env_override",
                Some("device_name"),
            ),
            (
                EditError::UnsupportedLayout("inline".into()),
                409,
                "unsupported_layout",
                None,
            ),
            (
                EditError::RestartRequired {
                    knob: "web.port".into(),
                },
                409,
                "restart_required",
                Some("web.port"),
            ),
            (
                EditError::Immutable {
                    field: "device_id".into(),
                },
                422,
                "immutable_field",
                Some("device_id"),
            ),
            (
                EditError::Validation {
                    problems: vec![problem.clone()],
                },
                422,
                "validation",
                Some("command[0].command_port"),
            ),
            (
                EditError::ReloadFailed("x".into()),
                500,
                "reload_failed",
                None,
            ),
            (
                EditError::Io("config.toml: disk full".into()),
                500,
                "io",
                None,
            ),
            (
                EditError::Disabled("read-only".into()),
                503,
                "editing_disabled",
                None,
            ),
            (
                EditError::Poisoned("config.toml".into()),
                503,
                "poisoned",
                None,
            ),
            (EditError::Unavailable, 503, "unavailable", None),
        ];
        for (error, status, reason, field) in table {
            let answer = ApiError::from_edit(&error);
            assert_eq!(answer.status.as_u16(), status, "{error:?}");
            assert_eq!(answer.reason, Some(reason), "{error:?}");
            assert_eq!(answer.field.as_deref(), field, "{error:?}");
            assert_eq!(answer.message, error.to_string());
            let problems = if reason == "validation" {
                vec![problem.clone()]
            } else {
                vec![]
            };
            assert_eq!(answer.problems.to_vec(), problems);
        }
    }
}
