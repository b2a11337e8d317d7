//! The configuration schema: every section and knob of `config/config.toml`, with its default.
//!
//! Defaults live in the `Default` impls below (the first layer of the figment chain); the
//! meaning and range of each knob is documented in `config/config.example.toml`, and a test
//! checks that every knob here appears there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// The whole gateway configuration, after defaults -> TOML -> environment and secret resolution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppConfig {
    pub logging: LoggingConfig,
    pub chirpstack: ChirpstackConfig,
    pub opcua: OpcUaConfig,
    pub web: WebConfig,
    pub metrics: MetricsConfig,
    pub storage: StorageConfig,
    pub control: ControlConfig,
    pub supervisor: SupervisorConfig,
    #[serde(rename = "application")]
    pub applications: Vec<ApplicationConfig>,
    /// `[[device_template]]`: devices naming one were expanded at load; kept for discovered
    /// devices, which take one by device profile (`[[application]] templates`).
    #[serde(rename = "device_template", skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<DeviceTemplate>,
    /// Devices of the live configuration that come from ChirpStack discovery only (none of
    /// them is written in the file). Set by `config::discovered::merge`; never read from or
    /// written to a file.
    #[serde(skip)]
    pub discovered: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// Directory of the daily-rolling log file.
    pub dir: PathBuf,
    /// A tracing filter: a level (`info`) or directives (`info,opcgw=debug`).
    pub level: String,
    /// Log files kept in `dir` (the active one included); the oldest is removed first.
    pub max_files: u32,
    /// The active file is rotated once it reaches this many MiB.
    pub max_file_size_mb: u32,
    /// `text` (one human-readable line per event) or `json` (one JSON object per line, for
    /// Loki / Elasticsearch).
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./log"),
            level: "info".into(),
            max_files: 10,
            max_file_size_mb: 10,
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChirpstackConfig {
    /// gRPC API address, `http://host:port` (or `https://`).
    pub server_address: String,
    /// Bearer token for the ChirpStack API. Inject with `OPCGW_CHIRPSTACK__API_TOKEN`.
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub api_token: Secret,
    /// Alternative to `api_token`: a file (mode 0600) holding the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token_file: Option<PathBuf>,
    pub tenant_id: String,
    /// Seconds between two poll cycles.
    pub polling_frequency: u64,
    /// Recovery attempts per outage before the poller falls back to its slow retry rate.
    pub retry: u32,
    /// Seconds between two recovery attempts (the backoff starts here).
    pub delay: u64,
    /// Page size of List calls (applications, devices).
    pub list_page_size: u32,
    /// Deadline of one API call (and of opening an event stream).
    pub request_timeout_seconds: u64,
    /// Calls in flight at once during a poll cycle.
    pub poll_concurrency: u32,
    /// Receive values from the per-device event streams (off: `GetMetrics` aggregates only).
    pub event_stream: bool,
    /// Event streams per HTTP/2 connection (servers cap concurrent streams per connection).
    pub streams_per_connection: u32,
    /// Most connections opened for event streams (opened as devices need them); devices beyond
    /// `streams_per_connection * max_stream_connections` are served by polling only.
    pub max_stream_connections: u32,
    /// A sent command without its acknowledgement (confirmed) or transmission (unconfirmed)
    /// after this many seconds, and no longer queued in ChirpStack, is expired.
    pub command_timeout_seconds: u64,
    /// Seconds between two discoveries of the devices of `discover = true` applications
    /// (also run at start, on SIGHUP and on `opcgw ctl discover`).
    pub discovery_interval_seconds: u64,
    /// What becomes of a discovered device ChirpStack no longer lists: `keep` (served on, its
    /// values ageing to Uncertain and Bad) or `remove` (gone from the address space).
    pub on_device_removed: DeviceRemoval,
}

/// What discovery does with a device ChirpStack no longer lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceRemoval {
    #[default]
    Keep,
    Remove,
}

