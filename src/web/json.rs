//! The JSON body extractor of the API: the body limit answers 413, anything not of the
//! expected shape 400, with a generic text (serde's own messages may quote the input, and a
//! sign-in body holds a password).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::web::error::ApiError;

pub struct ApiJson<T>(pub T);

/// The raw body, for handlers that parse it themselves (over the limit: 413 JSON).
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(ApiBytes)
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(_) => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                }
                _ => ApiError::bad_request("could not read the request body"),
            })
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let ApiBytes(bytes) = ApiBytes::from_request(request, state).await?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not a JSON object of the expected shape ({})",
                match e.classify() {
                    serde_json::error::Category::Data => "wrong or missing field",
                    _ => "invalid JSON",
                }
            ))
        })
    }
}
