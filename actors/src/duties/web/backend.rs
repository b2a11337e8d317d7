//! The running gateway as the console sees it: `opcgw::web::WebBackend` over typed messages to
//! the storage, poller and OPC UA actors and the supervisor, each with a timeout. What the web
//! actor keeps current (configuration, peers, upstream, quality counts) it shares through
//! [`GatewayView`], so a request never waits for the actor's mailbox.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use opcgw::chirpstack::upstream::UpstreamStatus;
use opcgw::commands::NewCommand;
use opcgw::config::edit::{ConfigEdit, ConfigView, EditError, EditOutcome, FieldProblem};
use opcgw::config::AppConfig;
use opcgw::model::{Sample, Timestamp};
use opcgw::security::{
    CertificateAction, CertificateError, CertificateList, ClientCertificate, Thumbprint,
};
use opcgw::storage::{
    CommandFilter, CommandRecord, DownsampleQuery, Downsampled, StorageErrorKind,
};
use opcgw::web::views::{
    BucketPoint, CommandView, EditingView, HistoryPoints, LiveEvent, LiveFrame, OpcuaView,
    PollView, QualityCounts, RawPoint, StatusView, StorageView, StreamsView, Verdict,
};
use opcgw::web::{BoxFuture, ConfigReloaded, HistoryRequest, WebBackend, WebBackendError};
use ractor::rpc::CallResult;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

use super::live::{actor_view, upstream_view};
use super::WebProcess;
use crate::tree::gateway::TreeHandle;
use crate::tree::messages::{
    OpcUaMsg, Peers, PollerMsg, ReloadFailure, ReloadMsg, ReloadOutcome, ReloadTrigger,
    StorageFailure, CALL_TIMEOUT,
};
use crate::tree::storage_client::StorageClient;

/// What the web actor keeps current for the backend.
#[derive(Clone)]
pub struct GatewayView {
    pub config: Arc<AppConfig>,
    pub generation: u64,
    pub peers: Peers,
    /// The last upstream status the poller fed (used while the poller does not answer).
    pub upstream: Option<Arc<UpstreamStatus>>,
    pub quality: QualityCounts,
}

pub type SharedView = Arc<RwLock<GatewayView>>;

/// How long an edit or a reload from the console may take: an edit reads, validates, writes
/// and fsyncs the file, then applies it as a reload; past this the console answers 503
/// `unavailable` (the edit may still complete: the page refetches on the `config` event).
pub const EDIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer waits for this actor's own view to reach the generation an edit made
/// live (the supervisor broadcasts it to every duty at once), so a read right after the answer
/// sees the edit.
const VIEW_CATCH_UP: Duration = Duration::from_secs(2);

pub struct GatewayBackend {
    pub view: SharedView,
    /// The generation of [`GatewayView::config`], as the web actor applies updates.
    pub generation: watch::Receiver<u64>,
    pub tree: TreeHandle,
    pub events: broadcast::Sender<LiveFrame>,
    pub process: Arc<WebProcess>,
}

impl GatewayBackend {
    fn view(&self) -> GatewayView {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn storage(&self) -> StorageClient {
        StorageClient::from_peers(&self.view().peers)
    }

    /// One call to the reload actor (the configuration's owner); `Unavailable` when it is not
    /// running or does not answer within `timeout`.
    async fn ask_reload<T: Send + 'static>(
        &self,
        timeout: Duration,
        message: impl FnOnce(ractor::RpcReplyPort<T>) -> ReloadMsg,
    ) -> Result<T, EditError> {
        let Some(reload) = self.view().peers.reload().map(|p| p.actor().clone()) else {
            return Err(EditError::Unavailable);
        };
        match reload.call(message, Some(timeout)).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            Ok(CallResult::Timeout) => {
                warn!(
                    event = "web_config_owner_timeout",
                    timeout_ms = timeout.as_millis() as u64,
                    "the reload actor did not answer the console in time"
                );
                Err(EditError::Unavailable)
            }
            Ok(CallResult::SenderError) | Err(_) => Err(EditError::Unavailable),
        }
    }

    /// Waits (bounded) until this actor's view shows `generation`.
    async fn catch_up(&self, generation: u64) {
        let mut seen = self.generation.clone();
        let reached = tokio::time::timeout(VIEW_CATCH_UP, seen.wait_for(|g| *g >= generation));
        if !matches!(reached.await, Ok(Ok(_))) {
            debug!(
                event = "web_config_view_behind",
                generation, "the console's view had not caught up with an applied edit"
            );
        }
    }
}

