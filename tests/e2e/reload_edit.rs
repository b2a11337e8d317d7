//! Console edits through the real reload actor (in a real supervisor) on a real file in a temp
//! dir: written and live, drift, rollback, poisoning, read-only, and edits racing reloads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opcgw::config::edit::{
    ConfigEdit, ConfigView, ConfigWriter, DeviceSpec, EditError, EditOutcome,
};
use opcgw::config::{self, AppConfig, EnvSnapshot, MetricConfig, MetricType};
use opcgw_actors::duties::reload;
use opcgw_actors::tree::backoff::SupervisorPolicy;
use opcgw_actors::tree::child::actor_child;
use opcgw_actors::tree::gateway::{gateway_children, Tree, TreeOptions};
use opcgw_actors::tree::messages::{Common, ConfigUpdate, ReloadMsg, ReloadOutcome, ReloadTrigger};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::support::{gateway_env, MINIMAL_CONFIG};

const CALL: Duration = Duration::from_secs(10);

/// A child that keeps the last configuration the supervisor broadcast: the live configuration
/// every other actor receives.
struct Observer(Arc<Mutex<Option<ConfigUpdate>>>);

impl Actor for Observer {
    type Msg = Common;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Common>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Common>,
        message: Common,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let Common::ConfigChanged(update) = message {
            *self.0.lock().unwrap() = Some(update);
        }
        Ok(())
    }
}

struct Gateway {
    tree: Tree,
    live: Arc<Mutex<Option<ConfigUpdate>>>,
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Gateway {
    async fn start(text: &str, env: Vec<(&str, String)>, writer: Option<ConfigWriter>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, text, env, writer).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        text: &str,
        env: Vec<(&str, String)>,
        writer: Option<ConfigWriter>,
    ) -> Self {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let env = EnvSnapshot::from_pairs(env);
        let config = config::load(&path, &env)
            .expect("the test config loads")
            .config;
        let options = TreeOptions {
            config_path: path.clone(),
            env,
            config_writer: writer,
            ..TreeOptions::default()
        };
        let live = Arc::new(Mutex::new(None));
        let observed = live.clone();
        let mut children: Vec<_> = gateway_children(&options)
            .into_iter()
            .filter(|c| c.name() == reload::ROLE)
            .collect();
        children.insert(
            0,
            actor_child("observer", move |_| (Observer(observed.clone()), ())),
        );
        let tree = Tree::start_with(
            children,
            SupervisorPolicy::from_config(&config.supervisor),
            ConfigUpdate::initial(Arc::new(config)),
            vec![],
        )
        .await
        .expect("tree starts");
        Self {
            tree,
            live,
            dir,
            path,
        }
    }

    async fn reload_actor(&self) -> ActorRef<ReloadMsg> {
        self.tree
            .handle
            .lookup(reload::ROLE)
            .await
            .expect("the reload actor runs")
    }

    async fn edit(&self, edit: ConfigEdit) -> Result<EditOutcome, EditError> {
        let actor = self.reload_actor().await;
        actor
            .call(|reply| ReloadMsg::Edit { edit, reply }, Some(CALL))
            .await
            .expect("the reload actor answers")
            .success_or(())
            .expect("the reload actor answers in time")
    }

    async fn view(&self) -> ConfigView {
        let actor = self.reload_actor().await;
        actor
            .call(|reply| ReloadMsg::Describe { reply }, Some(CALL))
            .await
            .unwrap()
            .success_or(())
            .unwrap()
    }

    fn file(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }

    /// The configuration the other actors were last given, waiting a moment for the broadcast.
    async fn live_devices(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let live = self.live.lock().unwrap().clone();
        live.map(|u| devices(&u.config)).unwrap_or_default()
    }

    async fn stop(self) {
        self.tree.handle.shutdown(Duration::from_secs(5)).await;
    }
}

fn devices(config: &AppConfig) -> Vec<String> {
    config.devices().map(|(_, d)| d.device_id.clone()).collect()
}

