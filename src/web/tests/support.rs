//! A fake gateway behind [`WebBackend`] and helpers to send requests through the router.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::BodyExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::commands::{CommandState, NewCommand};
use crate::config::edit::{
    ConfigEdit, ConfigView, EditError, EditOutcome, EditSubject, EditingStatus,
};
use crate::config::KnobClass;
use crate::config::{
    AppConfig, ApplicationConfig, CommandConfig, DeviceConfig, MetricConfig, Secret,
};
use crate::model::{MetricType, Sample, SampleOrigin, Timestamp, Value};
use crate::security::{
    CertificateAction, CertificateDesk, CertificateError, CertificateList, ClientCertificate,
    Thumbprint,
};
use crate::storage::{CommandFilter, CommandRecord};
use crate::web::assets::Assets;
use crate::web::backend::{BoxFuture, ConfigReloaded, HistoryRequest, WebBackend, WebBackendError};
use crate::web::views::{
    ActorState, ActorView, EditingView, HistoryPoints, IngestView, LiveFrame, OpcuaView, PollView,
    QualityCounts, RawPoint, StatusView, StorageView, StreamsView, UpstreamState, UpstreamView,
    Verdict,
};
use crate::web::{router, WebShared, WebState};

pub const USER: &str = "operator";
pub const PASSWORD: &str = "correct horse battery staple";
pub const ORIGIN: &str = "http://127.0.0.1:8080";

pub fn config() -> AppConfig {
    let mut config = AppConfig {
        applications: vec![ApplicationConfig {
            application_name: "Plant".into(),
            application_id: "app-1".into(),
            discover: false,
            templates: Default::default(),
            devices: vec![DeviceConfig {
                device_name: "Valve".into(),
                device_id: "valve-1".into(),
                stale_threshold_seconds: None,
                metrics: vec![
                    MetricConfig {
                        metric_name: "temperature".into(),
                        chirpstack_metric_name: "temp".into(),
                        metric_type: MetricType::Float,
                        metric_unit: Some("°C".into()),
                    },
                    MetricConfig {
                        metric_name: "open".into(),
                        chirpstack_metric_name: "open".into(),
                        metric_type: MetricType::Bool,
                        metric_unit: None,
                    },
                ],
                commands: vec![CommandConfig {
                    command_name: "level".into(),
                    command_id: 1,
                    command_confirmed: true,
                    command_port: 10,
                    command_type: MetricType::Int,
                    command_min: Some(0.0),
                    command_max: Some(100.0),
                }],
            }],
        }],
        ..AppConfig::default()
    };
    config.opcua.user_name = USER.into();
    config.opcua.user_password = Secret::new(PASSWORD);
    config.web.bind_address = "127.0.0.1".into();
    config.web.port = 8080;
    config
}

/// What the fake answers; tests change it between requests.
pub struct Fake {
    /// The live configuration; edits that go through replace it (as a reload would).
    pub config: RwLock<Arc<AppConfig>>,
    pub generation: AtomicU64,
    pub editing: Mutex<EditingStatus>,
    /// Every edit that reached the backend, in order (pre-checks in the handlers keep the
    /// others away).
    pub edits: Mutex<Vec<ConfigEdit>>,
    /// The next edits and reloads fail with this (as the reload actor would refuse them).
    pub edit_failure: Mutex<Option<EditError>>,
    pub reloads: AtomicUsize,
    pub latest: Mutex<Vec<Sample>>,
    pub failure: Mutex<Option<WebBackendError>>,
    pub enqueued: Mutex<Vec<NewCommand>>,
    pub enqueue_calls: AtomicUsize,
    pub enqueue_delay: Mutex<Duration>,
    pub history_requests: Mutex<Vec<HistoryRequest>>,
    pub command_filters: Mutex<Vec<CommandFilter>>,
    pub live: broadcast::Sender<LiveFrame>,
    /// Certificates are real files under `config.opcua.pki_dir`.
    pub certificates: CertificateDesk,
}

impl Fake {
    pub fn new(config: AppConfig) -> Arc<Self> {
        Arc::new(Self {
            config: RwLock::new(Arc::new(config)),
            generation: AtomicU64::new(1),
            editing: Mutex::new(EditingStatus {
                enabled: true,
                reason: None,
            }),
            edits: Mutex::new(Vec::new()),
            edit_failure: Mutex::new(None),
            reloads: AtomicUsize::new(0),
            latest: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            enqueued: Mutex::new(Vec::new()),
            enqueue_calls: AtomicUsize::new(0),
            enqueue_delay: Mutex::new(Duration::ZERO),
            history_requests: Mutex::new(Vec::new()),
            command_filters: Mutex::new(Vec::new()),
            live: broadcast::channel(16).0,
            certificates: CertificateDesk::default(),
        })
    }

