//! Loading and validating a fleet's configuration: `cargo bench -p opcgw --bench config` (in
//! `make bench`). 10,000 devices x 10 metrics written out explicitly, the way a generator or
//! an export from a device registry writes them; prints the time of a load (read, parse,
//! check every key, validate) with the target beside it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use opcgw::config::{load, EnvSnapshot};

const DEVICES: usize = 10_000;
const METRICS: usize = 10;
const APPLICATIONS: usize = 100;
const RUNS: usize = 5;

fn header() -> String {
    "[chirpstack]\nserver_address = \"http://127.0.0.1:8080\"\n\
     api_token = \"bench-token-4c8e1f9a77\"\n\
     tenant_id = \"52f14cd4-c6f1-4fbd-8f87-4025e1d49242\"\n\n\
     [opcua]\nuser_password = \"bench-password-2b8d\"\n\n"
        .to_string()
}

/// The metric list every device has, as `[[<table>]]` entries indented by `indent`.
fn metrics(table: &str, indent: &str) -> String {
    let mut out = String::new();
    for m in 0..METRICS {
        let _ = write!(
            out,
            "{indent}[[{table}]]\n{indent}metric_name = \"m{m}\"\n\
             {indent}chirpstack_metric_name = \"field_{m}\"\n{indent}metric_type = \"Float\"\n\
             {indent}metric_unit = \"u\"\n\n"
        );
    }
    out
}

/// The `[[application]]` tables of applications `range`: every device with its metrics
/// written out, or naming `template`.
fn applications(range: std::ops::Range<usize>, template: Option<&str>) -> String {
    let device_metrics = metrics("application.device.read_metric", "    ");
    let mut out = String::new();
    for a in range {
        let _ = write!(
            out,
            "[[application]]\napplication_name = \"Site {a}\"\napplication_id = \"app-{a:03}\"\n\n"
        );
        for d in 0..DEVICES / APPLICATIONS {
            let id = a * (DEVICES / APPLICATIONS) + d;
            let _ = write!(
                out,
                "  [[application.device]]\n  device_name = \"Sensor {id}\"\n  device_id = \"{id:016x}\"\n"
            );
            match template {
                Some(name) => {
                    let _ = write!(out, "  template = \"{name}\"\n\n");
                }
                None => {
                    out.push('\n');
                    out.push_str(&device_metrics);
                }
            }
        }
    }
    out
}

fn timed(runs: usize, mut f: impl FnMut()) -> String {
    let mut took: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    took.sort();
    format!(
        "median {:.0} ms, min {:.0} ms, max {:.0} ms",
        took[took.len() / 2].as_secs_f64() * 1e3,
        took[0].as_secs_f64() * 1e3,
        took[took.len() - 1].as_secs_f64() * 1e3
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = EnvSnapshot::default();
    let one = dir.path().join("one.toml");
    let text = header() + &applications(0..APPLICATIONS, None);
    std::fs::write(&one, &text).expect("write");
    println!(
        "{DEVICES} devices x {METRICS} metrics, explicit, one file of {:.1} MB:",
        text.len() as f64 / 1e6
    );
    println!(
        "  load and validate: {}",
        timed(RUNS, || {
            let loaded = load(&one, &env).expect("loads");
            assert_eq!(loaded.config.devices().count(), DEVICES);
        })
    );

    // The same fleet as a short main file including one file per application.
    let fleet = dir.path().join("fleet");
    std::fs::create_dir_all(fleet.join("conf.d")).expect("dir");
    let main = fleet.join("config.toml");
    std::fs::write(
        &main,
        format!("include = [\"conf.d/*.toml\"]\n\n{}", header()),
    )
    .expect("write");
    for a in 0..APPLICATIONS {
        std::fs::write(
            fleet.join(format!("conf.d/site-{a:03}.toml")),
            applications(a..a + 1, None),
        )
        .expect("write");
    }
    println!("  the same in {APPLICATIONS} included files (conf.d/*.toml):");
    println!(
        "  load and validate: {}   target <= 1 s",
        timed(RUNS, || {
            let loaded = load(&main, &env).expect("loads");
            assert_eq!(loaded.config.devices().count(), DEVICES);
        })
    );

    // With templates: one metric list, 10,000 short device entries.
    let templated = dir.path().join("templated.toml");
    let text = header()
        + "[[device_template]]\nname = \"sensor\"\n\n"
        + &metrics("device_template.read_metric", "  ")
        + &applications(0..APPLICATIONS, Some("sensor"));
    std::fs::write(&templated, &text).expect("write");
    println!(
        "  with one [[device_template]] ({:.1} MB): load and validate: {}",
        text.len() as f64 / 1e6,
        timed(RUNS, || {
            let loaded = load(&templated, &env).expect("loads");
            assert_eq!(loaded.config.devices().count(), DEVICES);
        })
    );
}