/// A reload's outcome as the console answers it.
pub fn reload_answer(outcome: ReloadOutcome) -> Result<ConfigReloaded, EditError> {
    match outcome {
        ReloadOutcome::Succeeded {
            generation,
            changed_knobs,
            ..
        } => Ok(ConfigReloaded {
            generation,
            changed_knobs,
        }),
        ReloadOutcome::Failed {
            reason: ReloadFailure::Validation,
            error,
            ..
        } => Err(EditError::Validation {
            problems: problems_of(&error),
        }),
        ReloadOutcome::Failed {
            reason: ReloadFailure::RestartRequired,
            changed_knob,
            ..
        } => Err(EditError::RestartRequired {
            knob: changed_knob.unwrap_or_default(),
        }),
        ReloadOutcome::Failed {
            reason: ReloadFailure::Io,
            error,
            ..
        } => Err(EditError::Io(error)),
    }
}

/// The problems of a refused load, from its text (`key: message; key: message`, the way
/// `ConfigProblem`s are joined): a part without a key is about the file as a whole.
fn problems_of(text: &str) -> Vec<FieldProblem> {
    text.split("; ")
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once(": ") {
            Some((key, message)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                FieldProblem {
                    field: key.to_string(),
                    message: message.to_string(),
                }
            }
            _ => FieldProblem {
                field: String::new(),
                message: part.to_string(),
            },
        })
        .collect()
}

/// The one mapping of storage failures to what the console answers (503, or 500 with the
/// detail in the log).
pub fn web_error(failure: StorageFailure) -> WebBackendError {
    match failure {
        StorageFailure::Unavailable(_) => WebBackendError::Unavailable,
        StorageFailure::Store {
            kind: StorageErrorKind::CommandQueueFull,
            message,
        } => WebBackendError::CommandQueueFull(message),
        StorageFailure::Store { message, .. } => WebBackendError::Internal(message),
    }
}

pub fn history_points(answer: Downsampled) -> HistoryPoints {
    match answer {
        Downsampled::Raw(rows) => HistoryPoints::Raw(
            rows.into_iter()
                .map(|row| RawPoint {
                    time: row.time,
                    value: row.value,
                })
                .collect(),
        ),
        Downsampled::Buckets(buckets) => HistoryPoints::Buckets(
            buckets
                .into_iter()
                .map(|b| BucketPoint {
                    start: b.start,
                    min: b.min,
                    max: b.max,
                    avg: b.avg,
                    n: b.count,
                })
                .collect(),
        ),
    }
}

impl WebBackend for GatewayBackend {
    fn config(&self) -> Arc<AppConfig> {
        self.view().config
    }

