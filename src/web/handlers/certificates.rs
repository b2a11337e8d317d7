//! `GET /api/certificates`, `POST /api/certificates/{thumbprint}/trust` and `/reject`,
//! `DELETE /api/certificates/{thumbprint}`: the OPC UA client certificates of
//! `pki/trusted/` and `pki/rejected/`. Each change is audited (`pki_certificate_*`).

use axum::extract::{Path, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use crate::security::{
    sanitize_for_log, CertificateAction, CertificateError, ClientCertificate, Thumbprint,
};
use crate::web::auth::audit::{
    PKI_CERTIFICATE_DELETED, PKI_CERTIFICATE_REJECTED, PKI_CERTIFICATE_TRUSTED,
};
use crate::web::auth::{source_ip, Principal};
use crate::web::error::ApiError;
use crate::web::views::WebTime;
use crate::web::WebState;

/// One certificate as the API shows it (docs/web.md).
#[derive(Debug, Serialize)]
pub struct CertificateView {
    pub thumbprint: Option<String>,
    pub state: &'static str,
    pub subject: Option<String>,
    pub application_uri: Option<String>,
    pub not_before: Option<WebTime>,
    pub not_after: Option<WebTime>,
    pub expired: bool,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl From<ClientCertificate> for CertificateView {
    fn from(c: ClientCertificate) -> Self {
        Self {
            thumbprint: c.thumbprint,
            state: c.state.as_str(),
            subject: c.subject,
            application_uri: c.application_uri,
            not_before: c.not_before.map(WebTime),
            not_after: c.not_after.map(WebTime),
            expired: c.expired,
            file: c.file,
            error: c.error,
            warning: c.warning,
        }
    }
}

/// The one table of what each certificate failure answers. File-system detail is logged,
/// never sent.
pub fn certificate_error(action: &str, error: &CertificateError) -> ApiError {
    match error {
        CertificateError::NotFound { .. } => ApiError::not_found(error.to_string()),
        CertificateError::AlreadyInState { .. }
        | CertificateError::NameTaken { .. }
        | CertificateError::Changed { .. } => {
            ApiError::new(StatusCode::CONFLICT, error.to_string())
        }
        CertificateError::NotACertificate { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
        }
        CertificateError::Io { .. } | CertificateError::TaskFailed(_) => {
            warn!(
                event = "api_certificates_error",
                action,
                error = %error,
                "client certificate request failed on the PKI directory"
            );
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the PKI directory could not be read or changed; the gateway log says why",
            )
        }
    }
}

pub async fn list(State(state): State<WebState>) -> Result<Json<serde_json::Value>, ApiError> {
    let list = state
        .backend()
        .certificates()
        .await
        .map_err(|e| certificate_error("list", &e))?;
    let certificates: Vec<CertificateView> = list
        .certificates
        .into_iter()
        .map(CertificateView::from)
        .collect();
    Ok(Json(
        json!({"certificates": certificates, "truncated": list.truncated}),
    ))
}

pub async fn trust(
    state: State<WebState>,
    principal: Extension<Principal>,
    extensions: Extensions,
    thumbprint: Path<String>,
) -> Response {
    act(
        state,
        principal,
        extensions,
        thumbprint,
        CertificateAction::Trust,
    )
    .await
}

pub async fn reject(
    state: State<WebState>,
    principal: Extension<Principal>,
    extensions: Extensions,
    thumbprint: Path<String>,
) -> Response {
    act(
        state,
        principal,
        extensions,
        thumbprint,
        CertificateAction::Reject,
    )
    .await
}

pub async fn delete(
    state: State<WebState>,
    principal: Extension<Principal>,
    extensions: Extensions,
    thumbprint: Path<String>,
) -> Response {
    act(
        state,
        principal,
        extensions,
        thumbprint,
        CertificateAction::Delete,
    )
    .await
}

async fn act(
    State(state): State<WebState>,
    Extension(principal): Extension<Principal>,
    extensions: Extensions,
    Path(text): Path<String>,
    action: CertificateAction,
) -> Response {
    let Some(thumbprint) = Thumbprint::parse(&text) else {
        return ApiError::bad_request(
            "thumbprint must be the 40 hexadecimal digits of the certificate's SHA-1 thumbprint",
        )
        .with_field("thumbprint")
        .into_response();
    };
    let outcome = state
        .backend()
        .certificate_action(thumbprint.clone(), action)
        .await;
    let certificate = match outcome {
        Ok(certificate) => certificate,
        Err(error) => {
            info!(
                event = "pki_certificate_action_refused",
                action = action.as_str(),
                thumbprint = thumbprint.as_str(),
                user = %sanitize_for_log(principal.user(), 64),
                reason = %error,
                "web console certificate request refused"
            );
            return certificate_error(action.as_str(), &error).into_response();
        }
    };
    let event = match action {
        CertificateAction::Trust => PKI_CERTIFICATE_TRUSTED,
        CertificateAction::Reject => PKI_CERTIFICATE_REJECTED,
        CertificateAction::Delete => PKI_CERTIFICATE_DELETED,
    };
    state.audit().certificate_event(
        event,
        source_ip(&extensions),
        principal.user(),
        thumbprint.as_str(),
        certificate.subject.as_deref().unwrap_or(""),
    );
    match action {
        CertificateAction::Delete => StatusCode::NO_CONTENT.into_response(),
        CertificateAction::Trust | CertificateAction::Reject => {
            Json(CertificateView::from(certificate)).into_response()
        }
    }
}
