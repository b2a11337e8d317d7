//! What can go wrong when the OPC UA server asks the rest of the gateway, and the one table that
//! turns it into the status code a client sees — for HistoryRead and command writes alike.

use ua::types::StatusCode;

/// Why the rest of the gateway could not answer the OPC UA server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// Storage is restarting or did not answer in time.
    Unavailable(String),
    /// The metric has no stored value yet.
    UnknownSeries,
    /// The request was refused (for example an invalid query).
    Rejected(String),
    /// The device already has as many unfinished commands as allowed.
    CommandQueueFull(String),
}

impl BackendError {
    /// The status code a client gets for this failure, whatever service it called.
    pub fn status_code(&self) -> StatusCode {
        match self {
            // Storage restarts on its own: the same request works again shortly.
            Self::Unavailable(_) => StatusCode::BadResourceUnavailable,
            // A full device queue is busy, not broken: the write works again once the
            // device's earlier commands complete.
            Self::CommandQueueFull(_) => StatusCode::BadResourceUnavailable,
            // Nothing was ever stored for it. HistoryRead answers this case with an empty,
            // Good result before asking for a status (docs/opcua.md, HistoryRead).
            Self::UnknownSeries => StatusCode::BadNoData,
            // Storage refused what the request asked for.
            Self::Rejected(_) => StatusCode::BadInvalidArgument,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_failure_has_one_status_code() {
        let table = [
            (
                BackendError::Unavailable("restarting".into()),
                StatusCode::BadResourceUnavailable,
            ),
            (
                BackendError::CommandQueueFull("100 unfinished".into()),
                StatusCode::BadResourceUnavailable,
            ),
            (BackendError::UnknownSeries, StatusCode::BadNoData),
            (
                BackendError::Rejected("limit 0".into()),
                StatusCode::BadInvalidArgument,
            ),
        ];
        for (error, status) in table {
            assert_eq!(error.status_code(), status, "{error:?}");
        }
    }
}