    fn status(&self) -> BoxFuture<'_, Result<StatusView, WebBackendError>> {
        Box::pin(async move {
            let view = self.view();
            let storage = StorageClient::from_peers(&view.peers);
            let upstream = async {
                let poller = view.peers.poller()?.actor().clone();
                poller
                    .call(PollerMsg::Upstream, Some(CALL_TIMEOUT))
                    .await
                    .ok()?
                    .success_or(())
                    .ok()
            };
            let counters = async {
                let poller = view.peers.poller()?.actor().clone();
                poller
                    .call(PollerMsg::Counters, Some(CALL_TIMEOUT))
                    .await
                    .ok()?
                    .success_or(())
                    .ok()
            };
            let sessions = async {
                let opcua = view.peers.opcua()?.actor().clone();
                opcua
                    .call(OpcUaMsg::Sessions, Some(CALL_TIMEOUT))
                    .await
                    .ok()?
                    .success_or(())
                    .ok()
            };
            let editing = async {
                match self
                    .ask_reload(CALL_TIMEOUT, |reply| ReloadMsg::Describe { reply })
                    .await
                {
                    Ok(view) => EditingView {
                        enabled: view.editing.enabled,
                        reason: view.editing.reason,
                    },
                    Err(error) => EditingView {
                        enabled: false,
                        reason: Some(error.to_string()),
                    },
                }
            };
            let (tree, upstream, counters, sessions, counts, editing) = tokio::join!(
                self.tree.status(),
                upstream,
                counters,
                sessions,
                storage.counts(),
                editing
            );
            let Some(tree) = tree else {
                return Err(WebBackendError::Internal(
                    "the supervisor did not answer a status request".into(),
                ));
            };
            let now = Timestamp::now();
            let actors: Vec<_> = tree.children.iter().map(|c| actor_view(c, now)).collect();
            let upstream_status = upstream.or_else(|| view.upstream.as_deref().cloned());
            let upstream = upstream_view(upstream_status.as_ref());
            let storage_bytes = match counts {
                Ok(counts) => counts.file_bytes,
                Err(error) => {
                    // Storage restarting shows in the actor list; the size is unknown meanwhile.
                    debug!(event = "web_status_storage_counts_unavailable", error = %error);
                    0
                }
            };
            let streams = upstream_status.as_ref().map_or(
                StreamsView {
                    open: 0,
                    failing: 0,
                    polled_only: 0,
                },
                |s| StreamsView {
                    open: s.streams_open as u64,
                    failing: s.streams_wanted.saturating_sub(s.streams_open) as u64,
                    polled_only: s.devices_polled_only as u64,
                },
            );
            Ok(StatusView {
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: self.process.started_at.into(),
                uptime_seconds: self.process.started_at.age_at(now).as_secs(),
                config_generation: view.generation,
                verdict: Verdict::of(&actors, &upstream),
                actors,
                upstream,
                poll: PollView {
                    cycles: counters.map_or(0, |c| c.cycles),
                    failed_cycles: upstream_status
                        .as_ref()
                        .map_or(0, |s| u64::from(s.consecutive_failures)),
                },
                streams,
                ingest: self.process.ingest.view(Instant::now()),
                quality: view.quality,
                storage: StorageView {
                    bytes: storage_bytes,
                },
                opcua: OpcuaView {
                    sessions: sessions.map_or(0, u64::from),
                },
                editing,
            })
        })
    }

    fn latest(
        &self,
        device_id: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<Sample>, WebBackendError>> {
        let storage = self.storage();
        Box::pin(async move { storage.latest(device_id).await.map_err(web_error) })
    }

    fn history(
        &self,
        request: HistoryRequest,
    ) -> BoxFuture<'_, Result<HistoryPoints, WebBackendError>> {
        let storage = self.storage();
        Box::pin(async move {
            let query = DownsampleQuery {
                device_id: request.device_id,
                metric: request.metric,
                from: request.from,
                to: request.to,
                max_points: request.max_points,
            };
            storage
                .downsample(query)
                .await
                .map(history_points)
                .map_err(web_error)
        })
    }

    fn commands(
        &self,
        filter: CommandFilter,
    ) -> BoxFuture<'_, Result<Vec<CommandRecord>, WebBackendError>> {
        let storage = self.storage();
        Box::pin(async move { storage.commands(filter).await.map_err(web_error) })
    }

    fn enqueue_command(
        &self,
        command: NewCommand,
    ) -> BoxFuture<'_, Result<CommandRecord, WebBackendError>> {
        let storage = self.storage();
        Box::pin(async move {
            let record = storage.enqueue_command(command).await.map_err(web_error)?;
            // Open pages see the new command at once; its next states come from the poller.
            let _ = self
                .events
                .send(LiveEvent::Command(CommandView::from(&record)).into());
            Ok(record)
        })
    }

    fn config_view(&self) -> BoxFuture<'_, Result<ConfigView, EditError>> {
        Box::pin(self.ask_reload(CALL_TIMEOUT, |reply| ReloadMsg::Describe { reply }))
    }

    fn edit_config(&self, edit: ConfigEdit) -> BoxFuture<'_, Result<EditOutcome, EditError>> {
        Box::pin(async move {
            let outcome = self
                .ask_reload(EDIT_TIMEOUT, |reply| ReloadMsg::Edit { edit, reply })
                .await??;
            self.catch_up(outcome.generation).await;
            Ok(outcome)
        })
    }

    fn reload_config(&self) -> BoxFuture<'_, Result<ConfigReloaded, EditError>> {
        Box::pin(async move {
            let outcome = self
                .ask_reload(EDIT_TIMEOUT, |reply| ReloadMsg::Reload {
                    trigger: ReloadTrigger::Web,
                    reply: Some(reply),
                })
                .await?;
            let reloaded = reload_answer(outcome)?;
            self.catch_up(reloaded.generation).await;
            Ok(reloaded)
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<LiveFrame> {
        self.events.subscribe()
    }

    // Client certificates: file work on `[opcua].pki_dir` of the live configuration. The
    // OPC UA server keeps no trust list in memory (async-opcua's store reads trusted/ and
    // rejected/ at every CreateSession), so the OPC UA actor need not be involved.
    fn certificates(&self) -> BoxFuture<'_, Result<CertificateList, CertificateError>> {
        let pki_dir = self.view().config.opcua.pki_dir.clone();
        Box::pin(self.process.certificates.list(pki_dir))
    }

    fn certificate_action(
        &self,
        thumbprint: Thumbprint,
        action: CertificateAction,
    ) -> BoxFuture<'_, Result<ClientCertificate, CertificateError>> {
        let pki_dir = self.view().config.opcua.pki_dir.clone();
        Box::pin(self.process.certificates.apply(pki_dir, thumbprint, action))
    }
}

