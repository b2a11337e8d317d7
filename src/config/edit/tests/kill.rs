//! kill -9 during writes: a child process replaces the file again and again, alternating two
//! large configurations; killed at random moments, it always leaves exactly one of the two.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::Rng;

use super::*;

const CHILD_ROLE_ENV: &str = "OPCGW_EDIT_TEST_CHILD_ROLE";
const CHILD_FILE_ENV: &str = "OPCGW_EDIT_TEST_CHILD_FILE";
const ROLE: &str = "write_until_killed";

/// Two different files of about 1 MiB each (a write takes long enough for kills to land in it).
fn big_config(variant: char) -> String {
    let mut text = String::from(ODD);
    let line = format!("# {}\n", variant.to_string().repeat(1_000));
    while text.len() < 1 << 20 {
        text.push_str(&line);
    }
    text
}

#[test]
#[ignore = "child-process entry point: run by its parent test, not a test itself"]
fn child_writes_alternately_until_killed() {
    if std::env::var(CHILD_ROLE_ENV).ok().as_deref() != Some(ROLE) {
        return;
    }
    println!();
    let Some(path) = std::env::var_os(CHILD_FILE_ENV) else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let versions = [big_config('a'), big_config('b')];
    for n in 0.. {
        if let Err(err) = write_atomic(&path, versions[n % 2].as_bytes()) {
            println!("failed {err}");
            return;
        }
        println!("wrote {n}");
    }
}

#[test]
fn a_kill_during_a_write_leaves_the_old_file_or_the_new_one_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let versions = [big_config('a'), big_config('b')];
    std::fs::write(&path, &versions[1]).unwrap();
    let exe = std::env::current_exe().unwrap();
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, rest)| rest);
    let mut rng = rand::thread_rng();
    let mut seen = [false, false];
    for _round in 0..12 {
        let mut child = Command::new(&exe)
            .arg(format!("{module}::child_writes_alternately_until_killed"))
            .args(["--ignored", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ROLE_ENV, ROLE)
            .env(CHILD_FILE_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait for a first write, then kill somewhere inside a later one.
        let first = lines
            .by_ref()
            .find_map(|l| l.ok().filter(|l| l.starts_with("wrote ")));
        assert!(first.is_some(), "the child wrote nothing");
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..20_000)));
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        let now = std::fs::read(&path).unwrap();
        let which = versions.iter().position(|v| v.as_bytes() == now.as_slice());
        match which {
            Some(i) => seen[i] = true,
            None => panic!(
                "after a kill the file is neither version ({} bytes)",
                now.len()
            ),
        }
        // What a kill leaves behind is at most a hidden temporary file, never the file itself.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(name == "config.toml" || name.ends_with(".tmp"), "{name}");
        }
    }
    assert!(seen.iter().any(|s| *s));
}