    pub fn fail_with(&self, error: WebBackendError) {
        *self.failure.lock().unwrap() = Some(error);
    }

    fn failure(&self) -> Result<(), WebBackendError> {
        self.failure.lock().unwrap().clone().map_or(Ok(()), Err)
    }

    pub fn refuse_edits_with(&self, error: EditError) {
        *self.edit_failure.lock().unwrap() = Some(error);
    }

    pub fn edits(&self) -> Vec<ConfigEdit> {
        self.edits.lock().unwrap().clone()
    }

    fn edit_failure(&self) -> Result<(), EditError> {
        self.edit_failure
            .lock()
            .unwrap()
            .clone()
            .map_or(Ok(()), Err)
    }
}

/// What the reload actor does to the tree, minus the file: enough for the routes' answers.
fn apply_edit(config: &mut AppConfig, edit: &ConfigEdit) -> Result<(), EditError> {
    let missing = |subject, id: &str| EditError::NotFound {
        subject,
        id: id.to_string(),
    };
    let app_index = |config: &AppConfig, a: &str| {
        config
            .applications
            .iter()
            .position(|x| x.application_id == a)
            .ok_or_else(|| missing(EditSubject::Application, a))
    };
    match edit.clone() {
        ConfigEdit::CreateApplication {
            application_id,
            application_name,
        } => config.applications.push(ApplicationConfig {
            application_name,
            application_id,
            discover: false,
            templates: Default::default(),
            devices: vec![],
        }),
        ConfigEdit::UpdateApplication {
            application_id,
            application_name,
        } => {
            let i = app_index(config, &application_id)?;
            config.applications[i].application_name = application_name;
        }
        ConfigEdit::DeleteApplication { application_id } => {
            let i = app_index(config, &application_id)?;
            config.applications.remove(i);
        }
        ConfigEdit::CreateDevice {
            application_id,
            device,
        } => {
            let i = app_index(config, &application_id)?;
            config.applications[i].devices.push(DeviceConfig {
                device_name: device.device_name,
                device_id: device.device_id,
                stale_threshold_seconds: device.stale_threshold_seconds,
                metrics: device.read_metric,
                commands: device.command,
            });
        }
        ConfigEdit::UpdateDevice {
            application_id,
            device_id,
            device,
        } => {
            let i = app_index(config, &application_id)?;
            let d = config.applications[i]
                .devices
                .iter_mut()
                .find(|d| d.device_id == device_id)
                .ok_or_else(|| missing(EditSubject::Device, &device_id))?;
            d.device_name = device.device_name;
            d.stale_threshold_seconds = device.stale_threshold_seconds;
            d.metrics = device.read_metric;
        }
        ConfigEdit::DeleteDevice {
            application_id,
            device_id,
        } => {
            let i = app_index(config, &application_id)?;
            config.applications[i]
                .devices
                .retain(|d| d.device_id != device_id);
        }
        ConfigEdit::CreateCommand {
            application_id,
            device_id,
            command,
        }
        | ConfigEdit::UpdateCommand {
            application_id,
            device_id,
            command,
            ..
        } => {
            let i = app_index(config, &application_id)?;
            let d = config.applications[i]
                .devices
                .iter_mut()
                .find(|d| d.device_id == device_id)
                .ok_or_else(|| missing(EditSubject::Device, &device_id))?;
            d.commands
                .retain(|c| c.command_name != command.command_name);
            d.commands.push(command);
        }
        ConfigEdit::DeleteCommand {
            application_id,
            device_id,
            command_name,
        } => {
            let i = app_index(config, &application_id)?;
            for d in &mut config.applications[i].devices {
                if d.device_id == device_id {
                    d.commands.retain(|c| c.command_name != command_name);
                }
            }
        }
    }
    Ok(())
}

pub fn record(id: u64, command: &NewCommand) -> CommandRecord {
    CommandRecord {
        id,
        downlink: command.downlink.clone(),
        state: CommandState::Queued,
        queue_item_id: None,
        transmitted: false,
        detail: None,
        requested_by: command.requested_by.clone(),
        created: Timestamp(1_000_000),
        updated: Timestamp(2_000_000),
    }
}

