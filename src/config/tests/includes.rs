//! `include = [...]`: a fleet split over files; lists appended in order, problems named in the
//! file that holds them.

use super::*;

const MAIN: &str = concat!(
    r#"
include = ["conf.d/*.toml", "extra/pumps.toml"]
"#,
    sections!(),
    r#"
[[application]]
application_name = "Main"
application_id = "app-main"
"#
);

const SITE_A: &str = r#"
[[device_template]]
name = "tank"

  [[device_template.read_metric]]
  metric_name = "Level"
  chirpstack_metric_name = "level_cm"
  metric_type = "Float"

[[application]]
application_name = "Site A"
application_id = "app-a"

  [[application.device]]
  device_name = "Tank A1"
  device_id = "00000000000000a1"
  template = "tank"
"#;

const SITE_B: &str = r#"
[[application]]
application_name = "Site B"
application_id = "app-b"

  [[application.device]]
  device_name = "Tank B1"
  device_id = "00000000000000b1"
  template = "tank"
"#;

const PUMPS: &str = r#"
[[application]]
application_name = "Pumps"
application_id = "app-p"

  [[application.device]]
  device_name = "Pump 1"
  device_id = "00000000000000c1"

    [[application.device.read_metric]]
    metric_name = "Running"
    chirpstack_metric_name = "running"
    metric_type = "Bool"
"#;

/// A directory with the main file and `files` (relative path, text); the main file's path.
fn fleet(main: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, main).unwrap();
    for (name, text) in files {
        let file = dir.path().join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    (dir, path)
}

fn standard() -> Vec<(&'static str, &'static str)> {
    // b before a on disk order does not matter: a pattern's files are sorted.
    vec![
        ("conf.d/site-b.toml", SITE_B),
        ("conf.d/site-a.toml", SITE_A),
        ("conf.d/notes.txt", "not toml at all ]]]"),
        ("extra/pumps.toml", PUMPS),
    ]
}

#[test]
fn included_files_append_their_lists_in_order_and_share_templates() {
    let (_dir, path) = fleet(MAIN, &standard());
    let loaded = load(&path, &EnvSnapshot::default()).unwrap();
    let ids: Vec<&str> = loaded
        .config
        .applications
        .iter()
        .map(|a| a.application_id.as_str())
        .collect();
    assert_eq!(ids, ["app-main", "app-a", "app-b", "app-p"]);
    // A symbolic link in conf.d is followed (conf.d linking to files kept elsewhere).
    let elsewhere = _dir.path().join("available/site-c.toml");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    std::fs::write(
        &elsewhere,
        SITE_B
            .replace("app-b", "app-c")
            .replace("Site B", "Site C")
            .replace("00000000000000b1", "00000000000000b2"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, _dir.path().join("conf.d/site-c.toml")).unwrap();
    let linked = load(&path, &EnvSnapshot::default()).unwrap();
    assert_eq!(linked.config.applications[3].application_id, "app-c");
    // Site B uses the template defined in site A's file.
    let b1 = &loaded.config.applications[2].devices[0];
    assert_eq!(b1.metrics[0].metric_name, "Level");
    // The environment counts entries across files.
    let env = EnvSnapshot::from_pairs([("OPCGW_APPLICATION__3__APPLICATION_NAME", "Pumps West")]);
    let loaded = load(&path, &env).unwrap();
    assert_eq!(loaded.config.applications[3].application_name, "Pumps West");
}

#[test]
fn a_problem_in_an_included_file_names_that_file_and_its_line() {
    let mut files = standard();
    let broken = PUMPS.replace("metric_type = \"Bool\"", "metric_typ = \"Bool\"");
    files[3].1 = Box::leak(broken.clone().into_boxed_str());
    let (_dir, path) = fleet(MAIN, &files);
    let found = problems(load(&path, &EnvSnapshot::default()));
    let unknown = found
        .iter()
        .find(|p| p.key == "application[3].device[0].read_metric[0].metric_typ")
        .unwrap_or_else(|| panic!("{found:?}"));
    let line = broken
        .lines()
        .position(|l| l.contains("metric_typ ="))
        .unwrap()
        + 1;
    assert!(
        unknown.message.contains("pumps.toml")
            && unknown.message.contains(&format!("line {line},")),
        "{}",
        unknown.message
    );
    // A duplicate id across files is a topology problem like any other, and a rule's problem
    // names the file and line of the value too (site-b.toml is the second file read).
    let mut files = standard();
    files[0].1 = Box::leak(SITE_B.replace("app-b", "app-a").into_boxed_str());
    let (_dir, path) = fleet(MAIN, &files);
    let found = problems(load(&path, &EnvSnapshot::default()));
    let twice = found
        .iter()
        .find(|p| p.key == "application[2].application_id")
        .unwrap_or_else(|| panic!("{found:?}"));
    assert!(
        twice.message.contains("app-a") && twice.message.contains("site-b.toml, line 4,"),
        "{}",
        twice.message
    );
    // A rule's problem on a key the file writes is located at it; one on what a template gave
    // a device (its second metric reads the template's field again) at the nearest entry.
    let mut files = standard();
    let site_a = SITE_A.replace("Tank A1\"", "Tank A1\"\n  stale_threshold_seconds = 0")
        + "\n    [[application.device.read_metric]]\n    metric_name = \"Depth\"\n    \
         chirpstack_metric_name = \"level_cm\"\n    metric_type = \"Float\"\n";
    files[1].1 = Box::leak(site_a.into_boxed_str());
    let (_dir, path) = fleet(MAIN, &files);
    let found = problems(load(&path, &EnvSnapshot::default()));
    let find = |key: &str| {
        found
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("no {key} in {found:?}"))
            .message
            .clone()
    };
    let stale = find("application[1].device[0].stale_threshold_seconds");
    assert!(stale.contains("site-a.toml, line 16, column 3"), "{stale}");
    let twice = find("application[1].device[0].read_metric[1].chirpstack_metric_name");
    assert!(twice.contains("site-a.toml, line 14, column 3"), "{twice}");
}

