//! The audit trail of the console: sign-ins, sign-outs, expiries, refusals and configuration
//! changes. Each event is a
//! structured log line (`event="web_login"`, ...) and also kept in a bounded ring served by
//! `GET /api/audit`, newest first. User names are sanitised; no secret is ever recorded.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;
use tracing::{info, warn};

use crate::config::edit::EditSubject;
use crate::model::Timestamp;
use crate::security::sanitize_for_log;
use crate::web::views::WebTime;

/// Events kept at most; the oldest is dropped first.
pub const AUDIT_RING_CAPACITY: usize = 1000;
/// Longest user name recorded (longer ones are cut and marked).
const MAX_USER_CHARS: usize = 64;

pub const WEB_AUTH_FAILED: &str = "web_auth_failed";
pub const WEB_LOGIN: &str = "web_login";
pub const WEB_LOGOUT: &str = "web_logout";
pub const WEB_SESSION_EXPIRED: &str = "web_session_expired";
pub const PKI_CERTIFICATE_TRUSTED: &str = "pki_certificate_trusted";
pub const PKI_CERTIFICATE_REJECTED: &str = "pki_certificate_rejected";
pub const PKI_CERTIFICATE_DELETED: &str = "pki_certificate_deleted";
/// Longest certificate subject recorded (a client chooses it; longer ones are cut and marked).
const MAX_SUBJECT_CHARS: usize = 256;
pub const CONFIG_RELOAD_ATTEMPTED: &str = "config_reload_attempted";
/// Longest id recorded (ids come from requests; longer ones are cut and marked).
const MAX_ID_CHARS: usize = 256;

/// What a configuration change did, for its event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrudAction {
    Created,
    Updated,
    Deleted,
}

/// `<subject>_created` / `_updated` / `_deleted`, or `<subject>_crud_rejected` (`None`).
pub fn crud_event(subject: EditSubject, action: Option<CrudAction>) -> &'static str {
    use CrudAction::*;
    use EditSubject::*;
    match (subject, action) {
        (Application, Some(Created)) => "application_created",
        (Application, Some(Updated)) => "application_updated",
        (Application, Some(Deleted)) => "application_deleted",
        (Application, None) => "application_crud_rejected",
        (Device, Some(Created)) => "device_created",
        (Device, Some(Updated)) => "device_updated",
        (Device, Some(Deleted)) => "device_deleted",
        (Device, None) => "device_crud_rejected",
        (Command, Some(Created)) => "command_created",
        (Command, Some(Updated)) => "command_updated",
        (Command, Some(Deleted)) => "command_deleted",
        (Command, None) => "command_crud_rejected",
    }
}

/// The ids a configuration change is about (from the path, or the body of a create).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditTarget {
    pub application_id: Option<String>,
    pub device_id: Option<String>,
    pub command_name: Option<String>,
}

/// How a configuration change or reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditVerdict<'a> {
    /// Live at this generation.
    Applied { generation: u64 },
    /// Refused (`reason` of `EditError::reason`, or `csrf`).
    Rejected { reason: &'a str },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub time: WebTime,
    pub event: &'static str,
    pub source_ip: Option<String>,
    pub user: String,
    pub detail: String,
}

#[derive(Debug)]
pub struct AuditRing {
    events: Mutex<VecDeque<AuditEvent>>,
    capacity: usize,
}

impl Default for AuditRing {
    fn default() -> Self {
        Self::with_capacity(AUDIT_RING_CAPACITY)
    }
}

impl AuditRing {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            events: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    /// A refused authentication: `reason` is one of 004's (`missing`, `malformed_scheme`,
    /// `malformed_base64`, `missing_colon`, `user_mismatch`, `password_mismatch`) or `csrf`.
    pub fn auth_failed(&self, source: Option<IpAddr>, user: &str, path: &str, reason: &str) {
        crate::metrics::metrics()
            .auth_failures
            .get_or_create(&[("surface", "web")])
            .inc();
        let user = sanitize_for_log(user, MAX_USER_CHARS);
        let path = sanitize_for_log(path, 256);
        let source_ip = source_text(source);
        warn!(
            event = WEB_AUTH_FAILED,
            source_ip = %source_ip.as_deref().unwrap_or("unknown"),
            user = %user,
            path = %path,
            reason,
            "Web UI authentication failed"
        );
        self.push(
            WEB_AUTH_FAILED,
            source_ip,
            user,
            format!("path={path} reason={reason}"),
        );
    }

