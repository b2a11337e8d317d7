//! The file on disk: content hash, atomic replacement, and whether editing is on.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::*;

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_content_hash_tells_files_apart() {
    assert_eq!(content_hash(ODD.as_bytes()), content_hash(ODD.as_bytes()));
    assert_ne!(
        content_hash(ODD.as_bytes()),
        content_hash(EXAMPLE.as_bytes())
    );
    let mut touched = ODD.to_string();
    touched.push(' ');
    assert_ne!(
        content_hash(ODD.as_bytes()),
        content_hash(touched.as_bytes())
    );
    assert_eq!(content_hash(b"").to_string().len(), 64);
}

#[test]
fn an_atomic_write_replaces_the_bytes_keeps_the_mode_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, ODD).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    write_atomic(&path, EXAMPLE.as_bytes()).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), EXAMPLE);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    assert_eq!(entries(dir.path()), ["config.toml"]);
}

#[test]
fn an_atomic_write_through_a_symbolic_link_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.toml");
    let link = dir.path().join("config.toml");
    std::fs::write(&real, ODD).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    write_atomic(&link, EXAMPLE.as_bytes()).unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), EXAMPLE);
}

#[test]
fn a_failed_atomic_write_leaves_the_file_and_says_which_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, ODD).unwrap();
    // A directory where the temporary file would go cannot take a file.
    let missing = dir.path().join("gone").join("config.toml");
    let err = write_atomic(&missing, b"x").unwrap_err();
    assert_eq!(err.reason(), "io");
    assert!(err.to_string().contains("gone"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ODD);
}

#[test]
fn editing_is_on_for_a_writable_file_and_off_for_a_read_only_file_or_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, ODD).unwrap();
    assert_eq!(
        editing_status(&path),
        EditingStatus {
            enabled: true,
            reason: None
        }
    );
    assert_eq!(
        entries(dir.path()),
        ["config.toml"],
        "the probe left a file"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let status = editing_status(&path);
    assert!(!status.enabled);
    let reason = status.reason.unwrap();
    assert!(
        reason.contains("read-only") && reason.contains("config.toml"),
        "{reason}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let status = editing_status(&path);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!status.enabled);
    assert!(status.reason.unwrap().contains("directory"));

    let status = editing_status(&dir.path().join("missing.toml"));
    assert!(!status.enabled);
}

/// Unmounts what it mounted, even when the test fails.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A read-only mount refuses every write, root's included: only an actual attempt shows it.
/// Needs the right to mount (root with CAP_SYS_ADMIN, as on this project's machines); where it
/// is missing the test says SKIPPED and the permission-bit test above still covers the rest.
#[test]
fn editing_is_off_on_a_read_only_mount_even_for_root() {
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("config.toml"), ODD).unwrap();
    let target = tempfile::tempdir().unwrap();
    let bound = Command::new("mount")
        .args(["--bind"])
        .arg(source.path())
        .arg(target.path())
        .status()
        .is_ok_and(|s| s.success());
    if !bound {
        // A container without CAP_SYS_ADMIN (or without `mount`) cannot make the case; the
        // permission-bit test still runs. Said loudly so a run that skips it is visible.
        eprintln!(
            "SKIPPED editing_is_off_on_a_read_only_mount_even_for_root: cannot bind-mount here \
             (needs root with CAP_SYS_ADMIN); the permission-bit cases still ran"
        );
        return;
    }
    let _mount = Mount(target.path().to_path_buf());
    let remounted = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(target.path())
        .status()
        .unwrap();
    assert!(remounted.success());
    let path = target.path().join("config.toml");
    // The bits still say writable: the file system is what refuses.
    assert_ne!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o222,
        0
    );
    let status = editing_status(&path);
    assert!(!status.enabled, "a read-only mount passed as writable");
    assert!(status.reason.unwrap().contains("Read-only file system"));
    assert_eq!(write_atomic(&path, b"x").unwrap_err().reason(), "io");
}

/// Temporary files a killed writer left are removed at start; this process's own, other
/// files with similar names and directories stay.
#[test]
fn temporary_files_of_a_killed_writer_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "x").unwrap();
    let own = format!(".config.toml.{}.00000000000000aa.tmp", std::process::id());
    let names = [
        ".config.toml.4242.0123456789abcdef.tmp", // a killed writer's: goes
        ".config.toml.77.fedcba9876543210.tmp",   // another one: goes
        own.as_str(),                             // this process's: stays
        ".config.toml.4242.0123.tmp",             // not a name write_atomic makes
        ".other.toml.4242.0123456789abcdef.tmp",  // another file's
        "config.toml.4242.0123456789abcdef.tmp",  // not hidden
    ];
    for name in names {
        std::fs::write(dir.path().join(name), "partial").unwrap();
    }
    std::fs::create_dir(dir.path().join(".config.toml.9.0123456789abcdef.tmp")).unwrap();
    assert_eq!(remove_stale_temps(&path), 2);
    let left = entries(dir.path());
    assert!(!left
        .iter()
        .any(|n| n.contains("4242.0123456789abcdef") && n.starts_with(".config")));
    assert!(!left.iter().any(|n| n.contains(".77.")));
    for name in &names[2..] {
        assert!(left.contains(&name.to_string()), "{name} stays: {left:?}");
    }
    assert!(left.contains(&".config.toml.9.0123456789abcdef.tmp".to_string()));
    assert!(left.contains(&"config.toml".to_string()));
}
