//! The control actor: the authenticated local control plane behind `opcgw ctl`.
//!
//! A unix socket (mode 0600, or 0660 with a group) speaks newline-delimited JSON; the first
//! frame must carry the token within 5 s, and an unauthenticated peer never gets anything but
//! `auth_failed` (protocol in `opcgw::control`). Each connection is served by its own task,
//! owned by the accept loop, owned by this actor's state: a crash takes them all down, the
//! restarted actor finds the socket file stale and binds it again.
//!
//! Files: `socket` binds the socket and serves connections; `commands/` answers requests, one
//! file per ctl command.

mod commands;
mod socket;

use std::path::PathBuf;
use std::sync::Arc;

use opcgw::config::AppConfig;
use opcgw::control::{resolve_token, TokenVerifier};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use tracing::info;

pub use socket::bind_socket;

use crate::cli::logging::LogControl;
use crate::tree::duty::DutyBase;
use crate::tree::gateway::TreeHandle;
use crate::tree::messages::{Common, ConfigUpdate, ControlMsg, Peers};
use crate::tree::supervisor::SupervisorMsg;
use crate::tree::task::OwnedTask;
use socket::accept_loop;

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
    tree: TreeHandle,
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
            tree: TreeHandle {
                supervisor: args.supervisor,
            },
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
