//! `validate()`: every rule on a loaded configuration, collected in one pass.
//!
//! Ranges are those of docs/configuration.md; where a rule goes beyond the configuration
//! contract the gateway replaces (per-device thresholds, command ports, endpoint ids), it says
//! why.

use std::collections::HashSet;
use std::net::IpAddr;

use super::env::env_var_for;
use super::load::ConfigProblem;
use super::schema::*;
use super::secret::Secret;
use super::weak::{weakness, MIN_SECRET_CHARS};

mod topology;
use topology::validate_applications;
pub(super) use topology::validate_templates;

/// Findings of [`validate`]: errors refuse the configuration, warnings are logged.
#[derive(Debug, Default)]
pub struct ValidationReport {
    pub errors: Vec<ConfigProblem>,
    pub warnings: Vec<ConfigProblem>,
}

impl ValidationReport {
    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigProblem::new(key, message));
    }

    fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigProblem::new(key, message));
    }

    fn range<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.error(key, format!("{value} is out of range; allowed {min}-{max}"));
        }
    }

    fn non_empty(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.error(key, "must not be empty");
        }
    }
}

/// Checks every rule and returns all findings.
pub fn validate(config: &AppConfig) -> ValidationReport {
    let mut report = ValidationReport::default();
    validate_logging(&config.logging, &mut report);
    validate_chirpstack(&config.chirpstack, &mut report);
    validate_opcua(&config.opcua, &mut report);
    validate_web(&config.web, &mut report);
    validate_metrics(config, &mut report);
    validate_storage(&config.storage, &mut report);
    validate_control(&config.control, &mut report);
    validate_supervisor(&config.supervisor, &mut report);
    validate_applications(config, &mut report);
    validate_finite_floats(config, &mut report);
    report
}

/// `nan` and `inf` are valid TOML floats but never a valid setting (`command_min = nan` would
/// refuse every write, since no comparison with nan holds). Every float knob of the sections,
/// today's and any added later, is found through the serialised tree; the topology's floats
/// (a command's range) are checked with the rest of a device (`topology`), so a fleet of
/// 10,000 devices is not serialised whole for the two of them.
fn validate_finite_floats(config: &AppConfig, report: &mut ValidationReport) {
    fn walk(value: &toml::Value, at: &str, report: &mut ValidationReport) {
        match value {
            toml::Value::Float(f) if !f.is_finite() => {
                report.error(at, "must be a finite number (nan and inf are not accepted)")
            }
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let at = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    walk(value, &at, report);
                }
            }
            toml::Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    walk(value, &format!("{at}[{i}]"), report);
                }
            }
            _ => {}
        }
    }
    let sections = AppConfig {
        logging: config.logging.clone(),
        chirpstack: config.chirpstack.clone(),
        opcua: config.opcua.clone(),
        web: config.web.clone(),
        metrics: config.metrics.clone(),
        storage: config.storage.clone(),
        control: config.control.clone(),
        supervisor: config.supervisor.clone(),
        applications: Vec::new(),
        templates: Vec::new(),
        discovered: Default::default(),
    };
    match toml::Value::try_from(&sections) {
        Ok(tree) => walk(&tree, "", report),
        Err(err) => report.error("", format!("cannot check the float settings: {err}")),
    }
}

/// A secret the gateway cannot run without: present, not the shipped placeholder, not weak.
fn required_secret(
    report: &mut ValidationReport,
    key: &str,
    secret: &Secret,
    user_name: Option<&str>,
) {
    let env = env_var_for(key);
    if secret.is_placeholder() {
        // Never echo the value: a near-miss real secret may have been pasted in.
        report.error(
            key,
            format!(
                "placeholder value detected (starts with \"REPLACE_ME_WITH_\"). Set {env} to inject the real \
                 secret. See docs/security.md."
            ),
        );
    } else if secret.is_empty() {
        report.error(
            key,
            format!("is required. Set {env} (or {key}_file) to inject it. See docs/security.md."),
        );
    } else if let Some(weakness) = weakness(secret.expose(), MIN_SECRET_CHARS, user_name) {
        let noun = if key.ends_with("password") {
            "password"
        } else {
            "token"
        };
        report.error(
            key,
            format!(
                "{weakness}; set {env} (or {key}_file) to a {noun} of at least {MIN_SECRET_CHARS} \
                 characters that is not a common or guessable value. See docs/security.md."
            ),
        );
    }
}

