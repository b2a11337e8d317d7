//! Scenario tests of the configuration contract, one file per concern: loading, the env
//! overlay and secret sources (`sources`), every validation rule (`rules`), how problems are
//! reported (`reports`), what a reload may change and the docs that list it (`reload_docs`), and
//! that no error ever quotes a secret (`no_echo`). The fixture and helpers live here.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

/// The `[chirpstack]` and `[opcua]` sections every fixture of these tests starts with (a
/// macro, so that the fixtures stay string literals through `concat!`).
macro_rules! sections {
    () => {
        r#"
[chirpstack]
server_address = "http://127.0.0.1:8080"
api_token = "test-token-4c8e1f9a"
tenant_id = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"

[opcua]
user_password = "test-password"
"#
    };
}

const BASE: &str = concat!(
    sections!(),
    r#"
[[application]]
application_name = "Water"
application_id = "app-1"

  [[application.device]]
  device_name = "Tank"
  device_id = "0000000000000001"

    [[application.device.read_metric]]
    metric_name = "Level"
    chirpstack_metric_name = "level_cm"
    metric_type = "Float"
    metric_unit = "cm"

    [[application.device.command]]
    command_name = "Valve"
    command_id = 1
    command_port = 10
"#
);

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write_config(toml: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    Fixture { _dir: dir, path }
}

fn load_with(toml: &str, env: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    let fixture = write_config(toml);
    load(&fixture.path, &EnvSnapshot::from_pairs(env.iter().copied()))
}

fn problems(result: Result<LoadedConfig, ConfigError>) -> Vec<ConfigProblem> {
    match result {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
        Ok(_) => panic!("expected validation problems, the configuration loaded"),
    }
}

/// Asserts that replacing `from` by `to` in the base config yields a problem on `key`.
fn assert_rejected(from: &str, to: &str, key: &str) {
    assert!(BASE.contains(from), "fixture does not contain {from:?}");
    let found = problems(load_with(&BASE.replacen(from, to, 1), &[]));
    assert!(
        found.iter().any(|p| p.key == key),
        "{to:?}: expected a problem on {key}, got {found:#?}"
    );
}

/// Asserts that adding `line` to `section` yields a problem on `key`.
fn assert_knob_rejected(section: &str, line: &str, key: &str) {
    let header = format!("[{section}]");
    let toml = if BASE.contains(&header) {
        BASE.replacen(&header, &format!("{header}\n{line}"), 1)
    } else {
        format!("{header}\n{line}\n{BASE}")
    };
    let found = problems(load_with(&toml, &[]));
    assert!(
        found.iter().any(|p| p.key == key),
        "{line}: expected a problem on {key}, got {found:#?}"
    );
}

/// The text of every problem of a refused configuration.
fn error_text(toml: &str, env: &[(&str, &str)]) -> String {
    load_with(toml, env).unwrap_err().to_string()
}

/// "line N," for the 1-based line of `toml` that holds `needle`, as problems print it.
fn line_of(toml: &str, needle: &str) -> String {
    let index = toml
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the fixture"));
    format!("line {},", index + 1)
}

mod includes;
mod no_echo;
mod reload_docs;
mod reports;
mod rules;
mod sources;
mod templates;