pub fn status_view() -> StatusView {
    let actors = vec![ActorView {
        role: "storage".into(),
        state: ActorState::Running,
        restarts: 0,
        last_error: None,
        next_retry: None,
    }];
    let upstream = UpstreamView {
        state: UpstreamState::Connected,
        reason: None,
        last_poll: None,
    };
    StatusView {
        version: "0.1.0".into(),
        started_at: Timestamp(0).into(),
        uptime_seconds: 5,
        config_generation: 1,
        verdict: Verdict::of(&actors, &upstream),
        actors,
        upstream,
        poll: PollView {
            cycles: 1,
            failed_cycles: 0,
        },
        streams: StreamsView {
            open: 1,
            failing: 0,
            polled_only: 0,
        },
        ingest: IngestView {
            samples_per_second: 0.5,
            samples_total: 3,
        },
        quality: QualityCounts::default(),
        storage: StorageView { bytes: 4096 },
        opcua: OpcuaView { sessions: 0 },
        editing: EditingView {
            enabled: false,
            reason: Some("not built yet".into()),
        },
    }
}

impl WebBackend for Fake {
    fn config(&self) -> Arc<AppConfig> {
        Arc::clone(&self.config.read().unwrap())
    }

    fn config_view(&self) -> BoxFuture<'_, Result<ConfigView, EditError>> {
        Box::pin(async move {
            if let Some(EditError::Unavailable) = self.edit_failure.lock().unwrap().clone() {
                return Err(EditError::Unavailable);
            }
            Ok(ConfigView {
                path: "config/config.toml".into(),
                generation: self.generation.load(Ordering::SeqCst),
                editing: self.editing.lock().unwrap().clone(),
                settings: vec![],
                env_locked: vec![],
            })
        })
    }

    fn edit_config(&self, edit: ConfigEdit) -> BoxFuture<'_, Result<EditOutcome, EditError>> {
        Box::pin(async move {
            self.edits.lock().unwrap().push(edit.clone());
            self.edit_failure()?;
            let mut config = (*self.config()).clone();
            apply_edit(&mut config, &edit)?;
            *self.config.write().unwrap() = Arc::new(config);
            let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(EditOutcome {
                generation,
                class: KnobClass::Topology,
            })
        })
    }

    fn reload_config(&self) -> BoxFuture<'_, Result<ConfigReloaded, EditError>> {
        Box::pin(async move {
            self.reloads.fetch_add(1, Ordering::SeqCst);
            self.edit_failure()?;
            Ok(ConfigReloaded {
                generation: self.generation.load(Ordering::SeqCst),
                changed_knobs: vec![],
            })
        })
    }

    fn status(&self) -> BoxFuture<'_, Result<StatusView, WebBackendError>> {
        Box::pin(async move {
            self.failure()?;
            Ok(status_view())
        })
    }

    fn latest(
        &self,
        device_id: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<Sample>, WebBackendError>> {
        Box::pin(async move {
            self.failure()?;
            let mut latest = self.latest.lock().unwrap().clone();
            if let Some(device_id) = device_id {
                latest.retain(|s| *s.device_id == device_id);
            }
            Ok(latest)
        })
    }

    fn history(
        &self,
        request: HistoryRequest,
    ) -> BoxFuture<'_, Result<HistoryPoints, WebBackendError>> {
        Box::pin(async move {
            self.failure()?;
            self.history_requests.lock().unwrap().push(request.clone());
            Ok(HistoryPoints::Raw(vec![RawPoint {
                time: request.from,
                value: Value::Float(1.5),
            }]))
        })
    }

    fn commands(
        &self,
        filter: CommandFilter,
    ) -> BoxFuture<'_, Result<Vec<CommandRecord>, WebBackendError>> {
        Box::pin(async move {
            self.failure()?;
            self.command_filters.lock().unwrap().push(filter);
            let enqueued = self.enqueued.lock().unwrap();
            Ok(enqueued
                .iter()
                .enumerate()
                .rev()
                .map(|(i, c)| record(i as u64 + 1, c))
                .collect())
        })
    }

    fn enqueue_command(
        &self,
        command: NewCommand,
    ) -> BoxFuture<'_, Result<CommandRecord, WebBackendError>> {
        Box::pin(async move {
            self.enqueue_calls.fetch_add(1, Ordering::SeqCst);
            let delay = *self.enqueue_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            self.failure()?;
            let mut enqueued = self.enqueued.lock().unwrap();
            enqueued.push(command.clone());
            Ok(record(enqueued.len() as u64, &command))
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<LiveFrame> {
        self.live.subscribe()
    }

    fn certificates(&self) -> BoxFuture<'_, Result<CertificateList, CertificateError>> {
        Box::pin(self.certificates.list(self.config().opcua.pki_dir.clone()))
    }

    fn certificate_action(
        &self,
        thumbprint: Thumbprint,
        action: CertificateAction,
    ) -> BoxFuture<'_, Result<ClientCertificate, CertificateError>> {
        Box::pin(
            self.certificates
                .apply(self.config().opcua.pki_dir.clone(), thumbprint, action),
        )
    }
}

