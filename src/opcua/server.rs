//! Builds and runs the async-opcua server from `[opcua]`: PKI checks, endpoints and their
//! user-token policies, limits, the authenticator and the gateway node manager.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};
use ua::crypto::SecurityPolicy;
use ua::server::{ServerBuilder, ServerEndpoint, ServerHandle};
use ua::types::MessageSecurityMode;

use crate::config::AppConfig;
use crate::opcua::auth::GatewayAuth;
use crate::opcua::keypair::check_keypair;
use crate::opcua::nodes::{
    namespace_uri, node_manager_builder, GatewayBackend, GatewayNodeManager, GatewayNodesHandle,
    NodeSettings, MAX_HISTORY_PAGE_ROWS,
};
use crate::security::{ensure_pki_layout, PkiError};

/// A session that stops talking is closed after this long (clients ask for less, or keep it
/// alive with publish requests). Also bounds how long a failed activation holds a session slot.
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the server checks subscriptions for notifications to publish (the library's
/// 100 ms adds up to two ticks to every notification).
pub const SUBSCRIPTION_TICK: Duration = Duration::from_millis(20);
/// The fastest publishing interval a client gets.
pub const MIN_PUBLISHING_INTERVAL: Duration = Duration::from_millis(50);
/// How long a Write to a command node waits for the command to be stored: longer than the
/// storage client's own 5 s timeout, so the request is abandoned (and never queued late)
/// before the client is told it failed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(6);

#[derive(Debug, thiserror::Error)]
pub enum OpcUaStartError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("no OPC UA server key pair: {} and {} must exist (see docs/opcua.md, \"PKI\"), or set [opcua].create_sample_keypair = true for development", certificate.display(), private_key.display())]
    NoKeypair {
        certificate: PathBuf,
        private_key: PathBuf,
    },
    #[error("cannot listen for OPC UA on {addr}: {source} (is another process using the port? change [opcua].host_port / OPCGW_OPCUA__HOST_PORT)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the OPC UA server configuration is invalid: {0}")]
    Build(String),
    #[error(transparent)]
    StandardNodes(#[from] crate::opcua::standard_nodes::ImageError),
}

/// The security policy and mode of an endpoint id (docs/opcua.md, "Endpoints").
pub fn endpoint_security(id: &str) -> Option<(SecurityPolicy, MessageSecurityMode)> {
    use MessageSecurityMode::{Sign, SignAndEncrypt};
    Some(match id {
        "null" => (SecurityPolicy::None, MessageSecurityMode::None),
        "basic256_sign" => (SecurityPolicy::Basic256, Sign),
        "basic256_sign_encrypt" => (SecurityPolicy::Basic256, SignAndEncrypt),
        "basic256sha256_sign" => (SecurityPolicy::Basic256Sha256, Sign),
        "basic256sha256_sign_encrypt" => (SecurityPolicy::Basic256Sha256, SignAndEncrypt),
        "aes128_sha256_rsaoaep_sign" => (SecurityPolicy::Aes128Sha256RsaOaep, Sign),
        "aes128_sha256_rsaoaep_sign_encrypt" => {
            (SecurityPolicy::Aes128Sha256RsaOaep, SignAndEncrypt)
        }
        "aes256_sha256_rsapss_sign" => (SecurityPolicy::Aes256Sha256RsaPss, Sign),
        "aes256_sha256_rsapss_sign_encrypt" => (SecurityPolicy::Aes256Sha256RsaPss, SignAndEncrypt),
        _ => return None,
    })
}

/// A running OPC UA server.
pub struct RunningServer {
    handle: ServerHandle,
    pub nodes: GatewayNodesHandle,
    task: JoinHandle<()>,
    pub local_addr: SocketAddr,
}

impl RunningServer {
    /// The number of sessions, activated or not (counted by the session manager, so it works
    /// with `[opcua].diagnostics_enabled` off).
    pub fn session_count(&self) -> u32 {
        let count = self.handle.session_manager().read().session_count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Subscriptions and monitored items on the server.
    pub fn subscription_counts(&self) -> (usize, usize) {
        self.handle.subscriptions().counts()
    }

    /// Stops the server: listeners close and sessions end.
    pub fn stop(self) {
        self.handle.cancel();
        self.task.abort();
    }

    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.handle.cancel();
        self.task.abort();
    }
}

fn private_key_file(config: &AppConfig) -> PathBuf {
    config.opcua.pki_dir.join(&config.opcua.private_key_path)
}

/// Checks the PKI directory and key, binds the port and starts serving.
pub async fn start(
    config: &Arc<AppConfig>,
    backend: Arc<dyn GatewayBackend>,
) -> Result<RunningServer, OpcUaStartError> {
    start_on(config, backend, None).await
}