    /// `web_login`, `web_logout` or `web_session_expired` (detail: why it expired).
    pub fn session_event(
        &self,
        event: &'static str,
        source: Option<IpAddr>,
        user: &str,
        detail: &str,
    ) {
        let user = sanitize_for_log(user, MAX_USER_CHARS);
        let source_ip = source_text(source);
        info!(
            event,
            source_ip = %source_ip.as_deref().unwrap_or("unknown"),
            user = %user,
            detail,
            "web console session"
        );
        self.push(event, source_ip, user, detail.to_string());
    }

    /// A configuration change (`event` from [`crud_event`]) or a reload from the console
    /// ([`CONFIG_RELOAD_ATTEMPTED`], trigger `web`): a log line and an entry of the ring.
    pub fn config_event(
        &self,
        event: &'static str,
        source: Option<IpAddr>,
        user: &str,
        target: &EditTarget,
        verdict: EditVerdict<'_>,
    ) {
        let user = sanitize_for_log(user, MAX_USER_CHARS);
        let source_ip = source_text(source);
        let id = |v: &Option<String>| v.as_deref().map(|v| sanitize_for_log(v, MAX_ID_CHARS));
        let (application_id, device_id, command_name) = (
            id(&target.application_id),
            id(&target.device_id),
            id(&target.command_name),
        );
        let source_field = source_ip.as_deref().unwrap_or("unknown");
        let trigger = (event == CONFIG_RELOAD_ATTEMPTED).then_some("web");
        let mut detail: Vec<String> = [
            ("trigger", trigger.map(str::to_string)),
            ("application_id", application_id.clone()),
            ("device_id", device_id.clone()),
            ("command_name", command_name.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
        match verdict {
            EditVerdict::Applied { generation } => {
                info!(
                    event,
                    source_ip = %source_field,
                    user = %user,
                    trigger,
                    application_id = application_id.as_deref().map(display),
                    device_id = device_id.as_deref().map(display),
                    command_name = command_name.as_deref().map(display),
                    generation,
                    "configuration changed from the web console"
                );
                detail.push(format!("generation={generation}"));
            }
            EditVerdict::Rejected { reason } => {
                warn!(
                    event,
                    source_ip = %source_field,
                    user = %user,
                    trigger,
                    application_id = application_id.as_deref().map(display),
                    device_id = device_id.as_deref().map(display),
                    command_name = command_name.as_deref().map(display),
                    reason,
                    "configuration change from the web console refused"
                );
                detail.push(format!("reason={reason}"));
            }
        }
        self.push(event, source_ip, user, detail.join(" "));
    }

    /// `pki_certificate_trusted` / `_rejected` / `_deleted`: the subject is the client's own
    /// text, sanitised (no forged log lines).
    pub fn certificate_event(
        &self,
        event: &'static str,
        source: Option<IpAddr>,
        user: &str,
        thumbprint: &str,
        subject: &str,
    ) {
        let user = sanitize_for_log(user, MAX_USER_CHARS);
        let subject = sanitize_for_log(subject, MAX_SUBJECT_CHARS);
        let source_ip = source_text(source);
        info!(
            event,
            source_ip = %source_ip.as_deref().unwrap_or("unknown"),
            user = %user,
            thumbprint,
            subject = %subject,
            "OPC UA client certificate changed from the web console"
        );
        self.push(
            event,
            source_ip,
            user,
            format!("thumbprint={thumbprint} subject={subject}"),
        );
    }

    fn push(&self, event: &'static str, source_ip: Option<String>, user: String, detail: String) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() >= self.capacity {
            events.pop_front();
        }
        events.push_back(AuditEvent {
            time: Timestamp::now().into(),
            event,
            source_ip,
            user,
            detail,
        });
    }

    /// The kept events, newest first.
    pub fn recent(&self) -> Vec<AuditEvent> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.iter().rev().cloned().collect()
    }
}

fn source_text(source: Option<IpAddr>) -> Option<String> {
    source.map(|ip| ip.to_canonical().to_string())
}