#[cfg(test)]
mod tests {
    use opcgw::model::{SampleOrigin, Value};
    use opcgw::storage::{Bucket, HistoryRow};

    use super::*;

    #[test]
    fn storage_failures_map_to_what_the_console_answers() {
        assert_eq!(
            web_error(StorageFailure::Unavailable("restarting".into())),
            WebBackendError::Unavailable
        );
        assert_eq!(
            web_error(StorageFailure::Store {
                kind: StorageErrorKind::CommandQueueFull,
                message: "100 unfinished".into()
            }),
            WebBackendError::CommandQueueFull("100 unfinished".into())
        );
        assert_eq!(
            web_error(StorageFailure::Store {
                kind: StorageErrorKind::Io,
                message: "disk full".into()
            }),
            WebBackendError::Internal("disk full".into())
        );
    }

    #[test]
    fn reload_outcomes_map_to_what_the_console_answers() {
        let succeeded = ReloadOutcome::Succeeded {
            changed_section_count: 1,
            includes_topology_change: false,
            duration_ms: 3,
            changed_knobs: vec!["logging.level".into()],
            generation: 4,
        };
        assert_eq!(
            reload_answer(succeeded),
            Ok(ConfigReloaded {
                generation: 4,
                changed_knobs: vec!["logging.level".into()]
            })
        );
        let invalid = ReloadOutcome::Failed {
            reason: ReloadFailure::Validation,
            changed_knob: None,
            error: "chirpstack.polling_frequency: must be 1-3600; the file is empty".into(),
        };
        assert_eq!(
            reload_answer(invalid),
            Err(EditError::Validation {
                problems: vec![
                    FieldProblem {
                        field: "chirpstack.polling_frequency".into(),
                        message: "must be 1-3600".into()
                    },
                    FieldProblem {
                        field: String::new(),
                        message: "the file is empty".into()
                    },
                ]
            })
        );
        let restart = ReloadOutcome::Failed {
            reason: ReloadFailure::RestartRequired,
            changed_knob: Some("web.port".into()),
            error: "web.port cannot change".into(),
        };
        assert_eq!(
            reload_answer(restart),
            Err(EditError::RestartRequired {
                knob: "web.port".into()
            })
        );
        let io = ReloadOutcome::Failed {
            reason: ReloadFailure::Io,
            changed_knob: None,
            error: "cannot read config.toml".into(),
        };
        assert_eq!(
            reload_answer(io),
            Err(EditError::Io("cannot read config.toml".into()))
        );
    }

    #[test]
    fn downsampled_answers_keep_their_rows_and_bucket_figures() {
        let t = Timestamp::from_micros(1_000_000);
        let raw = history_points(Downsampled::Raw(vec![HistoryRow {
            time: t,
            value: Value::Bool(true),
            origin: SampleOrigin::Uplink,
        }]));
        assert_eq!(
            raw,
            HistoryPoints::Raw(vec![RawPoint {
                time: t,
                value: Value::Bool(true)
            }])
        );
        let buckets = history_points(Downsampled::Buckets(vec![Bucket {
            start: t,
            end: Timestamp::from_micros(2_000_000),
            min: 1.0,
            max: 3.0,
            avg: 2.0,
            count: 7,
            first_time: t,
            first: 1.0,
            last_time: t,
            last: 3.0,
        }]));
        assert_eq!(
            buckets,
            HistoryPoints::Buckets(vec![BucketPoint {
                start: t,
                min: 1.0,
                max: 3.0,
                avg: 2.0,
                n: 7
            }])
        );
    }
}
