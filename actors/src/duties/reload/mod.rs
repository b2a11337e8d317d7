//! The reload actor: owner of the live configuration. SIGHUP, `ctl reload` and web edits all
//! arrive in its mailbox, so reloads are serialised by construction.
//!
//! A reload re-reads the file through the same figment chain as start-up, validates it,
//! classifies every change (hot / restart-required / topology), and only then swaps and
//! broadcasts. Anything wrong keeps the old configuration.
//!
//! Console edits (`edit.rs`) go through the same path: the edited text is validated, written
//! atomically and then applied as a reload of exactly those bytes.

mod discovery;
mod edit;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use opcgw::config::edit::{content_hash, ConfigWriter, ContentHash};
use opcgw::config::{self, AppConfig, ConfigDiff, ConfigError, EnvSnapshot};
use opcgw::security::sanitize_for_log;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use crate::cli::logging::LogControl;
use crate::tree::duty::DutyBase;
use crate::tree::messages::{
    ConfigUpdate, DiscoverTrigger, ReloadFailure, ReloadMsg, ReloadOutcome, ReloadTrigger,
};
use crate::tree::supervisor::SupervisorMsg;
pub use discovery::starting_config;
use discovery::DiscoveryState;

pub const ROLE: &str = "reload";

/// Longest error text in a `config_reload_failed` event or reply.
const MAX_ERROR_CHARS: usize = 1_000;

pub struct ReloadActor;

pub struct ReloadArgs {
    pub config_path: PathBuf,
    /// The environment the process started with: reloads see the same overrides.
    pub env: EnvSnapshot,
    pub log: Option<LogControl>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub config: ConfigUpdate,
    /// How an edit replaces the file: `write_atomic`, or a test double that fails on demand.
    pub write: ConfigWriter,
    /// The hash of the bytes the starting configuration (generation 0) was loaded from.
    pub initial_hash: Option<ContentHash>,
    /// The configuration those bytes give, before the discovered devices were merged in.
    pub initial_file: Option<Arc<AppConfig>>,
}

pub struct ReloadState {
    base: DutyBase,
    config_path: PathBuf,
    env: EnvSnapshot,
    log: Option<LogControl>,
    supervisor: ActorRef<SupervisorMsg>,
    /// A reloaded `logging.level`, applied after the outcome is logged (so the outcome is
    /// logged under the level that was live when the reload was asked for).
    pending_log_level: Option<String>,
    /// The hash of the bytes the live configuration was loaded from; `None` when the file on
    /// disk is not known to be them (then every edit is refused as drift until a reload).
    loaded_hash: Option<ContentHash>,
    /// Set when an edit could not restore the previous file: editing stays off until restart.
    poisoned: Option<String>,
    write: ConfigWriter,
    /// The configuration the file gives; the live one is it with the discovered devices.
    file: Arc<AppConfig>,
    discovery: DiscoveryState,
    myself: ActorRef<ReloadMsg>,
}

impl Actor for ReloadActor {
    type Msg = ReloadMsg;
    type State = ReloadState;
    type Arguments = ReloadArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ReloadArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let stale = opcgw::config::edit::remove_stale_temps(&args.config_path);
        if stale > 0 {
            info!(
                event = "config_temp_files_removed",
                files = stale,
                "temporary files of an interrupted configuration write were removed"
            );
        }
        // The binary hands over the hash of the bytes it loaded; otherwise (a restart after a
        // reload, or a tree started without it) the file is parsed again to learn whether it
        // is what runs: tens of MB of transient memory for a 1,000-device file.
        let discovery = DiscoveryState::load(&args.config.config);
        let (loaded_hash, file) = match (args.initial_hash, args.initial_file) {
            (Some(hash), Some(file)) if args.config.generation == 0 => (Some(hash), file),
            _ => baseline(&args.config_path, &args.env, &args.config, &discovery),
        };
        Ok(ReloadState {
            base: DutyBase::new(ROLE, args.config),
            config_path: args.config_path,
            env: args.env,
            log: args.log,
            supervisor: args.supervisor,
            pending_log_level: None,
            loaded_hash,
            poisoned: None,
            write: args.write,
            file,
            discovery,
            myself,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.discover(DiscoverTrigger::Start, None);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ReloadMsg::Common(common) => {
                let path = state.config_path.display().to_string();
                state.base.handle_common(common, |base| {
                    format!(
                        "live configuration generation {} from {path}",
                        base.config.generation
                    )
                })
            }
            ReloadMsg::Discover { trigger, reply } => {
                state.discover(trigger, reply);
                Ok(())
            }
            ReloadMsg::Discovered { result, started } => {
                state.discovered(result, started);
                Ok(())
            }
            ReloadMsg::DiscoverTick { generation } => {
                state.discover_tick(generation);
                Ok(())
            }
            ReloadMsg::Reload { trigger, reply } => {
                let outcome = state.reload(trigger);
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
                Ok(())
            }
            ReloadMsg::Edit { edit, reply } => {
                let _ = reply.send(state.edit(edit));
                Ok(())
            }
            ReloadMsg::Describe { reply } => {
                let _ = reply.send(state.describe());
                Ok(())
            }
        }
    }
}

