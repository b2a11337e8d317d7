//! Embeds the web console's files (`static/`) into the binary: generates a table of
//! `(url path, bytes, content type, etag)` with `include_bytes!`, read by `src/web/assets.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=static");
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let static_dir = root.join("static");
    let mut files = Vec::new();
    if static_dir.is_dir() {
        collect(&static_dir, &mut files);
    }
    files.sort();
    let mut table = String::from("pub static EMBEDDED: &[(&str, &[u8], &str, &str)] = &[\n");
    for file in &files {
        let relative = file
            .strip_prefix(&static_dir)
            .expect("collected under static/");
        let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let etag = format!("\"{:016x}\"", fnv1a(&bytes));
        writeln!(
            table,
            "    ({url:?}, include_bytes!({:?}), {:?}, {etag:?}),",
            file.to_string_lossy(),
            content_type(file)
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web_assets.rs");
    fs::write(&out, table).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        // Symlinks are not followed: what is embedded is what the tree holds.
        if kind.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else if kind.is_file() && path.file_name().is_some_and(|n| n != "README.md") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
}

/// Must match `content_type` in src/web/assets.rs.
fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Same as `etag_of` in src/web/assets.rs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
