//! The diff files beside the vendored crates (`vendor/<crate>/opcgw.patch`, written by
//! `vendor/diff-against-upstream.sh`) still describe the vendored sources.
//!
//! Without the published crates at hand, this checks the patched side only: every file the
//! diff names exists in the vendored copy and contains, verbatim and in order, the text of every
//! hunk after patching (context and added lines); and every `opcgw patch` marker of the vendored
//! sources is one the diff adds. A patch made to a vendored file without regenerating the diff
//! fails the second check; a diff whose hunks no longer match the source fails the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const CRATES: [&str; 2] = ["async-opcua-server", "async-opcua-crypto"];
const MARKER: &str = "opcgw patch";

/// The patched side of one file of a unified diff: its hunks, as lists of lines.
struct PatchedFile {
    hunks: Vec<Vec<String>>,
    markers_added: usize,
}

fn parse(diff: &str) -> BTreeMap<String, PatchedFile> {
    let mut files = BTreeMap::new();
    let mut current: Option<(String, PatchedFile)> = None;
    for line in diff.lines() {
        if let Some(path) = line.strip_prefix("+++ b/") {
            files.extend(current.take());
            let file = PatchedFile {
                hunks: Vec::new(),
                markers_added: 0,
            };
            current = Some((path.to_string(), file));
        } else if line.starts_with("diff ") || line.starts_with("--- ") {
            continue;
        } else if let Some((_, file)) = current.as_mut() {
            if line.starts_with("@@") {
                file.hunks.push(Vec::new());
            } else if let Some(hunk) = file.hunks.last_mut() {
                if let Some(added) = line.strip_prefix('+') {
                    file.markers_added += added.matches(MARKER).count();
                    hunk.push(added.to_string());
                } else if let Some(context) = line.strip_prefix(' ') {
                    hunk.push(context.to_string());
                } else if line.is_empty() {
                    hunk.push(String::new());
                }
            }
        }
    }
    files.extend(current);
    files
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a vendored directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn each_vendored_crate_has_a_diff_that_matches_its_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in CRATES {
        let dir = root.join("vendor").join(name);
        let diff_path = dir.join("opcgw.patch");
        let diff = std::fs::read_to_string(&diff_path)
            .unwrap_or_else(|e| panic!("{}: {e}", diff_path.display()));
        let files = parse(&diff);
        assert!(!files.is_empty(), "{name}: the diff names no file");
        for (path, patched) in &files {
            let source = std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| {
                panic!("{name}: the diff names {path}, which cannot be read: {e}")
            });
            let lines: Vec<&str> = source.lines().collect();
            let mut from = 0;
            for (n, hunk) in patched.hunks.iter().enumerate() {
                let found = (from..=lines.len().saturating_sub(hunk.len()))
                    .find(|&at| lines[at..at + hunk.len()] == hunk[..]);
                let Some(at) = found else {
                    panic!(
                        "{name}/{path}: hunk {} of opcgw.patch is not in the source; \
                         run vendor/diff-against-upstream.sh",
                        n + 1
                    )
                };
                from = at + hunk.len();
            }
        }
        let mut sources = Vec::new();
        rust_files(&dir.join("src"), &mut sources);
        for source in sources {
            let markers = std::fs::read_to_string(&source)
                .expect("read a vendored source")
                .matches(MARKER)
                .count();
            let path = source
                .strip_prefix(&dir)
                .expect("under the crate")
                .to_string_lossy()
                .into_owned();
            let in_diff = files.get(&path).map_or(0, |f| f.markers_added);
            assert_eq!(
                markers, in_diff,
                "{name}/{path}: {markers} `{MARKER}` markers, the diff adds {in_diff}; \
                 run vendor/diff-against-upstream.sh"
            );
        }
    }
}