impl ReloadState {
    /// Reloads the file from disk.
    fn reload(&mut self, trigger: ReloadTrigger) -> ReloadOutcome {
        self.reload_from(trigger, None)
    }

    /// Reloads `text` (the bytes just written by an edit), or the file when `None`.
    fn reload_from(&mut self, trigger: ReloadTrigger, text: Option<String>) -> ReloadOutcome {
        let started = Instant::now();
        let trigger_name = trigger.as_str();
        info!(event = "config_reload_attempted", trigger = trigger_name, path = %self.config_path.display());
        let outcome = self.try_reload(started, text);
        let label = match &outcome {
            ReloadOutcome::Succeeded {
                changed_knobs,
                includes_topology_change,
                ..
            } if changed_knobs.is_empty() && !includes_topology_change => "unchanged",
            ReloadOutcome::Succeeded { .. } => "applied",
            ReloadOutcome::Failed { reason, .. } => reason.as_str(),
        };
        opcgw::metrics::metrics()
            .config_reloads
            .get_or_create(&[("outcome", label)])
            .inc();
        match &outcome {
            ReloadOutcome::Succeeded {
                changed_section_count,
                includes_topology_change,
                duration_ms,
                generation,
                ..
            } => {
                info!(
                    event = "config_reload_succeeded",
                    trigger = trigger_name,
                    changed_section_count,
                    includes_topology_change,
                    duration_ms,
                    generation
                );
            }
            ReloadOutcome::Failed {
                reason,
                changed_knob,
                error,
            } => {
                warn!(
                    event = "config_reload_failed",
                    trigger = trigger_name,
                    reason = reason.as_str(),
                    changed_knob = changed_knob.as_deref().unwrap_or(""),
                    error = error.as_str()
                );
            }
        }
        if let Some(level) = self.pending_log_level.take() {
            self.apply_log_level(&level);
        }
        // SIGHUP refreshes the discovered devices too (whatever became of the reload); a
        // reload or an edit that turns discovery on for an application discovers it at once.
        if trigger == ReloadTrigger::Sighup {
            self.discover(DiscoverTrigger::Sighup, None);
        } else if self.discovers_something_new(&self.file.clone()) {
            self.discover(DiscoverTrigger::Reload, None);
        }
        // The interval may have changed, or discovery been turned on or off.
        self.rearm_if_changed();
        outcome
    }

