//! The web operator console as a library: router, sign-in and sessions, CSRF defence, security
//! headers, the JSON API of docs/web.md, Server-Sent Events, the static pages and the HTTP accept
//! loop. It knows no actors: it reaches the running gateway through [`WebBackend`], which the web
//! actor implements over typed messages.
//!
//! What must outlive one router (sessions, the audit ring, the login throttle, idempotency keys)
//! lives in [`WebShared`], which the actor creates once and hands to every [`router`] it builds.

pub mod assets;
pub mod auth;
pub mod backend;
pub mod csrf;
pub mod error;
mod handlers;
pub mod headers;
pub mod idempotency;
mod json;
pub mod server;
pub mod views;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::get;
use axum::{middleware, Router};
use tokio_util::sync::CancellationToken;

pub use backend::{BoxFuture, ConfigReloaded, HistoryRequest, WebBackend, WebBackendError};

use crate::config::AppConfig;
use crate::security::{CredentialVerifier, LoginThrottle};
use assets::Assets;
use auth::audit::AuditRing;
use auth::sessions::SessionTable;
use idempotency::IdempotencyKeys;

/// How often an event stream sends a `: ping` comment (and checks that its session is alive).
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// State that survives a rebuild of the router (a restart of the web actor).
#[derive(Debug, Clone)]
pub struct WebShared {
    pub sessions: Arc<SessionTable>,
    pub audit: Arc<AuditRing>,
    pub throttle: Arc<LoginThrottle>,
    pub idempotency: Arc<IdempotencyKeys>,
}

impl WebShared {
    pub fn new(config: &AppConfig) -> Self {
        let audit = Arc::new(AuditRing::default());
        let web = &config.web;
        Self {
            sessions: Arc::new(SessionTable::new(
                Duration::from_secs(web.session_idle_minutes.saturating_mul(60)),
                Duration::from_secs(web.session_max_hours.saturating_mul(3600)),
                Arc::clone(&audit),
            )),
            audit,
            throttle: Arc::new(LoginThrottle::default()),
            idempotency: Arc::new(IdempotencyKeys::default()),
        }
    }
}

/// The console's settings, from `[web]` and the `[opcua]` user.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub auth_realm: String,
    /// Normalised (see [`csrf::normalize_origin`]).
    pub allowed_origins: Vec<String>,
    pub secure_cookies: bool,
    pub max_body_bytes: usize,
    pub heartbeat: Duration,
}

impl WebSettings {
    pub fn from_config(config: &AppConfig) -> Self {
        let web = &config.web;
        let configured = if web.allowed_origins.is_empty() {
            vec![default_origin(&web.bind_address, web.port)]
        } else {
            web.allowed_origins.clone()
        };
        Self {
            auth_realm: web.auth_realm.clone(),
            allowed_origins: configured
                .iter()
                .filter_map(|o| csrf::normalize_origin(o))
                .collect(),
            secure_cookies: web.secure_cookies,
            max_body_bytes: web.max_body_bytes,
            heartbeat: HEARTBEAT,
        }
    }
}

/// `http://<bind_address>:<port>` (IPv6 in brackets).
pub fn default_origin(bind_address: &str, port: u16) -> String {
    match bind_address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("http://[{v6}]:{port}"),
        _ => format!("http://{bind_address}:{port}"),
    }
}

struct Inner {
    backend: Arc<dyn WebBackend>,
    settings: WebSettings,
    credentials: CredentialVerifier,
    shared: WebShared,
    shutdown: CancellationToken,
    assets: Assets,
    challenge: HeaderValue,
}

/// What every handler and middleware shares (cheap to clone).
#[derive(Clone)]
pub struct WebState(Arc<Inner>);

impl WebState {
    /// `shutdown` ends every open event stream when cancelled (so a graceful stop is bounded).
    pub fn new(
        config: &AppConfig,
        backend: Arc<dyn WebBackend>,
        shared: WebShared,
        assets: Assets,
        shutdown: CancellationToken,
    ) -> Self {
        Self::with_settings(
            WebSettings::from_config(config),
            config,
            backend,
            shared,
            assets,
            shutdown,
        )
    }

    pub fn with_settings(
        settings: WebSettings,
        config: &AppConfig,
        backend: Arc<dyn WebBackend>,
        shared: WebShared,
        assets: Assets,
        shutdown: CancellationToken,
    ) -> Self {
        Self(Arc::new(Inner {
            backend,
            credentials: CredentialVerifier::new(
                &config.opcua.user_name,
                config.opcua.user_password.expose(),
            ),
            challenge: auth::challenge_for(&settings.auth_realm),
            settings,
            shared,
            shutdown,
            assets,
        }))
    }