/// [`start`], serving on `listener` when one is given instead of binding the configured
/// address (tests bind `127.0.0.1:0` themselves, so that no other test can take the port
/// between choosing it and listening on it).
pub async fn start_on(
    config: &Arc<AppConfig>,
    backend: Arc<dyn GatewayBackend>,
    listener: Option<std::net::TcpListener>,
) -> Result<RunningServer, OpcUaStartError> {
    let opcua_config = &config.opcua;
    for dir in ensure_pki_layout(&opcua_config.pki_dir)? {
        if dir.created || dir.tightened {
            info!(
                event = "pki_dir_initialised",
                path = %dir.path.display(),
                mode = format!("{:o}", dir.mode),
                created = dir.created,
                tightened = dir.tightened
            );
        }
    }
    let had_keypair = check_keypair(config)?;
    if !had_keypair {
        warn!(
            event = "opcua_sample_keypair",
            path = %opcua_config.pki_dir.display(),
            "generating a self-signed key pair because create_sample_keypair = true: for development only; provision a real certificate in production"
        );
    }

    let addr = format!(
        "{}:{}",
        opcua_config.host_ip_address, opcua_config.host_port
    );
    let bind_error = |source| OpcUaStartError::Bind {
        addr: addr.clone(),
        source,
    };
    let listener = match listener {
        Some(listener) => listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
            .map_err(bind_error)?,
        None => TcpListener::bind(&addr).await.map_err(bind_error)?,
    };
    let local_addr = listener
        .local_addr()
        .map_err(|source| OpcUaStartError::Bind {
            addr: addr.clone(),
            source,
        })?;

    let (mut server, handle) = build_server(config, backend, local_addr.port())?;
    apply_attack_bounds(&mut server, opcua_config);
    if !had_keypair {
        tighten_generated_key(&private_key_file(config));
    }
    let Some(manager) = handle.node_managers().get_of_type::<GatewayNodeManager>() else {
        return Err(OpcUaStartError::Build(
            "the gateway node manager is missing".into(),
        ));
    };
    let nodes = GatewayNodesHandle::new(manager);
    let task = tokio::spawn(async move {
        if let Err(why) = server.run_with(listener).await {
            error!(event = "opcua_server_failed", error = %why, "the OPC UA server stopped");
        }
    });
    if !nodes.wait_ready(Duration::from_secs(10)).await {
        handle.cancel();
        task.abort();
        return Err(OpcUaStartError::Build(
            "the server did not build its address space within 10 s".into(),
        ));
    }
    info!(
        event = "opcua_limits_configured",
        max_sessions = opcua_config.max_connections,
        max_subscriptions_per_session = opcua_config.max_subscriptions_per_session,
        max_monitored_items_per_sub = opcua_config.max_monitored_items_per_sub,
        max_message_size = opcua_config.max_message_size,
        max_chunk_count = opcua_config.max_chunk_count,
        max_history_data_results_per_node = opcua_config.max_history_data_results_per_node,
        max_tcp_connections = opcua_config.max_tcp_connections,
        max_tcp_connections_per_address = opcua_config.max_tcp_connections_per_address,
        max_rejected_certificates = opcua_config.max_rejected_certificates,
        rejected_certificates_per_minute = opcua_config.rejected_certificates_per_minute,
        "OPC UA limits configured"
    );
    info!(
        event = "opcua_listening",
        address = %local_addr,
        endpoints = %opcua_config.endpoints.join(","),
        namespace = %namespace_uri(&opcua_config.application_uri),
        anonymous = opcua_config.allow_anonymous,
        "OPC UA server listening"
    );
    Ok(RunningServer {
        handle,
        nodes,
        task,
        local_addr,
    })
}

/// What a peer without credentials can make the server hold: TCP connections (each costs a
/// file descriptor until its Hello timeout) and files in `pki/rejected/`.
fn apply_attack_bounds(server: &mut ua::server::Server, opcua_config: &crate::config::OpcUaConfig) {
    server.set_connection_limits(ua::server::ConnectionLimits {
        max_connections: opcua_config.max_tcp_connections as usize,
        max_connections_per_source: opcua_config.max_tcp_connections_per_address as usize,
    });
    server.set_rejected_certificate_limits(ua::crypto::RejectedCertificateLimits {
        max_files: opcua_config.max_rejected_certificates as usize,
        max_writes_per_minute: opcua_config.rejected_certificates_per_minute as usize,
    });
}

/// The async-opcua server for `config` (synchronous: the builder is not `Send`).
/// What HistoryRead can do here (Part 11 §5.4.2), advertised under
/// `Server.ServerCapabilities.HistoryServerCapabilities`: data (raw, at given times and
/// processed), no events, no insert / replace / update / delete; a page is at most
/// `max_history_data_results_per_node` values. The aggregates computed are organized under
/// both `AggregateFunctions` folders (vendored async-opcua patch 10).
fn history_capabilities(
    opcua_config: &crate::config::OpcUaConfig,
) -> ua::server::HistoryServerCapabilities {
    ua::server::HistoryServerCapabilities {
        access_history_data: true,
        max_return_data_values: opcua_config.max_history_data_results_per_node,
        aggregates: crate::storage::Aggregate::ALL
            .into_iter()
            .map(|a| crate::opcua::nodes::aggregate_function(a).into())
            .collect(),
        ..Default::default()
    }
}

