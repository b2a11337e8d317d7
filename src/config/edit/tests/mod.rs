//! Scenario tests of the editor: byte-for-byte round trips on the shipped example file and on a
//! hand-written one, preconditions, validation in the request's terms, environment locks, the
//! atomic write (with a child process killed mid-write), editing status and the console view.
//!
//! The kill -9 scenario re-executes this test binary: its child entry point is an `#[ignore]`d
//! test selected by the parent with `--ignored --exact` and an environment variable naming the
//! role, as in `storage::tests`. Run without the role, it returns at once.

mod commit;
mod document;
mod file;
mod kill;
mod locks;
mod view;

use std::path::Path;

use super::*;
use crate::config::{load_text, AppConfig, EnvSnapshot, MetricType};

/// The shipped example, every knob documented: the file operators start from.
const EXAMPLE: &str = include_str!("../../../../config/config.example.toml");

/// A hand-written file: tabs, odd spacing, trailing comments, comments between tables, keys
/// out of the usual order, sections after the application tree.
const ODD: &str = "# opcgw on the pump station\n\
[chirpstack]\n\
server_address   =   \"http://127.0.0.1:8080\"   # the local network server\n\
tenant_id=\"52f14cd4-c6f1-4fbd-8f87-4025e1d49242\"\n\
\n\
[[application]]   # first application\n\
application_id = \"app-1\"\n\
application_name = \"Pumps\"\n\
\n\
\t[[application.device]]\n\
\t# the north pump\n\
\tdevice_id = \"dev-a\"\n\
\tdevice_name = \"North\"  # renamed in 2024\n\
\n\
\t\t[[application.device.read_metric]]\n\
\t\tmetric_name = \"Flow\"\n\
\t\tchirpstack_metric_name = \"flow\"   # l/min\n\
\t\tmetric_type = \"float\"\n\
\n\
\t\t[[application.device.command]]\n\
\t\tcommand_name = \"Run\"\n\
\t\tcommand_id = 1\n\
\t\tcommand_port = 12\n\
\n\
# ---- the south pump ----\n\
\t[[application.device]]\n\
\tdevice_id = \"dev-b\"\n\
\tdevice_name = \"South\"\n\
\tstale_threshold_seconds = 600\n\
\n\
\t\t[[application.device.read_metric]]\n\
\t\tmetric_name = \"Flow\"\n\
\t\tchirpstack_metric_name = \"flow\"\n\
\t\tmetric_type = \"Float\"\n\
\t\tmetric_unit = \"l/min\" # unit shown in SCADA\n\
\n\
\t\t[[application.device.read_metric]]\n\
\t\tmetric_name = \"Pressure\"\n\
\t\tchirpstack_metric_name = \"bar\"\n\
\t\tmetric_type = \"Float\"\n\
\n\
[[application]]\n\
application_id = \"app-2\"\n\
application_name = \"Spare\"\n\
\n\
[storage]   # keep a month\n\
retention_days = 30\n\
\n\
# end of file\n";

const TEST_TOKEN: &str = "edit-test-chirpstack-token-5d2e";
const TEST_PASSWORD: &str = "edit-test-opcua-password-8a41";

fn env() -> EnvSnapshot {
    EnvSnapshot::from_pairs([
        ("OPCGW_CHIRPSTACK__API_TOKEN", TEST_TOKEN),
        ("OPCGW_OPCUA__USER_PASSWORD", TEST_PASSWORD),
    ])
}

fn env_with(extra: &[(&str, &str)]) -> EnvSnapshot {
    let mut pairs = vec![
        ("OPCGW_CHIRPSTACK__API_TOKEN", TEST_TOKEN),
        ("OPCGW_OPCUA__USER_PASSWORD", TEST_PASSWORD),
    ];
    pairs.extend_from_slice(extra);
    EnvSnapshot::from_pairs(pairs)
}

/// The configuration `text` loads as (with the test secrets in the environment).
fn live(text: &str) -> AppConfig {
    match load_text(Path::new("config.toml"), text.to_string(), &env()) {
        Ok(loaded) => loaded.config,
        Err(err) => panic!("the test file does not load: {err}"),
    }
}

/// `text` after `edit`, validated as a load would.
fn edited(text: &str, edit: ConfigEdit) -> Result<String, EditError> {
    prepare_edit(Path::new("config.toml"), text, &live(text), &env(), &edit).map(|p| p.text)
}

fn ok(text: &str, edit: ConfigEdit) -> String {
    match edited(text, edit.clone()) {
        Ok(text) => text,
        Err(err) => panic!("{edit:?} was refused: {err}"),
    }
}

fn metric(name: &str, upstream: &str) -> crate::config::MetricConfig {
    crate::config::MetricConfig {
        metric_name: name.into(),
        chirpstack_metric_name: upstream.into(),
        metric_type: MetricType::Float,
        metric_unit: None,
    }
}

fn command(name: &str, id: u32) -> crate::config::CommandConfig {
    crate::config::CommandConfig {
        command_name: name.into(),
        command_id: id,
        command_confirmed: false,
        command_port: 10,
        command_type: MetricType::Int,
        command_min: None,
        command_max: None,
    }
}

fn device(id: &str, name: &str) -> DeviceSpec {
    DeviceSpec {
        device_id: id.into(),
        device_name: name.into(),
        stale_threshold_seconds: None,
        read_metric: vec![metric("Level", "level"), metric("Temp", "temp")],
        command: vec![command("Reset", 7)],
    }
}

/// The lines that differ between two texts of the same line count.
fn changed_lines<'a>(before: &'a str, after: &'a str) -> Vec<(&'a str, &'a str)> {
    assert_eq!(
        before.lines().count(),
        after.lines().count(),
        "line count changed:\n{after}"
    );
    before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect()
}
