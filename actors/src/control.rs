//! The control actor: the authenticated local control plane behind `opcgw ctl`.
//!
//! A unix socket (mode 0600, or 0660 with a group) speaks newline-delimited JSON; the first
//! frame must carry the token within 5 s, and an unauthenticated peer never gets anything but
//! `auth_failed` (protocol in `opcgw::control`). Each connection is served by its own task,
//! owned by the accept loop, owned by this actor's state: a crash takes them all down, the
//! restarted actor finds the socket file stale and binds it again.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opcgw::chirpstack::mapping::convert_json;
use opcgw::commands::prepare;
use opcgw::config::AppConfig;
use opcgw::control::{
    history_window, resolve_token, serve_admitted, AdmissionRefused, ConnectionEnd,
    ConnectionLimits, ConnectionTable, ErrorBody, ErrorCode, Request, ServeOptions, Ticket,
    TokenVerifier, DEFAULT_COMMAND_LIST_LIMIT, DEFAULT_HISTORY_LIMIT,
};
use opcgw::model::Timestamp;
use opcgw::storage::{CommandFilter, HistoryQuery, StorageErrorKind};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value as Json};
use tokio::io::BufReader;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::duty::DutyBase;
use crate::logging::LogControl;
use crate::messages::{
    Common, ConfigUpdate, ControlMsg, Peers, PollerMsg, ReloadMsg, ReloadTrigger, StorageFailure,
    CALL_TIMEOUT,
};
use crate::storage_client::StorageClient;
use crate::supervisor::SupervisorMsg;
use crate::task::OwnedTask;
use crate::{poller, reload};

pub const ROLE: &str = "control";

pub struct ControlActor;

pub struct ControlArgs {
    pub config: ConfigUpdate,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub log: Option<LogControl>,
}

/// What connection tasks need to answer requests, refreshed when peers or config change.
#[derive(Clone)]
struct Context {
    config: Arc<AppConfig>,
    peers: Peers,
    supervisor: ActorRef<SupervisorMsg>,
    log: Option<LogControl>,
}

pub struct ControlState {
    base: DutyBase,
    context: watch::Sender<Context>,
    socket: Option<PathBuf>,
    _accept: Option<OwnedTask>,
}

impl Actor for ControlActor {
    type Msg = ControlMsg;
    type State = ControlState;
    type Arguments = ControlArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ControlMsg>,
        args: ControlArgs,
    ) -> Result<ControlState, ActorProcessingErr> {
        let config = args.config.config.clone();
        let context = Context {
            config: config.clone(),
            peers: Peers::default(),
            supervisor: args.supervisor,
            log: args.log,
        };
        let (context, context_rx) = watch::channel(context);
        let mut state = ControlState {
            base: DutyBase::new(ROLE, args.config),
            context,
            socket: None,
            _accept: None,
        };
        if !config.control.enabled {
            info!(event = "control_socket_disabled");
            return Ok(state);
        }
        let (token, source) = resolve_token(&config.control)?;
        let path = config.control.socket_path.clone();
        let listener = bind_socket(&path, config.control.socket_group.as_deref())?;
        info!(
            event = "control_socket_listening",
            path = %path.display(),
            token_source = source.as_str(),
            token_file = %config.control.token_file.display()
        );
        let verifier = Arc::new(TokenVerifier::new(token.expose()));
        state.socket = Some(path);
        state._accept = Some(OwnedTask::spawn(accept_loop(
            listener, verifier, context_rx,
        )));
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ControlMsg>,
        state: &mut ControlState,
    ) -> Result<(), ActorProcessingErr> {
        // Clean shutdown: the socket goes with us (after a crash it is left behind; the next
        // start finds it stale and replaces it).
        state._accept = None;
        if let Some(path) = &state.socket {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<ControlMsg>,
        message: ControlMsg,
        state: &mut ControlState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ControlMsg::Common(common) => {
                let summary = match &state.socket {
                    Some(path) => format!("serving {}", path.display()),
                    None => "disabled ([control].enabled = false)".to_string(),
                };
                let refresh = matches!(common, Common::ConfigChanged(_) | Common::PeersChanged(_));
                state.base.handle_common(common, |_| summary)?;
                if refresh {
                    let (config, peers) =
                        (state.base.config.config.clone(), state.base.peers.clone());
                    state.context.send_modify(|c| {
                        c.config = config;
                        c.peers = peers;
                    });
                }
            }
        }
        Ok(())
    }
}