    fn try_reload(&mut self, started: Instant, text: Option<String>) -> ReloadOutcome {
        let failed = |reason, changed_knob, error: String| ReloadOutcome::Failed {
            reason,
            changed_knob,
            error: sanitize_for_log(&error, MAX_ERROR_CHARS),
        };
        // The bytes are read once: what is hashed is exactly what is loaded.
        let text = match text.map_or_else(|| config::read_config_text(&self.config_path), Ok) {
            Ok(text) => text,
            Err(err) => return failed(ReloadFailure::Io, None, err.to_string()),
        };
        let hash = content_hash(text.as_bytes());
        let candidate = match config::load_text(&self.config_path, text, &self.env) {
            Ok(loaded) => loaded.config,
            Err(err @ ConfigError::Io { .. }) => {
                return failed(ReloadFailure::Io, None, err.to_string())
            }
            Err(ConfigError::Invalid { problems, .. }) => {
                let text = problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return failed(ReloadFailure::Validation, None, text);
            }
        };
        let candidate = Arc::new(candidate);
        let topology = self.discovery.topology.clone().for_config(&candidate);
        let merged = discovery::merged_or_file(&candidate, &topology);
        let diff = ConfigDiff::between(&self.base.config.config, &merged);
        if let Some(knob) = diff.first_restart_required() {
            let error = format!(
                "{} cannot change while the gateway runs; restart opcgw to apply it",
                knob.key
            );
            return failed(
                ReloadFailure::RestartRequired,
                Some(knob.key.clone()),
                error,
            );
        }
        self.loaded_hash = Some(hash);
        self.file = candidate;
        let changed_section_count = diff.changed_sections().len();
        let includes_topology_change = diff.includes_topology_change();
        let changed_knobs: Vec<String> = diff.changes.iter().map(|c| c.key.clone()).collect();
        if diff.changed("logging.level") {
            self.pending_log_level = Some(merged.logging.level.clone());
        }
        self.make_live(merged, diff);
        ReloadOutcome::Succeeded {
            changed_section_count,
            includes_topology_change,
            duration_ms: started.elapsed().as_millis() as u64,
            changed_knobs,
            generation: self.base.config.generation,
        }
    }

    /// Makes `config` the live configuration (when `diff` says it differs) and hands it to
    /// every actor.
    fn make_live(&mut self, config: Arc<AppConfig>, diff: ConfigDiff) {
        // An empty diff can still differ: which devices are discovered rather than written.
        if diff.is_empty() && *self.base.config.config == *config {
            return;
        }
        {
            if diff.includes_topology_change() {
                let t = &diff.topology;
                info!(
                    event = "topology_change_detected",
                    added_devices = t.added_devices.len(),
                    removed_devices = t.removed_devices.len(),
                    modified_devices = t.modified_devices.len(),
                    added_applications = t.added_applications.len(),
                    removed_applications = t.removed_applications.len()
                );
            }
            let update = ConfigUpdate {
                config,
                diff: Arc::new(diff),
                generation: self.base.config.generation + 1,
            };
            self.base.config = update.clone();
            // The supervisor hands it to every child and keeps it for children started later.
            if let Err(err) = self.supervisor.cast(SupervisorMsg::Broadcast(update)) {
                warn!(event = "config_broadcast_failed", error = %err);
            }
        }
    }

    fn apply_log_level(&self, level: &str) {
        let Some(log) = &self.log else { return };
        match log.apply_config_level(level) {
            Ok(true) => info!(event = "log_level_changed", level),
            Ok(false) => info!(
                event = "log_level_pinned",
                "OPCGW_LOG_LEVEL is set; it keeps precedence over logging.level"
            ),
            Err(err) => warn!(event = "log_level_change_failed", error = err.as_str()),
        }
    }
}

/// The hash of the file on disk and the configuration it gives, when the live configuration
/// is what it gives with the discovered devices merged in (after a restart of this actor, it
/// must be). Otherwise no hash (edits wait for a reload) and the live configuration without
/// its discovered devices stands in for the file's.
fn baseline(
    path: &std::path::Path,
    env: &EnvSnapshot,
    live: &ConfigUpdate,
    discovery: &DiscoveryState,
) -> (Option<ContentHash>, Arc<AppConfig>) {
    let unknown = || {
        if live.config.discovered.is_empty() {
            return Arc::clone(&live.config);
        }
        let mut file = (*live.config).clone();
        for app in &mut file.applications {
            app.devices
                .retain(|d| !live.config.discovered.contains(&d.device_id));
        }
        file.discovered.clear();
        Arc::new(file)
    };
    let text = match config::read_config_text(path) {
        Ok(text) => text,
        Err(err) => {
            info!(event = "config_edit_baseline_unknown", error = %err);
            return (None, unknown());
        }
    };
    let hash = content_hash(text.as_bytes());
    match config::load_text(path, text, env).map(|loaded| Arc::new(loaded.config)) {
        Ok(file)
            if *discovery::merged_or_file(&file, &discovery.topology.clone().for_config(&file))
                == *live.config =>
        {
            (Some(hash), file)
        }
        _ => {
            info!(
                event = "config_edit_baseline_unknown",
                path = %path.display(),
                "the file on disk is not the live configuration; console edits wait for a reload"
            );
            (None, unknown())
        }
    }
}
