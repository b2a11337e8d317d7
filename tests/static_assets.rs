//! The browser code vendored under `static/vendor/` (uPlot) is exactly what was published: every
//! file listed in `static/vendor/SHA256SUMS` (`sha256sum` format) hashes to its recorded digest,
//! and every vendored file is listed, so an edit, a truncation or a file slipped in beside the
//! published ones fails here rather than being served to operators' browsers.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files of `static/vendor/` that describe the vendored code rather than being part of it.
const NOT_VENDORED: [&str; 2] = ["SHA256SUMS", "README.md"];

fn vendor_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("static/vendor")
}

/// `sha256sum` lines: `<64 hex digits><two spaces or " *"><relative path>`.
fn parse_sums(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut sums = BTreeMap::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let malformed = || {
            format!(
                "SHA256SUMS line {}: not `<sha256>  <path>`: {line:?}",
                number + 1
            )
        };
        let (digest, rest) = line.split_once(' ').ok_or_else(malformed)?;
        let path = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(malformed)?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) || path.is_empty() {
            return Err(malformed());
        }
        if sums
            .insert(path.to_string(), digest.to_ascii_lowercase())
            .is_some()
        {
            return Err(format!("SHA256SUMS lists {path} twice"));
        }
    }
    Ok(sums)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every regular file under `dir`, as a path relative to `root` with `/` separators.
fn files_under(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let parts: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            out.push(parts.join("/"));
        }
    }
}

#[test]
fn every_vendored_file_matches_its_recorded_sha256() {
    let dir = vendor_dir();
    let text = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap_or_else(|e| panic!("cannot read static/vendor/SHA256SUMS: {e}"));
    let sums = parse_sums(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        sums.keys().any(|p| p.ends_with("uPlot.iife.min.js")),
        "SHA256SUMS must list uPlot (the console's charts)"
    );
    let mismatches: Vec<String> = sums
        .iter()
        .filter_map(|(path, expected)| match std::fs::read(dir.join(path)) {
            Err(e) => Some(format!("{path}: cannot read ({e})")),
            Ok(bytes) => {
                let actual = sha256_hex(&bytes);
                (actual != *expected)
                    .then(|| format!("{path}: sha256 {actual}, SHA256SUMS says {expected}"))
            }
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "vendored browser code differs from what was recorded (re-vendor it as static/vendor/README.md says):\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn every_vendored_file_is_listed_in_sha256sums() {
    let dir = vendor_dir();
    let text = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap_or_else(|e| panic!("cannot read static/vendor/SHA256SUMS: {e}"));
    let sums = parse_sums(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut files = Vec::new();
    files_under(&dir, &dir, &mut files);
    let unlisted: Vec<_> = files
        .iter()
        .filter(|f| !NOT_VENDORED.contains(&f.as_str()) && !sums.contains_key(*f))
        .collect();
    assert!(
        unlisted.is_empty(),
        "files in static/vendor/ not listed in SHA256SUMS: {unlisted:?}"
    );
}

#[test]
fn a_malformed_sums_line_is_refused() {
    assert!(parse_sums("abc  uplot/x.js").is_err());
    assert!(parse_sums(&format!("{}uplot/x.js", "0".repeat(64))).is_err());
    let twice = format!("{0}  a\n{0}  a\n", "0".repeat(64));
    assert!(parse_sums(&twice).is_err());
    let ok = format!(
        "{}  uplot/x.js\n{} *uplot/y.css\n",
        "A".repeat(64),
        "b".repeat(64)
    );
    let parsed = parse_sums(&ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        parsed.get("uplot/x.js").map(String::as_str),
        Some("a".repeat(64).as_str())
    );
    assert_eq!(parsed.len(), 2);
}