fn new_device(id: &str) -> ConfigEdit {
    ConfigEdit::CreateDevice {
        application_id: "app-1".into(),
        device: DeviceSpec {
            device_id: id.into(),
            device_name: format!("Device {id}"),
            stale_threshold_seconds: None,
            read_metric: vec![MetricConfig {
                metric_name: "Level".into(),
                chirpstack_metric_name: "level".into(),
                metric_type: MetricType::Float,
                metric_unit: None,
            }],
            command: vec![],
        },
    }
}

#[tokio::test]
async fn a_console_edit_is_written_goes_live_and_refuses_a_file_changed_behind_its_back() {
    let gateway = Gateway::start(MINIMAL_CONFIG, gateway_env(), None).await;
    assert!(gateway.view().await.editing.enabled);

    let outcome = gateway.edit(new_device("dev-2")).await.unwrap();
    assert_eq!(outcome.generation, 1);
    let written = gateway.file();
    assert!(
        written.starts_with(MINIMAL_CONFIG),
        "the rest of the file changed"
    );
    assert!(written.contains("device_id = \"dev-2\""));
    assert_eq!(gateway.live_devices().await, ["0000000000000001", "dev-2"]);
    assert_eq!(gateway.view().await.generation, 1);

    // Someone edits the file by hand: the console's edit is refused, nothing is written.
    let by_hand = format!("{written}# edited by hand\n");
    std::fs::write(&gateway.path, &by_hand).unwrap();
    let refused = gateway.edit(new_device("dev-3")).await.unwrap_err();
    assert_eq!(refused, EditError::AmbientDrift);
    assert_eq!(gateway.file(), by_hand);
    // After a reload the edit goes through, on top of the hand edit.
    let reloaded = gateway
        .tree
        .handle
        .reload(ReloadTrigger::Ctl)
        .await
        .unwrap();
    assert!(matches!(reloaded, ReloadOutcome::Succeeded { .. }));
    gateway.edit(new_device("dev-3")).await.unwrap();
    assert!(gateway.file().contains("# edited by hand\n"));

    // A read-only directory turns editing off, with the reason.
    let dir_path = gateway.dir.path().to_path_buf();
    set_mode(&dir_path, 0o555);
    let view = gateway.view().await;
    let refused = gateway.edit(new_device("dev-4")).await;
    set_mode(&dir_path, 0o755);
    assert!(!view.editing.enabled);
    assert!(view.editing.reason.unwrap().contains("directory"));
    assert_eq!(refused.unwrap_err().reason(), "editing_disabled");
    gateway.stop().await;
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn an_edit_that_does_not_validate_leaves_the_file_and_the_live_configuration() {
    let gateway = Gateway::start(MINIMAL_CONFIG, gateway_env(), None).await;
    let mut bad = new_device("dev/2");
    if let ConfigEdit::CreateDevice { device, .. } = &mut bad {
        device.read_metric[0].metric_name = String::new();
    }
    match gateway.edit(bad).await {
        Err(EditError::Validation { problems }) => {
            let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
            assert!(fields.contains(&"device_id"), "{fields:?}");
            assert!(fields.contains(&"read_metric[0].metric_name"), "{fields:?}");
        }
        other => panic!("expected validation problems, got {other:?}"),
    }
    assert_eq!(gateway.file(), MINIMAL_CONFIG);
    assert_eq!(gateway.view().await.generation, 0);
    gateway.stop().await;
}

/// A config whose ChirpStack token comes from a file: changing the file's content after start
/// makes every reload refuse (the token is restart-required), though the edit itself validates.
fn token_file_config(dir: &Path) -> (String, PathBuf) {
    let token = dir.join("chirpstack.token");
    std::fs::write(&token, "first-token-0c9a6e2f47b1d3").unwrap();
    set_mode(&token, 0o600);
    let text = MINIMAL_CONFIG.replace(
        "polling_frequency = 10\n",
        &format!(
            "polling_frequency = 10\napi_token_file = \"{}\"\n",
            token.display()
        ),
    );
    (text, token)
}

fn env_without_token() -> Vec<(&'static str, String)> {
    gateway_env()
        .into_iter()
        .filter(|(k, _)| *k != "OPCGW_CHIRPSTACK__API_TOKEN")
        .collect()
}

#[tokio::test]
async fn an_edit_the_reload_refuses_is_rolled_back_to_the_previous_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (text, token) = token_file_config(dir.path());
    let gateway = Gateway::start_in(dir, &text, env_without_token(), None).await;
    std::fs::write(&token, "second-token-7d41b09e3c5a22").unwrap();
    match gateway.edit(new_device("dev-2")).await {
        Err(EditError::ReloadFailed(reason)) => {
            assert!(reason.contains("chirpstack.api_token"), "{reason}");
            assert!(!reason.contains("second-token"), "{reason}");
        }
        other => panic!("expected reload_failed, got {other:?}"),
    }
    assert_eq!(gateway.file(), text, "the previous bytes were not restored");
    assert_eq!(gateway.view().await.generation, 0);
    // Not poisoned: once the token file is back, editing works.
    std::fs::write(&token, "first-token-0c9a6e2f47b1d3").unwrap();
    gateway.edit(new_device("dev-2")).await.unwrap();
    gateway.stop().await;
}