fn validate_logging(logging: &LoggingConfig, report: &mut ValidationReport) {
    if logging.dir.as_os_str().is_empty() {
        report.error("logging.dir", "must not be empty");
    }
    if let Err(message) = check_log_filter(&logging.level) {
        report.error("logging.level", message);
    }
    report.range("logging.max_files", logging.max_files, 1, 1_000);
    report.range(
        "logging.max_file_size_mb",
        logging.max_file_size_mb,
        1,
        10_240,
    );
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Accepts a level (`info`) or comma-separated directives (`info,opcgw=debug,tonic=warn`).
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err(format!(
            "must not be empty; use one of {}",
            LEVELS.join(", ")
        ));
    }
    for directive in filter.split(',').map(str::trim) {
        let level = match directive.split_once('=') {
            Some((target, level)) => {
                let valid_target = !target.is_empty()
                    && target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'));
                if !valid_target {
                    return Err(format!(
                        "\"{directive}\" is not a valid directive (expected target=level)"
                    ));
                }
                level
            }
            None => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "\"{directive}\" has an unknown level; use one of {}",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

fn validate_chirpstack(cs: &ChirpstackConfig, report: &mut ValidationReport) {
    if let Err(message) = check_http_url(&cs.server_address) {
        report.error("chirpstack.server_address", message);
    }
    required_secret(report, "chirpstack.api_token", &cs.api_token, None);
    // The token travels in an HTTP header: only visible ASCII fits (never echo it).
    if !cs.api_token.expose().chars().all(|c| c.is_ascii_graphic()) {
        report.error(
            "chirpstack.api_token",
            "contains characters that cannot be sent in an HTTP header (spaces, control or non-ASCII characters)",
        );
    }
    if !is_uuid(&cs.tenant_id) {
        report.error(
            "chirpstack.tenant_id",
            "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        );
    }
    report.range(
        "chirpstack.polling_frequency",
        cs.polling_frequency,
        1,
        86_400,
    );
    report.range("chirpstack.retry", cs.retry, 1, 1_000);
    report.range("chirpstack.delay", cs.delay, 1, 3_600);
    report.range("chirpstack.list_page_size", cs.list_page_size, 1, 1_000);
    report.range(
        "chirpstack.request_timeout_seconds",
        cs.request_timeout_seconds,
        1,
        300,
    );
    report.range("chirpstack.poll_concurrency", cs.poll_concurrency, 1, 256);
    report.range(
        "chirpstack.streams_per_connection",
        cs.streams_per_connection,
        1,
        1_000,
    );
    report.range(
        "chirpstack.max_stream_connections",
        cs.max_stream_connections,
        1,
        256,
    );
    report.range(
        "chirpstack.command_timeout_seconds",
        cs.command_timeout_seconds,
        10,
        7 * 86_400,
    );
    report.range(
        "chirpstack.discovery_interval_seconds",
        cs.discovery_interval_seconds,
        5,
        86_400,
    );
}

fn check_http_url(full_url: &str) -> Result<(), String> {
    // `https://user:password@host` carries a credential: never echo that part.
    let shown = without_userinfo(full_url);
    let url = shown.as_str();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("\"{url}\" must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("\"{url}\" has an invalid port \"{port}\"")),
        }
    }
    Ok(())
}