pub fn sample(metric: &str, value: Value, source_time: Timestamp) -> Sample {
    Sample {
        device_id: "valve-1".into(),
        metric: metric.into(),
        value,
        source_time,
        received_time: source_time,
        origin: SampleOrigin::Uplink,
    }
}

/// A console over a fake gateway.
pub struct App {
    pub fake: Arc<Fake>,
    pub shared: WebShared,
    pub router: Router,
    pub shutdown: CancellationToken,
    pub config: AppConfig,
}

impl App {
    pub fn new() -> Self {
        Self::with_config(config())
    }

    pub fn with_config(config: AppConfig) -> Self {
        let fake = Fake::new(config.clone());
        let shared = WebShared::new(&config);
        let shutdown = CancellationToken::new();
        let router = build(&config, &fake, &shared, &shutdown);
        Self {
            fake,
            shared,
            router,
            shutdown,
            config,
        }
    }

    /// A new router over the same shared state (what a web actor restart does).
    pub fn rebuild(&mut self) {
        self.router = build(&self.config, &self.fake, &self.shared, &self.shutdown);
    }

    pub async fn send(&self, request: Request<Body>) -> Response {
        self.router.clone().oneshot(request).await.unwrap()
    }

    /// Signs in; returns (cookie value `opcgw_session=...`, csrf token).
    pub async fn sign_in(&self) -> (String, String) {
        let response = self
            .send(post_json("/api/session", &login_body(USER, PASSWORD)))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = set_cookie(&response).expect("a session cookie");
        let token = cookie.split(';').next().unwrap().to_string();
        let body = json_body(response).await;
        (token, body["csrf_token"].as_str().unwrap().to_string())
    }
}

fn build(
    config: &AppConfig,
    fake: &Arc<Fake>,
    shared: &WebShared,
    shutdown: &CancellationToken,
) -> Router {
    let backend: Arc<dyn WebBackend> = Arc::clone(fake) as Arc<dyn WebBackend>;
    router(WebState::new(
        config,
        backend,
        shared.clone(),
        Assets::embedded(),
        shutdown.clone(),
    ))
}

pub fn peer() -> ConnectInfo<SocketAddr> {
    ConnectInfo("127.0.0.1:50000".parse().unwrap())
}

pub fn get(path: &str) -> Request<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    request.extensions_mut().insert(peer());
    request
}

pub fn with_header(mut request: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    request.headers_mut().append(name, value.parse().unwrap());
    request
}

pub fn basic(request: Request<Body>, user: &str, password: &str) -> Request<Body> {
    let encoded = STANDARD.encode(format!("{user}:{password}"));
    with_header(request, "authorization", &format!("Basic {encoded}"))
}

pub fn as_operator(request: Request<Body>) -> Request<Body> {
    basic(request, USER, PASSWORD)
}

pub fn cookie(request: Request<Body>, cookie: &str) -> Request<Body> {
    with_header(request, "cookie", cookie)
}

/// A mutating request that passes the CSRF checks (add the token for cookie sessions).
pub fn request_json(method: &str, path: &str, body: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    request.extensions_mut().insert(peer());
    request
}

pub fn post_json(path: &str, body: &str) -> Request<Body> {
    request_json("POST", path, body)
}

pub fn login_body(user: &str, password: &str) -> String {
    serde_json::json!({"user": user, "password": password}).to_string()
}

pub fn set_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string())
}

pub async fn body_text(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub async fn json_body(response: Response) -> serde_json::Value {
    let text = body_text(response).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the status and the JSON error text of a response.
pub async fn assert_error(
    response: Response,
    status: StatusCode,
    error: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status);
    let body = json_body(response).await;
    assert_eq!(body["error"], error, "{body}");
    body
}