#[test]
fn included_files_hold_only_lists_and_name_existing_files() {
    let mut files = standard();
    files[3].1 = "[opcua]\nhost_port = 4841\n";
    let (_dir, path) = fleet(MAIN, &files);
    let err = load(&path, &EnvSnapshot::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pumps.toml") && err.contains("opcua") && err.contains("main file"),
        "{err}"
    );
    let mut files = standard();
    files[3].1 = "include = [\"x.toml\"]\n";
    let (_dir, path) = fleet(MAIN, &files);
    let err = load(&path, &EnvSnapshot::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("one level"), "{err}");
    // A file named without a wildcard must exist; a wildcard may match nothing.
    let (_dir, path) = fleet(MAIN, &standard()[..2]);
    let found = problems(load(&path, &EnvSnapshot::default()));
    assert_eq!(found[0].key, "include[1]", "{found:?}");
    let (_dir, path) = fleet(
        &MAIN.replace(
            "\"conf.d/*.toml\", \"extra/pumps.toml\"",
            "\"empty.d/*.toml\"",
        ),
        &[("empty.d/readme.txt", "")],
    );
    assert!(load(&path, &EnvSnapshot::default()).is_ok());
    // A syntax error in an included file names it, and quotes nothing.
    let mut files = standard();
    files[1].1 = "[[application]]\napplication_name = \"secret-looking\n";
    let (_dir, path) = fleet(MAIN, &files);
    let err = load(&path, &EnvSnapshot::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("site-a.toml") && err.contains("line 2"),
        "{err}"
    );
    assert!(!err.contains("secret-looking"), "{err}");
}

#[test]
fn the_console_refuses_to_edit_what_an_included_file_holds() {
    use crate::config::edit::{apply, ConfigEdit, EditError};
    let (_dir, path) = fleet(MAIN, &standard());
    let live = load(&path, &EnvSnapshot::default()).unwrap().config;
    let mut doc: toml_edit::DocumentMut = MAIN.parse().unwrap();
    let delete = ConfigEdit::DeleteDevice {
        application_id: "app-p".into(),
        device_id: "00000000000000c1".into(),
    };
    match apply(&mut doc, &live, &delete) {
        Err(EditError::UnsupportedLayout(text)) => assert!(text.contains("include"), "{text}"),
        other => panic!("{other:?}"),
    }
    // What is nowhere stays "not found".
    let missing = ConfigEdit::DeleteDevice {
        application_id: "app-main".into(),
        device_id: "00000000000000ff".into(),
    };
    assert_eq!(
        apply(&mut doc, &live, &missing).map_err(|e| e.reason()),
        Err("device_not_found")
    );
}
