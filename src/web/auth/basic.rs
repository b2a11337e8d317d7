//! Parsing an `Authorization: Basic` header (RFC 7617), with 004's refusal reasons.

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicRejection {
    Missing,
    MalformedScheme,
    MalformedBase64,
    MissingColon,
}

impl BasicRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MalformedScheme => "malformed_scheme",
            Self::MalformedBase64 => "malformed_base64",
            Self::MissingColon => "missing_colon",
        }
    }
}

/// The user name and password of the request's Basic credentials.
pub fn parse_basic(headers: &HeaderMap) -> Result<(String, String), BasicRejection> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(BasicRejection::Missing)?;
    let value = value
        .to_str()
        .map_err(|_| BasicRejection::MalformedScheme)?;
    let (scheme, encoded) = value
        .split_once(' ')
        .ok_or(BasicRejection::MalformedScheme)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicRejection::MalformedScheme);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| BasicRejection::MalformedBase64)?;
    let decoded = String::from_utf8(decoded).map_err(|_| BasicRejection::MalformedBase64)?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or(BasicRejection::MissingColon)?;
    Ok((user.to_string(), password.to_string()))
}