/// Socket preflight: a path that answers belongs to a running opcgw (refuse); one that refuses
/// is a stale socket from a crash (replace it); anything that is not a socket is never deleted.
pub fn bind_socket(path: &Path, group: Option<&str>) -> Result<UnixListener, String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(format!("control socket path {} exists and is not a socket; remove it or set [control].socket_path", path.display()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {} is in use by another running opcgw; stop it first or give this instance its own [control].socket_path",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale control socket {}: {e}", path.display()))?;
        info!(event = "control_socket_stale_removed", path = %path.display());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700));
        }
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))?;
    let mode = match group {
        Some(group) => {
            let gid = nix::unistd::Group::from_name(group)
                .ok()
                .flatten()
                .ok_or_else(|| format!("[control].socket_group {group:?} does not exist"))?
                .gid;
            nix::unistd::chown(path, None, Some(gid))
                .map_err(|e| format!("cannot give {} to group {group}: {e}", path.display()))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    Ok(listener)
}

/// Accepts connections for as long as the actor lives. Admission (see `opcgw::control`'s
/// `admission`): at most `MAX_PENDING_CONNECTIONS` connections wait for their token, the oldest
/// giving way to each newcomer, and at most `MAX_AUTHENTICATED_CONNECTIONS` are authenticated;
/// an authenticated connection is never closed to make room.
async fn accept_loop(
    listener: UnixListener,
    verifier: Arc<TokenVerifier>,
    context: watch::Receiver<Context>,
) {
    let mut connections: JoinSet<()> = JoinSet::new();
    let mut table: ConnectionTable<tokio::task::AbortHandle> =
        ConnectionTable::new(ConnectionLimits::default());
    // Logged once per flood, not once per evicted connection.
    let mut evicting = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await; // e.g. out of file descriptors
                    continue;
                };
                let admitted = table.admit(|handle| handle.is_finished());
                match (admitted.evicted.is_empty(), evicting) {
                    (false, false) => {
                        evicting = true;
                        warn!(
                            event = "control_pending_limit",
                            limit = table.limits().max_pending,
                            authenticated = table.authenticated(),
                            "too many connections waiting to authenticate: the oldest is closed for each new one (authenticated connections are kept)"
                        );
                    }
                    (true, true) => evicting = false,
                    _ => {}
                }
                for handle in admitted.evicted {
                    handle.abort();
                }
                let ticket = admitted.ticket;
                let (verifier, context, task_ticket) = (verifier.clone(), context.clone(), ticket.clone());
                let handle = connections.spawn(async move { serve(stream, &verifier, task_ticket, context).await });
                table.track(ticket, handle);
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The peer's uid and pid, as the kernel reports them (SO_PEERCRED).
#[derive(Debug, Clone, Copy)]
struct Peer {
    uid: u32,
    pid: Option<i32>,
}

async fn serve(
    stream: UnixStream,
    verifier: &TokenVerifier,
    ticket: Arc<Ticket>,
    context: watch::Receiver<Context>,
) {
    let peer = match stream.peer_cred() {
        Ok(cred) => Peer {
            uid: cred.uid(),
            pid: cred.pid(),
        },
        Err(_) => Peer {
            uid: u32::MAX,
            pid: None,
        },
    };
    let (read, write) = stream.into_split();
    let end = serve_admitted(
        BufReader::new(read),
        write,
        verifier,
        &ServeOptions::default(),
        || {
            ticket.authenticate().map_err(|refused: AdmissionRefused| {
                ErrorBody::new(ErrorCode::Unavailable, refused.to_string())
            })
        },
        |request| {
            let context = context.borrow().clone();
            async move {
                let name = request.name();
                let result = handle_request(request, &context, peer).await;
                info!(
                    event = "control_command",
                    command = name,
                    uid = peer.uid,
                    pid = peer.pid.unwrap_or(-1),
                    ok = result.is_ok()
                );
                result
            }
        },
    )
    .await;
    match end {
        ConnectionEnd::AuthRejected(reason) => warn!(
            event = "control_auth_failed",
            uid = peer.uid,
            pid = peer.pid.unwrap_or(-1),
            reason = reason.as_str()
        ),
        ConnectionEnd::Refused(reason) => warn!(
            event = "control_connection_refused",
            uid = peer.uid,
            pid = peer.pid.unwrap_or(-1),
            reason = reason.as_str()
        ),
        other => debug!(event = "control_connection_closed", uid = peer.uid, end = ?other),
    }
}

fn storage_error(failure: StorageFailure) -> ErrorBody {
    match &failure {
        StorageFailure::Unavailable(_) => {
            ErrorBody::new(ErrorCode::Unavailable, failure.to_string())
        }
        StorageFailure::Store {
            kind: StorageErrorKind::UnknownSeries | StorageErrorKind::InvalidQuery,
            ..
        } => ErrorBody::bad_request(failure.to_string()),
        // Busy, like OPC UA's BadResourceUnavailable: the same command works once the device's
        // queue drains.
        StorageFailure::Store {
            kind: StorageErrorKind::CommandQueueFull,
            ..
        } => ErrorBody::new(ErrorCode::Unavailable, failure.to_string()),
        StorageFailure::Store { .. } => ErrorBody::new(ErrorCode::Internal, failure.to_string()),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Json, ErrorBody> {
    serde_json::to_value(value).map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))
}

async fn handle_request(request: Request, ctx: &Context, peer: Peer) -> Result<Json, ErrorBody> {
    let storage = StorageClient::from_peers(&ctx.peers);
    match request {
        Request::Status => {
            let tree = ctx
                .supervisor
                .call(SupervisorMsg::Status, Some(CALL_TIMEOUT))
                .await
                .ok()
                .and_then(|r| r.success_or(()).ok());
            let upstream = match ctx.peers.get::<PollerMsg>(poller::ROLE) {
                Some(poller) => poller
                    .call(PollerMsg::Upstream, Some(CALL_TIMEOUT))
                    .await
                    .ok()
                    .and_then(|r| r.success_or(()).ok()),
                None => None,
            };
            let counts = storage.counts().await;
            Ok(json!({
                "tree": tree,
                "upstream": upstream,
                "storage": match counts { Ok(c) => to_json(&c)?, Err(e) => json!({"error": e.to_string()}) },
            }))
        }
        Request::Reload => {
            let Some(reload) = ctx.peers.get::<ReloadMsg>(reload::ROLE) else {
                return Err(ErrorBody::new(
                    ErrorCode::Unavailable,
                    "the reload actor is not running",
                ));
            };
            let outcome = reload
                .call(
                    |reply| ReloadMsg::Reload {
                        trigger: ReloadTrigger::Ctl,
                        reply: Some(reply),
                    },
                    Some(CALL_TIMEOUT * 6),
                )
                .await
                .ok()
                .and_then(|r| r.success_or(()).ok())
                .ok_or_else(|| {
                    ErrorBody::new(ErrorCode::Unavailable, "the reload actor did not answer")
                })?;
            to_json(&outcome)
        }
        Request::Devices => {
            let latest = storage.latest(None).await.unwrap_or_default();
            let now = Timestamp::now();
            let devices: Vec<Json> = ctx
                .config
                .devices()
                .map(|(app, device)| {
                    let newest = latest
                        .iter()
                        .filter(|l| l.device_id == device.device_id)
                        .map(|l| l.source_time)
                        .max();
                    json!({
                        "application": app.application_name,
                        "device_id": device.device_id,
                        "device_name": device.device_name,
                        "metrics": device.metrics.len(),
                        "commands": device.commands.len(),
                        "last_value": newest.map(|t| t.to_rfc3339()),
                        "quality": ctx.config.staleness_rule(device).quality(newest, now),
                    })
                })
                .collect();
            Ok(Json::Array(devices))
        }
        Request::Read { device, metric } => {
            let Some((_, config)) = ctx.config.devices().find(|(_, d)| d.device_id == device)
            else {
                return Err(ErrorBody::bad_request(format!(
                    "field `device`: unknown device {device:?}"
                )));
            };
            if let Some(metric) = &metric {
                if !config.metrics.iter().any(|m| &m.metric_name == metric) {
                    return Err(ErrorBody::bad_request(format!(
                        "field `metric`: device {device:?} has no metric {metric:?}"
                    )));
                }
            }
            let latest = storage
                .latest(Some(device.clone()))
                .await
                .map_err(storage_error)?;
            let rule = ctx.config.staleness_rule(config);
            let now = Timestamp::now();
            let rows: Vec<Json> = config
                .metrics
                .iter()
                .filter(|m| {
                    metric
                        .as_ref()
                        .is_none_or(|wanted| &m.metric_name == wanted)
                })
                .map(|m| {
                    let value = latest.iter().find(|l| l.metric == m.metric_name);
                    json!({
                        "metric": m.metric_name,
                        "value": value.map(|v| to_json(&v.value).unwrap_or(Json::Null)),
                        "unit": m.metric_unit,
                        "source_time": value.map(|v| v.source_time.to_rfc3339()),
                        "origin": value.map(|v| v.origin),
                        "quality": rule.quality(value.map(|v| v.source_time), now),
                    })
                })
                .collect();
            Ok(Json::Array(rows))
        }
        Request::History {
            device,
            metric,
            since,
            until,
            limit,
        } => {
            let (start, end) = history_window(&since, until.as_deref(), Timestamp::now())?;
            let query = HistoryQuery {
                device_id: device,
                metric,
                start,
                end,
                limit: limit.unwrap_or(DEFAULT_HISTORY_LIMIT),
                reverse: false,
                resume: None,
            };
            let page = storage.history(query).await.map_err(storage_error)?;
            Ok(json!({ "rows": to_json(&page.rows)?, "more": page.resume.is_some() }))
        }
        Request::CommandSend {
            device,
            command,
            value,
        } => {
            let json_value = |command_type| convert_json(&value, command_type);
            let new = prepare(
                &ctx.config,
                &device,
                &command,
                &json_value,
                format!("ctl:uid={}", peer.uid),
            )
            .map_err(|e| ErrorBody::bad_request(format!("field `{}`: {e}", e.field())))?;
            let record = storage.enqueue_command(new).await.map_err(storage_error)?;
            to_json(&record)
        }
        Request::CommandList { device, limit } => {
            let filter = CommandFilter {
                device_id: device,
                states: None,
                limit: limit.unwrap_or(DEFAULT_COMMAND_LIST_LIMIT),
            };
            let records = storage.commands(filter).await.map_err(storage_error)?;
            to_json(&records)
        }
        Request::LogLevel { filter } => {
            let Some(log) = &ctx.log else {
                return Err(ErrorBody::new(
                    ErrorCode::Unavailable,
                    "logging is not controllable in this process",
                ));
            };
            log.set_filter(&filter)
                .map_err(|e| ErrorBody::bad_request(format!("field `filter`: {e}")))?;
            info!(
                event = "log_level_changed",
                level = filter.as_str(),
                by_uid = peer.uid
            );
            Ok(json!({ "filter": filter }))
        }
    }
}