impl Default for ChirpstackConfig {
    fn default() -> Self {
        Self {
            server_address: "http://127.0.0.1:8080".into(),
            api_token: Secret::default(),
            api_token_file: None,
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            polling_frequency: 10,
            retry: 10,
            delay: 10,
            list_page_size: 100,
            request_timeout_seconds: 10,
            poll_concurrency: 32,
            event_stream: true,
            streams_per_connection: 100,
            max_stream_connections: 100,
            command_timeout_seconds: 600,
            discovery_interval_seconds: 300,
            on_device_removed: DeviceRemoval::Keep,
        }
    }
}

/// Endpoint ids the OPC UA server can advertise (the first three are the ids of docs/opcua.md, "Endpoints", that every deployment knows).
pub const OPCUA_ENDPOINT_IDS: &[&str] = &[
    "null",
    "basic256_sign",
    "basic256_sign_encrypt",
    "basic256sha256_sign",
    "basic256sha256_sign_encrypt",
    "aes128_sha256_rsaoaep_sign",
    "aes128_sha256_rsaoaep_sign_encrypt",
    "aes256_sha256_rsapss_sign",
    "aes256_sha256_rsapss_sign_encrypt",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpcUaConfig {
    pub application_name: String,
    pub application_uri: String,
    pub product_uri: String,
    pub diagnostics_enabled: bool,
    /// Seconds a TCP connection may stay silent before its Hello.
    pub hello_timeout: u32,
    pub host_ip_address: String,
    pub host_port: u16,
    /// Development only: let the server generate a self-signed key pair when none exists.
    pub create_sample_keypair: bool,
    /// Relative to `pki_dir`.
    pub certificate_path: PathBuf,
    /// Relative to `pki_dir`; must be mode 0600.
    pub private_key_path: PathBuf,
    pub trust_client_cert: bool,
    pub check_cert_time: bool,
    pub pki_dir: PathBuf,
    /// Endpoints to advertise, by id (see `OPCUA_ENDPOINT_IDS`).
    pub endpoints: Vec<String>,
    pub allow_anonymous: bool,
    /// Accept a user password without encryption on the None endpoint (off: the password is
    /// encrypted with the server certificate even there).
    pub allow_cleartext_password: bool,
    pub user_name: String,
    /// Inject with `OPCGW_OPCUA__USER_PASSWORD`.
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub user_password: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_password_file: Option<PathBuf>,
    /// Age after which a value turns Uncertain (a device may override it).
    pub stale_threshold_seconds: u64,
    /// Age after which a value turns Bad.
    pub bad_threshold_seconds: u64,
    pub max_connections: u32,
    pub max_subscriptions_per_session: u32,
    pub max_monitored_items_per_sub: u32,
    pub max_message_size: u32,
    pub max_chunk_count: u32,
    pub max_history_data_results_per_node: u32,
    /// Seconds a session may stay unactivated after CreateSession before it is closed.
    pub session_activation_timeout_seconds: u32,
    /// Command nodes one Write request may name; the extra ones answer BadTooManyOperations.
    pub max_command_writes_per_request: u32,
    /// Open TCP connections in total, sessions or not; one more is closed at once.
    pub max_tcp_connections: u32,
    /// Open TCP connections from one source address (an IPv6 /64 counts as one).
    pub max_tcp_connections_per_address: u32,
    /// Files kept in `pki_dir/rejected/`; the oldest is removed first.
    pub max_rejected_certificates: u32,
    /// New files written to `pki_dir/rejected/` per minute; beyond, an untrusted client
    /// certificate is still rejected but not written.
    pub rejected_certificates_per_minute: u32,
}

impl Default for OpcUaConfig {
    fn default() -> Self {
        Self {
            application_name: "ChirpStack OPC UA Gateway".into(),
            application_uri: "urn:chirpstack:opcua:gateway".into(),
            product_uri: "urn:chirpstack:opcua:gateway".into(),
            diagnostics_enabled: true,
            hello_timeout: 5,
            host_ip_address: "0.0.0.0".into(),
            host_port: 4840,
            create_sample_keypair: false,
            certificate_path: PathBuf::from("own/cert.der"),
            private_key_path: PathBuf::from("private/private.pem"),
            trust_client_cert: false,
            check_cert_time: true,
            pki_dir: PathBuf::from("./pki"),
            endpoints: vec![
                "null".into(),
                "basic256_sign".into(),
                "basic256_sign_encrypt".into(),
                "basic256sha256_sign_encrypt".into(),
            ],
            allow_anonymous: false,
            allow_cleartext_password: false,
            user_name: "opcua-user".into(),
            user_password: Secret::default(),
            user_password_file: None,
            stale_threshold_seconds: 120,
            bad_threshold_seconds: 86_400,
            max_connections: 10,
            max_subscriptions_per_session: 10,
            max_monitored_items_per_sub: 1000,
            max_message_size: 327_675,
            max_chunk_count: 5,
            max_history_data_results_per_node: 10_000,
            session_activation_timeout_seconds: 10,
            max_command_writes_per_request: 50,
            max_tcp_connections: 100,
            max_tcp_connections_per_address: 20,
            max_rejected_certificates: 100,
            rejected_certificates_per_minute: 10,
        }
    }
}

/// `GET /metrics` (Prometheus), `/healthz` and `/readyz` on a listener of their own, so they
/// work whether or not the console is enabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub bind_address: String,
    pub port: u16,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind_address: "127.0.0.1".into(),
            port: 9464,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebConfig {
    pub enabled: bool,
    pub port: u16,
    pub bind_address: String,
    pub auth_realm: String,
    /// Origins allowed on mutating requests; empty means `http://<bind_address>:<port>`.
    pub allowed_origins: Vec<String>,
    /// Serve the console from this directory instead of the assets embedded in the binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_dir: Option<PathBuf>,
    /// A console session ends after this many minutes without a request (1-1440).
    pub session_idle_minutes: u64,
    /// A console session ends this many hours after sign-in, however busy (1-168).
    pub session_max_hours: u64,
    /// Mark the session cookie `Secure` (set when TLS terminates in front of the gateway).
    pub secure_cookies: bool,
    /// Largest request body accepted, in bytes (1024-1048576).
    pub max_body_bytes: usize,
    /// Open connections at most; further ones are closed at once (1-10000).
    pub max_connections: u32,
    /// A client must send its request headers within this many seconds (1-300).
    pub header_read_timeout_seconds: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            port: 8080,
            bind_address: "0.0.0.0".into(),
            auth_realm: "opcgw".into(),
            allowed_origins: Vec::new(),
            static_dir: None,
            session_idle_minutes: 30,
            session_max_hours: 12,
            secure_cookies: false,
            max_body_bytes: 64 * 1024,
            max_connections: 256,
            header_read_timeout_seconds: 10,
        }
    }
}