/// `url` with any `user:password@` before the host replaced by `***@`.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let prefix = if scheme.is_empty() {
                String::new()
            } else {
                format!("{scheme}://")
            };
            format!("{prefix}***{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn validate_opcua(ua: &OpcUaConfig, report: &mut ValidationReport) {
    report.non_empty("opcua.application_name", &ua.application_name);
    report.non_empty("opcua.application_uri", &ua.application_uri);
    report.non_empty("opcua.product_uri", &ua.product_uri);
    report.range("opcua.hello_timeout", ua.hello_timeout, 1, 300);
    if ua.host_ip_address.trim().is_empty() || ua.host_ip_address.contains(char::is_whitespace) {
        report.error(
            "opcua.host_ip_address",
            "must be an IP address or host name",
        );
    }
    report.range("opcua.host_port", ua.host_port, 1, u16::MAX);
    report.non_empty("opcua.user_name", &ua.user_name);
    if ua.user_name.chars().count() > 64 || ua.user_name.chars().any(char::is_control) {
        report.error(
            "opcua.user_name",
            "must be at most 64 characters without control characters",
        );
    }
    required_secret(
        report,
        "opcua.user_password",
        &ua.user_password,
        Some(&ua.user_name),
    );
    if ua.pki_dir.as_os_str().is_empty() {
        report.error("opcua.pki_dir", "must not be empty");
    }
    for (key, path) in [
        ("opcua.certificate_path", &ua.certificate_path),
        ("opcua.private_key_path", &ua.private_key_path),
    ] {
        if path.as_os_str().is_empty() || path.is_absolute() {
            report.error(key, "must be a relative path below pki_dir");
        }
    }
    if ua.endpoints.is_empty() {
        report.error(
            "opcua.endpoints",
            format!(
                "must list at least one of {}",
                OPCUA_ENDPOINT_IDS.join(", ")
            ),
        );
    }
    let mut seen = HashSet::new();
    for id in &ua.endpoints {
        if !OPCUA_ENDPOINT_IDS.contains(&id.as_str()) {
            report.error(
                "opcua.endpoints",
                format!(
                    "unknown endpoint \"{id}\"; known: {}",
                    OPCUA_ENDPOINT_IDS.join(", ")
                ),
            );
        } else if !seen.insert(id) {
            report.error("opcua.endpoints", format!("\"{id}\" is listed twice"));
        }
    }
    report.range(
        "opcua.stale_threshold_seconds",
        ua.stale_threshold_seconds,
        1,
        86_400,
    );
    report.range(
        "opcua.bad_threshold_seconds",
        ua.bad_threshold_seconds,
        1,
        30 * 86_400,
    );
    if ua.bad_threshold_seconds <= ua.stale_threshold_seconds {
        report.error(
            "opcua.bad_threshold_seconds",
            "must be greater than opcua.stale_threshold_seconds",
        );
    }
    report.range("opcua.max_connections", ua.max_connections, 1, 4_096);
    report.range(
        "opcua.max_subscriptions_per_session",
        ua.max_subscriptions_per_session,
        1,
        1_000,
    );
    report.range(
        "opcua.max_monitored_items_per_sub",
        ua.max_monitored_items_per_sub,
        1,
        100_000,
    );
    report.range(
        "opcua.max_message_size",
        ua.max_message_size,
        1,
        268_431_360,
    );
    report.range("opcua.max_chunk_count", ua.max_chunk_count, 1, 4_096);
    report.range(
        "opcua.max_history_data_results_per_node",
        ua.max_history_data_results_per_node,
        1,
        1_000_000,
    );
    // Below the 60 s session timeout, or unactivated sessions would not expire any sooner.
    report.range(
        "opcua.session_activation_timeout_seconds",
        ua.session_activation_timeout_seconds,
        1,
        60,
    );
    report.range(
        "opcua.max_command_writes_per_request",
        ua.max_command_writes_per_request,
        1,
        10_000,
    );
    validate_opcua_attack_bounds(ua, report);
    if ua.create_sample_keypair {
        report.warn(
            "opcua.create_sample_keypair",
            "is true: a self-signed key pair is generated when missing; provision your own for production",
        );
    }
    if ua.allow_anonymous {
        report.warn(
            "opcua.allow_anonymous",
            "is true: clients may connect without credentials",
        );
    }
}

/// The bounds on what a peer without credentials can make the server hold.
fn validate_opcua_attack_bounds(ua: &OpcUaConfig, report: &mut ValidationReport) {
    // Every connection costs a file descriptor: stay far below common RLIMIT_NOFILE values.
    report.range(
        "opcua.max_tcp_connections",
        ua.max_tcp_connections,
        1,
        60_000,
    );
    if ua.max_tcp_connections < ua.max_connections {
        report.error(
            "opcua.max_tcp_connections",
            format!(
                "must be at least opcua.max_connections ({}): every session needs a connection",
                ua.max_connections
            ),
        );
    }
    report.range(
        "opcua.max_tcp_connections_per_address",
        ua.max_tcp_connections_per_address,
        1,
        ua.max_tcp_connections.max(1),
    );
    report.range(
        "opcua.max_rejected_certificates",
        ua.max_rejected_certificates,
        1,
        100_000,
    );
    report.range(
        "opcua.rejected_certificates_per_minute",
        ua.rejected_certificates_per_minute,
        1,
        10_000,
    );
}

fn validate_web(web: &WebConfig, report: &mut ValidationReport) {
    report.range("web.port", web.port, 1024, u16::MAX);
    if web.bind_address.parse::<IpAddr>().is_err() {
        report.error(
            "web.bind_address",
            format!("\"{}\" is not an IP address", web.bind_address),
        );
    }
    let realm = &web.auth_realm;
    if realm.is_empty() {
        report.error("web.auth_realm", "must not be empty");
    } else if realm.chars().count() > 64 {
        report.error("web.auth_realm", "must be at most 64 characters");
    } else if !realm.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
        || realm.contains(['"', '\\'])
    {
        report.error(
            "web.auth_realm",
            "must be printable ASCII without '\"' or '\\'",
        );
    } else if realm.trim() != realm {
        report.error(
            "web.auth_realm",
            "must not have leading or trailing whitespace",
        );
    }
    for origin in &web.allowed_origins {
        if let Err(message) = check_origin(origin) {
            report.error("web.allowed_origins", message);
        }
    }
    report.range(
        "web.session_idle_minutes",
        web.session_idle_minutes,
        1,
        1440,
    );
    report.range("web.session_max_hours", web.session_max_hours, 1, 168);
    report.range("web.max_body_bytes", web.max_body_bytes, 1024, 1024 * 1024);
    report.range("web.max_connections", web.max_connections, 1, 10_000);
    report.range(
        "web.header_read_timeout_seconds",
        web.header_read_timeout_seconds,
        1,
        300,
    );
}

