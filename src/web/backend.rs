//! What the web console asks of the running gateway. The library knows no actors: the web actor
//! implements [`WebBackend`] over typed messages (the way `crate::opcua` does with its
//! `GatewayBackend`), and the in-process tests implement it over plain data.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::commands::NewCommand;
use crate::config::edit::{ConfigEdit, ConfigView, EditError, EditOutcome};
use crate::config::AppConfig;
use crate::model::{Sample, Timestamp};
use crate::security::{
    CertificateAction, CertificateError, CertificateList, ClientCertificate, Thumbprint,
};
use crate::storage::{CommandFilter, CommandRecord};
use crate::web::views::{HistoryPoints, LiveFrame, StatusView};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One history request, already checked by the handler (`from < to`, `max_points` in range,
/// the metric configured).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRequest {
    pub device_id: String,
    pub metric: String,
    /// Inclusive.
    pub from: Timestamp,
    /// Exclusive.
    pub to: Timestamp,
    /// The answer has at most this many points: raw rows when they fit, otherwise one
    /// min/max/avg bucket per `(to - from) / max_points` (Bool and String metrics: the last
    /// `max_points` raw rows of the window).
    pub max_points: usize,
}

/// A reload asked from the console that went through (the configuration generation now live,
/// and the dotted keys of what changed; empty when the file says what is already live).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigReloaded {
    pub generation: u64,
    pub changed_knobs: Vec<String>,
}

/// Why the gateway could not answer. [`crate::web::error`] holds the one table that turns each
/// into an HTTP status; the detail of `Internal` is logged, never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebBackendError {
    /// Storage is restarting (it comes back by itself).
    #[error("storage unavailable")]
    Unavailable,
    /// The actor behind the request did not answer in time.
    #[error("storage did not answer in time")]
    Timeout,
    /// The device already has as many unfinished commands as allowed.
    #[error("the device's command queue is full: {0}")]
    CommandQueueFull(String),
    /// Anything else (a storage error, a lost actor); the text is for the log only.
    #[error("{0}")]
    Internal(String),
}

/// The running gateway as the console sees it.
pub trait WebBackend: Send + Sync + 'static {
    /// The configuration in force (a reload swaps it); the device list, units, commands and
    /// staleness thresholds come from it.
    fn config(&self) -> Arc<AppConfig>;
    /// Actors, upstream, counters: everything of `GET /api/status`.
    fn status(&self) -> BoxFuture<'_, Result<StatusView, WebBackendError>>;
    /// The latest sample of every metric that has one.
    fn latest(
        &self,
        device_id: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<Sample>, WebBackendError>>;
    /// History of one metric, downsampled in storage when the raw rows do not fit.
    fn history(
        &self,
        request: HistoryRequest,
    ) -> BoxFuture<'_, Result<HistoryPoints, WebBackendError>>;
    /// Commands, newest first.
    fn commands(
        &self,
        filter: CommandFilter,
    ) -> BoxFuture<'_, Result<Vec<CommandRecord>, WebBackendError>>;
    /// Queues a command durably; resolves once it is stored.
    fn enqueue_command(
        &self,
        command: NewCommand,
    ) -> BoxFuture<'_, Result<CommandRecord, WebBackendError>>;
    // --- Configuration editing (the reload actor owns the file; every call is one message) ---

    /// Where the configuration comes from, whether it may be edited, every knob's source.
    fn config_view(&self) -> BoxFuture<'_, Result<ConfigView, EditError>>;
    /// Applies one edit to the file and makes it live; resolves once the reload applied it
    /// (and [`WebBackend::config`] shows it).
    fn edit_config(&self, edit: ConfigEdit) -> BoxFuture<'_, Result<EditOutcome, EditError>>;
    /// Re-reads the file (trigger `web`), as SIGHUP does.
    fn reload_config(&self) -> BoxFuture<'_, Result<ConfigReloaded, EditError>>;

    /// Live changes (values, qualities, upstream, commands, actor health) for `GET /api/events`.
    fn subscribe(&self) -> broadcast::Receiver<LiveFrame>;

    // ---- Client certificates: `trusted/` and `rejected/` of `[opcua].pki_dir` in force. ----
    // The OPC UA server reads those directories at every CreateSession, so a change here
    // applies to the next connection; nothing in the server needs telling.

    /// Both directories, bounded (`crate::security::client_certificates`).
    fn certificates(&self) -> BoxFuture<'_, Result<CertificateList, CertificateError>>;
    /// Trusts, rejects or deletes one certificate: the certificate as it now is (as it was,
    /// for a delete). Actions are serialised.
    fn certificate_action(
        &self,
        thumbprint: Thumbprint,
        action: CertificateAction,
    ) -> BoxFuture<'_, Result<ClientCertificate, CertificateError>>;
}