/// The default `[storage].cache_size_mb`, chosen from the measurements in
/// docs/performance.md ("redb page cache").
pub const DEFAULT_STORAGE_CACHE_MB: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    pub database_path: PathBuf,
    /// Days of history kept (7-365).
    pub retention_days: u32,
    /// Unfinished (queued or sent) commands one device may have; more are refused.
    pub max_queued_commands_per_device: u32,
    /// MiB of redb page cache (1-4096): memory against read and write speed.
    pub cache_size_mb: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_path: PathBuf::from("./data/opcgw.redb"),
            retention_days: 7,
            max_queued_commands_per_device: 100,
            cache_size_mb: DEFAULT_STORAGE_CACHE_MB,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlConfig {
    pub enabled: bool,
    pub socket_path: PathBuf,
    /// Group allowed on the socket (mode 0660); none means owner only (0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_group: Option<String>,
    /// Token read from this file (mode 0600) when present; otherwise generated into it.
    pub token_file: PathBuf,
    /// Inject with `OPCGW_CONTROL__TOKEN`; beats `token_file`.
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub token: Secret,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket_path: PathBuf::from("./run/opcgw.sock"),
            socket_group: None,
            token_file: PathBuf::from("./run/control.token"),
            token: Secret::default(),
        }
    }
}