/// An origin is `scheme://host[:port]`: no path, query or fragment.
fn validate_metrics(config: &AppConfig, report: &mut ValidationReport) {
    let metrics = &config.metrics;
    report.range("metrics.port", metrics.port, 1024, u16::MAX);
    if metrics.bind_address.parse::<IpAddr>().is_err() {
        report.error(
            "metrics.bind_address",
            format!("\"{}\" is not an IP address", metrics.bind_address),
        );
    }
    if !metrics.enabled {
        return;
    }
    let taken = [
        (config.opcua.host_port, "opcua.host_port", true),
        (config.web.port, "web.port", config.web.enabled),
    ];
    for (port, key, used) in taken {
        if used && port == metrics.port {
            report.error(
                "metrics.port",
                format!("{port} is also {key}: give the metrics listener a port of its own"),
            );
        }
    }
}

fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("\"{origin}\" must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace)
    {
        return Err(format!(
            "\"{origin}\" must be scheme://host[:port] without path, query or credentials"
        ));
    }
    check_http_url(origin)
}

fn validate_storage(storage: &StorageConfig, report: &mut ValidationReport) {
    if storage.database_path.as_os_str().is_empty() {
        report.error("storage.database_path", "must not be empty");
    }
    report.range("storage.retention_days", storage.retention_days, 7, 365);
    report.range(
        "storage.max_queued_commands_per_device",
        storage.max_queued_commands_per_device,
        1,
        10_000,
    );
    report.range("storage.cache_size_mb", storage.cache_size_mb, 1, 4_096);
}

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH_BYTES: usize = 107;

fn validate_control(control: &ControlConfig, report: &mut ValidationReport) {
    let socket = control.socket_path.as_os_str();
    if socket.is_empty() {
        report.error("control.socket_path", "must not be empty");
    } else if socket.len() > MAX_SOCKET_PATH_BYTES {
        report.error(
            "control.socket_path",
            format!("is longer than {MAX_SOCKET_PATH_BYTES} bytes (unix socket limit)"),
        );
    }
    if control.token_file.as_os_str().is_empty() {
        report.error("control.token_file", "must not be empty");
    }
    if control.token.is_placeholder() {
        report.error(
            "control.token",
            "placeholder value detected (starts with \"REPLACE_ME_WITH_\"). Set OPCGW_CONTROL__TOKEN or remove \
             the key to have a token generated into control.token_file. See docs/security.md.",
        );
    } else if !control.token.is_empty() {
        // The control socket itself refuses tokens under MIN_TOKEN_BYTES: say so here already.
        let min_chars = MIN_SECRET_CHARS.max(super::MIN_TOKEN_BYTES);
        if let Some(weakness) = weakness(control.token.expose(), min_chars, None) {
            report.error(
                "control.token",
                format!(
                    "{weakness}; set OPCGW_CONTROL__TOKEN to a token of at least {min_chars} \
                     characters (`openssl rand -hex 32`), or remove it to have one generated into \
                     control.token_file. See docs/security.md."
                ),
            );
        }
    }
    if let Some(group) = &control.socket_group {
        if group.trim().is_empty() {
            report.error("control.socket_group", "must not be empty when set");
        }
    }
}

fn validate_supervisor(sup: &SupervisorConfig, report: &mut ValidationReport) {
    report.range(
        "supervisor.backoff_initial_ms",
        sup.backoff_initial_ms,
        1,
        60_000,
    );
    report.range(
        "supervisor.backoff_max_ms",
        sup.backoff_max_ms,
        1,
        3_600_000,
    );
    if sup.backoff_max_ms < sup.backoff_initial_ms {
        report.error(
            "supervisor.backoff_max_ms",
            "must not be less than supervisor.backoff_initial_ms",
        );
    }
    report.range(
        "supervisor.healthy_reset_seconds",
        sup.healthy_reset_seconds,
        1,
        86_400,
    );
    report.range("supervisor.max_restarts", sup.max_restarts, 1, 10_000);
    report.range(
        "supervisor.restart_window_seconds",
        sup.restart_window_seconds,
        1,
        86_400,
    );
    report.range(
        "supervisor.start_timeout_seconds",
        sup.start_timeout_seconds,
        1,
        600,
    );
    report.range(
        "supervisor.shutdown_timeout_seconds",
        sup.shutdown_timeout_seconds,
        1,
        600,
    );
}