    pub fn backend(&self) -> &dyn WebBackend {
        self.0.backend.as_ref()
    }
    pub fn settings(&self) -> &WebSettings {
        &self.0.settings
    }
    pub fn sessions(&self) -> &SessionTable {
        &self.0.shared.sessions
    }
    pub fn audit(&self) -> &AuditRing {
        &self.0.shared.audit
    }
    pub fn throttle(&self) -> &LoginThrottle {
        &self.0.shared.throttle
    }
    pub fn idempotency(&self) -> &IdempotencyKeys {
        &self.0.shared.idempotency
    }
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }
    pub fn assets(&self) -> &Assets {
        &self.0.assets
    }
    pub fn challenge(&self) -> HeaderValue {
        self.0.challenge.clone()
    }

    /// Checks a user name and password; on failure the reason for the audit log.
    pub fn check_credentials(&self, user: &str, password: &str) -> Result<(), &'static str> {
        self.0
            .credentials
            .verify(user, password)
            .map_err(|r| r.as_str())
    }

    /// The Basic credentials of a request: the user, or (sanitisable user, reason).
    fn check_basic(&self, headers: &HeaderMap) -> Result<String, (String, &'static str)> {
        let (user, password) =
            auth::parse_basic(headers).map_err(|r| (String::new(), r.as_str()))?;
        self.check_credentials(&user, &password)
            .map_err(|reason| (user.clone(), reason))?;
        Ok(user)
    }

    /// Holds a refused answer back as long as the source's recent failures say.
    async fn slow_down(&self, source: Option<IpAddr>) {
        let delay = self
            .throttle()
            .failed(source, tokio::time::Instant::now().into_std());
        tokio::time::sleep(delay).await;
    }
}

/// The configuration API (docs/web.md, "Configuration").
fn config_routes() -> Router<WebState> {
    use axum::routing::post;
    use handlers::config::{self as c, mutations as m};
    Router::new()
        .route("/api/config", get(c::view))
        .route("/api/config/reload", post(m::reload))
        .route(
            "/api/applications",
            get(c::applications).post(m::create_application),
        )
        .route(
            "/api/applications/{application_id}",
            get(c::application)
                .put(m::update_application)
                .delete(m::delete_application),
        )
        .route(
            "/api/applications/{application_id}/devices",
            get(c::devices).post(m::create_device),
        )
        .route(
            "/api/applications/{application_id}/devices/{device_id}",
            get(c::device)
                .put(m::update_device)
                .delete(m::delete_device),
        )
        .route(
            "/api/applications/{application_id}/devices/{device_id}/commands",
            get(c::commands).post(m::create_command),
        )
        .route(
            "/api/applications/{application_id}/devices/{device_id}/commands/{command_name}",
            get(c::command)
                .put(m::update_command)
                .delete(m::delete_command),
        )
}

/// The whole console: API routes, pages, and the layers every request passes (outermost first:
/// security headers, body limit, authentication, CSRF).
pub fn router(state: WebState) -> Router {
    use axum::routing::post;
    let max_body = state.settings().max_body_bytes;
    Router::new()
        .route("/api/health", get(handlers::read::health))
        .route("/api/status", get(handlers::read::status))
        .route(
            "/api/session",
            post(handlers::session::sign_in)
                .get(handlers::session::current)
                .delete(handlers::session::sign_out),
        )
        .route("/api/devices", get(handlers::read::devices))
        .route("/api/devices/{device_id}", get(handlers::read::device))
        .route(
            "/api/devices/{device_id}/metrics/{metric}/history",
            get(handlers::read::history),
        )
        .route(
            "/api/devices/{device_id}/commands/{command}",
            post(handlers::commands::send),
        )
        .route("/api/commands", get(handlers::commands::list))
        .route("/api/events", get(handlers::events::stream))
        .route("/api/audit", get(handlers::read::audit))
        // Client certificates (pki/trusted, pki/rejected).
        .route("/api/certificates", get(handlers::certificates::list))
        .route(
            "/api/certificates/{thumbprint}",
            axum::routing::delete(handlers::certificates::delete),
        )
        .route(
            "/api/certificates/{thumbprint}/trust",
            post(handlers::certificates::trust),
        )
        .route(
            "/api/certificates/{thumbprint}/reject",
            post(handlers::certificates::reject),
        )
        .merge(config_routes())
        .fallback(handlers::fallback)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            csrf::check_csrf,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(headers::security_headers))
        .with_state(state)
}