/// Restart policy of the actor tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SupervisorConfig {
    /// First restart delay; doubles per consecutive failure.
    pub backoff_initial_ms: u64,
    /// Longest restart delay.
    pub backoff_max_ms: u64,
    /// A child running this long without failing starts again from the first delay.
    pub healthy_reset_seconds: u64,
    /// More than this many restarts of one child within `restart_window_seconds` stops the
    /// whole process with a non-zero exit code (systemd / Kubernetes then restart it).
    pub max_restarts: u32,
    pub restart_window_seconds: u64,
    /// Longest wait for one child to start before the attempt counts as failed.
    pub start_timeout_seconds: u64,
    /// Longest wait for the whole tree to stop on SIGTERM.
    pub shutdown_timeout_seconds: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            backoff_initial_ms: 250,
            backoff_max_ms: 30_000,
            healthy_reset_seconds: 60,
            max_restarts: 10,
            restart_window_seconds: 300,
            start_timeout_seconds: 30,
            shutdown_timeout_seconds: 10,
        }
    }
}

/// `[[device_template]]`: a named list of metrics and commands that devices take with
/// `template = "<name>"`, so a hundred identical sensors share one list (docs/configuration.md,
/// "Device templates"). Templates exist only in the file: the loader expands them into each
/// device, whose own `read_metric` and `command` entries win by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTemplate {
    pub name: String,
    #[serde(rename = "read_metric", default)]
    pub metrics: Vec<MetricConfig>,
    #[serde(rename = "command", default)]
    pub commands: Vec<CommandConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplicationConfig {
    pub application_name: String,
    pub application_id: String,
    /// List the application's devices from ChirpStack and build their metrics from their
    /// device profiles' measurements; devices and metrics written here win.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discover: bool,
    /// Device profile id -> the `[[device_template]]` a discovered device of that profile
    /// takes (its metrics and commands win over the profile's measurements).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    #[serde(rename = "device", default)]
    pub devices: Vec<DeviceConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceConfig {
    pub device_name: String,
    /// ChirpStack device id (DevEUI); also the device's OPC UA NodeId.
    pub device_id: String,
    /// Overrides `[opcua].stale_threshold_seconds` for this device (slow reporters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_threshold_seconds: Option<u64>,
    #[serde(rename = "read_metric", default)]
    pub metrics: Vec<MetricConfig>,
    #[serde(rename = "command", default)]
    pub commands: Vec<CommandConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricConfig {
    /// Browse name in OPC UA; the NodeId is `<device_id>/<metric_name>`.
    pub metric_name: String,
    /// Field of the decoded uplink object (dotted path for nested fields).
    pub chirpstack_metric_name: String,
    pub metric_type: MetricType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandConfig {
    pub command_name: String,
    pub command_id: u32,
    /// Ask the device to acknowledge the downlink.
    #[serde(default)]
    pub command_confirmed: bool,
    /// LoRaWAN FPort of the downlink (1-223).
    pub command_port: u8,
    /// Type a writer must send.
    #[serde(default = "CommandConfig::default_type")]
    pub command_type: MetricType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_max: Option<f64>,
}

impl CommandConfig {
    fn default_type() -> MetricType {
        MetricType::Int
    }
}

/// The type of a metric or command lives in the model (values carry it too); configuration
/// names it, so it is re-exported here.
pub use crate::model::MetricType;

impl AppConfig {
    /// Every device with the application it belongs to.
    pub fn devices(&self) -> impl Iterator<Item = (&ApplicationConfig, &DeviceConfig)> {
        self.applications
            .iter()
            .flat_map(|app| app.devices.iter().map(move |dev| (app, dev)))
    }

    /// Seconds after which a value of `device` turns Uncertain.
    pub fn stale_threshold_for(&self, device: &DeviceConfig) -> u64 {
        device
            .stale_threshold_seconds
            .unwrap_or(self.opcua.stale_threshold_seconds)
    }

    /// When a value of `device` turns Uncertain and then Bad.
    pub fn staleness_rule(&self, device: &DeviceConfig) -> crate::model::StalenessRule {
        crate::model::StalenessRule {
            stale_after: std::time::Duration::from_secs(self.stale_threshold_for(device)),
            bad_after: std::time::Duration::from_secs(self.opcua.bad_threshold_seconds),
        }
    }
}