fn build_server(
    config: &Arc<AppConfig>,
    backend: Arc<dyn GatewayBackend>,
    port: u16,
) -> Result<(ua::server::Server, ServerHandle), OpcUaStartError> {
    let opcua_config = &config.opcua;
    let settings = NodeSettings {
        namespace_uri: namespace_uri(&opcua_config.application_uri),
        history_page: (opcua_config.max_history_data_results_per_node as usize)
            .clamp(1, MAX_HISTORY_PAGE_ROWS),
        write_timeout: WRITE_TIMEOUT,
        // Leave room for the response header and per-node results.
        max_response_bytes: (opcua_config.max_message_size as usize).saturating_mul(8) / 10,
        max_command_writes_per_request: opcua_config.max_command_writes_per_request as usize,
    };
    let auth = Arc::new(GatewayAuth::new(
        &opcua_config.user_name,
        opcua_config.user_password.expose(),
        opcua_config.allow_anonymous,
    ));
    // The standard node set from the compact image compiled in (standard_nodes.rs), not from
    // async-opcua's generated code, which then is not linked.
    let standard_nodes = crate::opcua::standard_nodes::StandardNodes::embedded()?;
    let mut builder = ServerBuilder::with_core_namespace(standard_nodes)
        .application_name(opcua_config.application_name.clone())
        .application_uri(opcua_config.application_uri.clone())
        .product_uri(opcua_config.product_uri.clone())
        .pki_dir(opcua_config.pki_dir.clone())
        .certificate_path(opcua_config.certificate_path.clone())
        .private_key_path(opcua_config.private_key_path.clone())
        .create_sample_keypair(opcua_config.create_sample_keypair)
        .trust_client_certs(opcua_config.trust_client_cert)
        .check_cert_time(opcua_config.check_cert_time)
        .host(opcua_config.host_ip_address.clone())
        .port(port)
        .hello_timeout(opcua_config.hello_timeout)
        .diagnostics_enabled(opcua_config.diagnostics_enabled)
        .max_sessions(opcua_config.max_connections as usize)
        .max_session_timeout_ms(MAX_SESSION_TIMEOUT.as_millis() as u64)
        .session_activation_timeout_ms(
            u64::from(opcua_config.session_activation_timeout_seconds) * 1_000,
        )
        .subscription_poll_interval_ms(SUBSCRIPTION_TICK.as_millis() as u64)
        .max_message_size(opcua_config.max_message_size as usize)
        .max_chunk_count(opcua_config.max_chunk_count as usize)
        // A HistoryRead page (plus its two bounding values) is one array; the page size is
        // hot-reloadable up to MAX_HISTORY_PAGE_ROWS.
        .max_array_length(MAX_HISTORY_PAGE_ROWS + 2)
        .discovery_urls(vec!["/".to_string()])
        .with_authenticator(auth)
        .history_capabilities(history_capabilities(opcua_config))
        .with_node_manager(node_manager_builder(settings, config, backend));
    {
        let limits = builder.limits_mut();
        limits.subscriptions.max_subscriptions_per_session =
            opcua_config.max_subscriptions_per_session as usize;
        limits.subscriptions.max_monitored_items_per_sub =
            opcua_config.max_monitored_items_per_sub as usize;
        // Values change when devices report; a client's sampling interval must not rewrite
        // their device timestamps.
        limits.subscriptions.min_sampling_interval_ms = 0.0;
        limits.subscriptions.min_publishing_interval_ms =
            MIN_PUBLISHING_INTERVAL.as_millis() as f64;
        limits.operational.max_nodes_per_read = limits.operational.max_nodes_per_read.max(10_000);
    }
    for id in &opcua_config.endpoints {
        let Some((policy, mode)) = endpoint_security(id) else {
            return Err(OpcUaStartError::Build(format!(
                "unknown endpoint id {id:?}"
            )));
        };
        let mut endpoint = ServerEndpoint::new("/", policy, mode, &[]);
        if policy == SecurityPolicy::None && !opcua_config.allow_cleartext_password {
            // The password is encrypted with the server certificate even without a secure
            // channel.
            endpoint.password_security_policy = Some(SecurityPolicy::Basic256Sha256.to_string());
        }
        builder = builder.add_endpoint(id.clone(), endpoint);
    }
    if let Some(first) = opcua_config.endpoints.first() {
        builder = builder.default_endpoint(first.clone());
    }

    builder.build().map_err(OpcUaStartError::Build)
}

/// A key generated by the library follows the process umask; make it owner-only at once so
/// the next start's 0600 check accepts it.
fn tighten_generated_key(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => {
                    info!(event = "opcua_key_mode_tightened", path = %path.display(), "generated private key set to 0600")
                }
                Err(e) => {
                    warn!(event = "opcua_key_mode_tightened", path = %path.display(), error = %e, "cannot set the generated private key to 0600")
                }
            }
        }
    }
}
