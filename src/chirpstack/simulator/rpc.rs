//! What every gRPC service of the simulator shares: request validation, pagination, fixed
//! timestamps, and the macro that writes the methods the simulator does not simulate.

use std::sync::Arc;

use tonic::{Request, Status};

use super::faults::CallKind;
use super::state::SimState;
use crate::model::Timestamp;

/// Largest `limit` a List call honours; larger pages are clamped.
pub(crate) const MAX_PAGE_SIZE: u32 = 1_000;
/// Longest `search` text considered.
const MAX_SEARCH_CHARS: usize = 100;

/// `created_at` / `updated_at` of every simulated object: fixed, so answers are deterministic.
pub(crate) fn created_at() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: 1_704_067_200, // 2024-01-01T00:00:00Z
        nanos: 0,
    }
}

/// A UUID request field, as ChirpStack parses it before anything else (malformed =>
/// InvalidArgument).
pub(crate) fn require_uuid<'a>(field: &str, text: &'a str) -> Result<&'a str, Status> {
    let valid = text.len() == 36
        && text.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && text.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit());
    if valid {
        Ok(text)
    } else {
        Err(Status::invalid_argument(format!("{field} must be a UUID")))
    }
}

/// A required time of a metrics request.
pub(crate) fn require_time(
    field: &str,
    ts: Option<&prost_types::Timestamp>,
) -> Result<Timestamp, Status> {
    ts.and_then(Timestamp::from_prost)
        .ok_or_else(|| Status::invalid_argument(format!("{field} must be a valid timestamp")))
}

/// Whether `name` matches a List `search` (ChirpStack: case-insensitive substring).
pub(crate) fn matches_search(name: &str, search: &str) -> bool {
    if search.is_empty() {
        return true;
    }
    let search: String = search
        .chars()
        .take(MAX_SEARCH_CHARS)
        .collect::<String>()
        .to_lowercase();
    name.to_lowercase().contains(&search)
}

/// The window `[offset, offset + limit)` of `total` items; `limit = 0` selects nothing (the
/// caller only wants `total_count`, as with ChirpStack).
pub(crate) fn page(total: usize, limit: u32, offset: u32) -> std::ops::Range<usize> {
    let limit = limit.min(MAX_PAGE_SIZE) as usize;
    let start = (offset as usize).min(total);
    start..start.saturating_add(limit).min(total)
}

/// Clamps a count to the `u32` of a `total_count` field.
pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The state a service works on.
#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) state: Arc<SimState>,
}

impl Service {
    /// Passes a unary call through the front door (see `faults.rs`).
    pub(crate) async fn admit_unary<T>(
        &self,
        method: &'static str,
        request: &Request<T>,
    ) -> Result<(), Status> {
        let metadata = request.metadata();
        self.state
            .gate
            .admit(method, metadata, CallKind::Unary)
            .await
    }
}

/// Writes, inside a `#[tonic::async_trait]` impl, the methods the simulator does not simulate:
/// each counts the call, passes the front door (latency, auth) and answers `UNIMPLEMENTED`, as
/// a server of another version would. The signatures are the ones `async_trait` gives the
/// trait, because the attribute does not look inside macro invocations.
macro_rules! not_simulated {
    ($service:literal: $($rpc:ident => $name:literal ($req:ty) -> $resp:ty;)*) => {
        $(
            fn $rpc<'life0, 'async_trait>(
                &'life0 self,
                request: tonic::Request<$req>,
            ) -> ::std::pin::Pin<
                Box<
                    dyn ::std::future::Future<
                            Output = Result<tonic::Response<$resp>, tonic::Status>,
                        > + Send
                        + 'async_trait,
                >,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    self.admit_unary(concat!($service, ".", $name), &request).await?;
                    Err(tonic::Status::unimplemented(concat!(
                        $service, ".", $name, " is not simulated"
                    )))
                })
            }
        )*
    };
}
pub(crate) use not_simulated;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_clamped_windows() {
        assert_eq!(page(10, 3, 0), 0..3);
        assert_eq!(page(10, 3, 9), 9..10);
        assert_eq!(page(10, 3, 50), 10..10);
        assert_eq!(page(10, 0, 0), 0..0);
        assert_eq!(page(5_000, u32::MAX, u32::MAX), 5_000..5_000);
        assert_eq!(page(5_000, u32::MAX, 0), 0..1_000);
    }

    #[test]
    fn uuids_and_searches_are_checked_like_chirpstack() {
        assert!(require_uuid("id", "52f14cd4-c6f1-4fbd-8f87-4025e1d49242").is_ok());
        for bad in [
            "",
            "52f14cd4c6f14fbd8f874025e1d49242",
            "52f14cd4-c6f1-4fbd-8f87-4025e1d4924g",
            "é",
        ] {
            assert_eq!(
                require_uuid("id", bad).unwrap_err().code(),
                tonic::Code::InvalidArgument
            );
        }
        assert!(matches_search("Device 1-2", "device 1"));
        assert!(!matches_search("Device 1-2", "2-1"));
    }
}
