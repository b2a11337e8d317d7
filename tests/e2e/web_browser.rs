//! The operator scenario of tests/browser/console.py in headless Chromium (Debian's `chromium`
//! and `chromium-driver`, driven by Python selenium from `.venv`) against the real binary and
//! the ChirpStack simulator: sign in, a value arrives live, a 24 h chart, a command whose state
//! changes live, sign out and be refused. Screenshots go to `<target>/browser-screenshots`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::opcua_python::{python, workspace};
use crate::support::TEST_PASSWORD;
use crate::web::{console_daemon, demo_config, USER};

fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// Where the screenshots go: next to the other test artefacts in the target directory.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("browser-screenshots")
}

#[test]
fn the_console_works_in_a_real_browser() {
    for tool in ["chromium", "chromedriver"] {
        assert!(
            on_path(tool).is_some(),
            "`{tool}` is not installed: the web console's browser test needs Debian's chromium and chromium-driver; run `make browser-deps` (or `make test`, which installs them)"
        );
    }
    let workdir = crate::support::Workdir::new(&demo_config());
    let daemon = console_daemon(&workdir, &[]);
    let shots = screenshots();
    let output = Command::new(python())
        .arg(workspace().join("tests/browser/console.py"))
        .args([
            "--base-url",
            &format!("http://127.0.0.1:{}/", workdir.web_port()),
        ])
        .args(["--user", USER])
        .arg("--screenshots")
        .arg(&shots)
        // Longer than the simulator's uplink interval (5 s), with room for a loaded machine.
        .args(["--live-timeout", "40", "--timeout", "20"])
        // Not on the command line, where `ps` would show it.
        .env("OPCGW_WEB_PASSWORD", TEST_PASSWORD)
        .output()
        .expect("run tests/browser/console.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser scenario failed (screenshots in {}):\n{stdout}\n{stderr}\n--- gateway log ---\n{}",
        shots.display(),
        daemon.lines().join("\n")
    );
    assert!(stdout.contains("console scenario passed"), "{stdout}");
    for shot in [
        "01-sign-in",
        "04-dashboard",
        "05-device-24h",
        "06-commands",
        "10-signed-out",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).is_file(),
            "no screenshot {shot}"
        );
    }
}
