//! The control socket: binding it (with the preflight that tells a running gateway from a
//! stale socket), admitting connections and serving each one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opcgw::control::{
    check_socket_not_in_use, serve_admitted, AdmissionRefused, ConnectionEnd, ConnectionLimits,
    ConnectionTable, ErrorBody, ErrorCode, ServeOptions, Ticket, TokenVerifier,
};
use tokio::io::BufReader;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::commands::handle_request;
use super::Context;

/// Socket preflight: a path that answers belongs to a running opcgw (refuse); one that refuses
/// is a stale socket from a crash (replace it); anything that is not a socket is never deleted.
pub fn bind_socket(path: &Path, group: Option<&str>) -> Result<UnixListener, String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(format!("control socket path {} exists and is not a socket; remove it or set [control].socket_path", path.display()));
        }
        check_socket_not_in_use(path).map_err(|e| e.to_string())?;
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
pub(super) async fn accept_loop(
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

/// The connecting process's uid and pid, as the kernel reports them (SO_PEERCRED).
#[derive(Debug, Clone, Copy)]
pub(super) struct Caller {
    pub(super) uid: u32,
    pid: Option<i32>,
}

async fn serve(
    stream: UnixStream,
    verifier: &TokenVerifier,
    ticket: Arc<Ticket>,
    context: watch::Receiver<Context>,
) {
    let peer = match stream.peer_cred() {
        Ok(cred) => Caller {
            uid: cred.uid(),
            pid: cred.pid(),
        },
        Err(_) => Caller {
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
        ConnectionEnd::AuthRejected(reason) => {
            opcgw::metrics::metrics()
                .auth_failures
                .get_or_create(&[("surface", "control")])
                .inc();
            warn!(
                event = "control_auth_failed",
                uid = peer.uid,
                pid = peer.pid.unwrap_or(-1),
                reason = reason.as_str()
            )
        }
        ConnectionEnd::Refused(reason) => warn!(
            event = "control_connection_refused",
            uid = peer.uid,
            pid = peer.pid.unwrap_or(-1),
            reason = reason.as_str()
        ),
        other => debug!(event = "control_connection_closed", uid = peer.uid, end = ?other),
    }
}