static POISON_WRITES: AtomicUsize = AtomicUsize::new(0);

/// Writes the edit, fails every restore (the second write of an edit).
fn failing_restore(path: &Path, bytes: &[u8]) -> Result<(), EditError> {
    if POISON_WRITES.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
        return Err(EditError::Io("injected: the disk is full".into()));
    }
    opcgw::config::edit::write_atomic(path, bytes)
}

#[tokio::test]
async fn a_failed_restore_refuses_this_and_every_later_edit_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (text, token) = token_file_config(dir.path());
    let gateway = Gateway::start_in(dir, &text, env_without_token(), Some(failing_restore)).await;
    std::fs::write(&token, "second-token-7d41b09e3c5a22").unwrap();
    let first = gateway.edit(new_device("dev-2")).await.unwrap_err();
    assert_eq!(first.reason(), "poisoned");
    std::fs::write(&token, "first-token-0c9a6e2f47b1d3").unwrap();
    let later = gateway.edit(new_device("dev-3")).await.unwrap_err();
    assert_eq!(later.reason(), "poisoned");
    let view = gateway.view().await;
    assert!(!view.editing.enabled);
    assert!(view.editing.reason.unwrap().contains("restart"));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_racing_sighup_and_ctl_reloads_never_lose_an_update() {
    const EDITS: usize = 24;
    let gateway = Arc::new(Gateway::start(MINIMAL_CONFIG, gateway_env(), None).await);
    let mut tasks = Vec::new();
    for n in 0..EDITS {
        let g = gateway.clone();
        tasks.push(tokio::spawn(async move {
            g.edit(new_device(&format!("dev-{n:02}"))).await.map(|_| ())
        }));
        let g = gateway.clone();
        let trigger = if n % 2 == 0 {
            ReloadTrigger::Sighup
        } else {
            ReloadTrigger::Ctl
        };
        tasks.push(tokio::spawn(async move {
            match g.tree.handle.reload(trigger).await {
                Ok(ReloadOutcome::Succeeded { .. }) => Ok(()),
                other => panic!("a reload failed: {other:?}"),
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("every edit succeeds");
    }
    let mut expected: Vec<String> = (0..EDITS).map(|n| format!("dev-{n:02}")).collect();
    expected.push("0000000000000001".into());
    expected.sort();
    let env = EnvSnapshot::from_pairs(gateway_env());
    let mut in_file = devices(&config::load(&gateway.path, &env).unwrap().config);
    in_file.sort();
    assert_eq!(in_file, expected, "the file lost an update");
    let mut live = gateway.live_devices().await;
    live.sort();
    assert_eq!(live, expected, "the live configuration lost an update");
    assert_eq!(gateway.view().await.generation, EDITS as u64);
}
