//! The console's pages and scripts: embedded into the binary at build time (`build.rs` walks
//! `static/`), or read from `[web].static_dir` at run time. Served with their content type and
//! an ETag (`If-None-Match` answers 304); `Cache-Control: no-cache` makes browsers revalidate, so
//! an upgrade is seen at once. A run-time directory never serves anything outside itself: `..`,
//! absolute paths and symbolic links are refused.

use std::io;
use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Largest file served from `static_dir`.
pub const MAX_ASSET_BYTES: u64 = 8 * 1024 * 1024;

/// Where assets come from.
#[derive(Debug, Clone)]
pub struct Assets {
    dir: Option<PathBuf>,
}

struct Asset {
    bytes: Vec<u8>,
    content_type: &'static str,
    etag: String,
}

impl Assets {
    /// The files built into the binary.
    pub fn embedded() -> Self {
        Self { dir: None }
    }

    /// The files of `dir` (`[web].static_dir`); it must exist.
    pub fn from_dir(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            dir: Some(dir.canonicalize()?),
        })
    }

    /// Embedded assets unless `static_dir` is set.
    pub fn from_config(static_dir: Option<&Path>) -> io::Result<Self> {
        static_dir.map_or_else(|| Ok(Self::embedded()), Self::from_dir)
    }

    /// URL paths of the embedded files.
    pub fn embedded_paths() -> impl Iterator<Item = &'static str> {
        embedded::EMBEDDED.iter().map(|(path, ..)| *path)
    }

    pub async fn serve(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response {
        if *method != Method::GET && *method != Method::HEAD {
            return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        }
        let path = if path == "/" { "/index.html" } else { path };
        let asset = match &self.dir {
            None => embedded_asset(path),
            Some(dir) => match dir_asset(dir, path).await {
                Ok(asset) => asset,
                Err(error) => {
                    if error.kind() != io::ErrorKind::NotFound {
                        warn!(event = "web_asset_refused", path = %crate::security::sanitize_for_log(path, 256), error = %error, "static file not served");
                    }
                    None
                }
            },
        };
        let Some(asset) = asset else {
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        };
        let etag = HeaderValue::from_str(&asset.etag)
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        let fresh = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == asset.etag || tag.trim() == "*");
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else if *method == Method::HEAD {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()));
            r
        } else {
            Response::new(Body::from(asset.bytes))
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        h.insert(header::ETAG, etag);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

fn embedded_asset(path: &str) -> Option<Asset> {
    embedded::EMBEDDED
        .iter()
        .find(|(p, ..)| *p == path)
        .map(|(_, bytes, content_type, etag)| Asset {
            bytes: bytes.to_vec(),
            content_type,
            etag: (*etag).to_string(),
        })
}

/// The relative path of a URL path, or an error if it could leave the directory.
fn relative_path(url_path: &str) -> io::Result<PathBuf> {
    let refuse = || io::Error::new(io::ErrorKind::PermissionDenied, "path escapes static_dir");
    let trimmed = url_path.strip_prefix('/').ok_or_else(refuse)?;
    if trimmed.is_empty() || trimmed.contains(['\\', '\0']) {
        return Err(refuse());
    }
    let relative = PathBuf::from(trimmed);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(refuse());
    }
    Ok(relative)
}

async fn dir_asset(dir: &Path, url_path: &str) -> io::Result<Option<Asset>> {
    let candidate = dir.join(relative_path(url_path)?);
    // No symbolic link anywhere below the directory (the directory itself was canonicalised).
    let mut walked = dir.to_path_buf();
    for part in candidate
        .strip_prefix(dir)
        .map_err(|_| io::Error::other("not below static_dir"))?
        .components()
    {
        walked.push(part);
        let meta = tokio::fs::symlink_metadata(&walked).await?;
        if meta.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "symbolic links are not served",
            ));
        }
    }
    let canonical = tokio::fs::canonicalize(&candidate).await?;
    if !canonical.starts_with(dir) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "path escapes static_dir",
        ));
    }
    let meta = tokio::fs::metadata(&canonical).await?;
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > MAX_ASSET_BYTES {
        return Err(io::Error::other("file larger than 8 MiB"));
    }
    let bytes = tokio::fs::read(&canonical).await?;
    Ok(Some(Asset {
        etag: format!("\"{:016x}\"", etag_of(&bytes)),
        content_type: content_type(&canonical),
        bytes,
    }))
}

/// Must match `content_type` in build.rs.
pub fn content_type(path: &Path) -> &'static str {
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

/// FNV-1a 64 of the bytes (an ETag needs change detection, not collision resistance).
pub fn etag_of(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
