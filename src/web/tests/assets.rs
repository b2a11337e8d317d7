//! Static files: from `[web].static_dir` with content types and ETags, never outside it.

use std::os::unix::fs::symlink;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::{header, Method, StatusCode};

use super::support::*;
use crate::web::assets::Assets;

async fn text(response: axum::response::Response) -> String {
    body_text(response).await
}

#[tokio::test]
async fn a_static_dir_serves_its_files_with_type_and_etag() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>console</h1>").unwrap();
    std::fs::create_dir(dir.path().join("js")).unwrap();
    std::fs::write(dir.path().join("js/app.js"), "export {};").unwrap();
    let assets = Assets::from_dir(dir.path()).unwrap();
    let response = assets.serve(&Method::GET, "/", &HeaderMap::new()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    let etag = response.headers()[header::ETAG].clone();
    assert_eq!(text(response).await, "<h1>console</h1>");
    let response = assets
        .serve(&Method::GET, "/js/app.js", &HeaderMap::new())
        .await;
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );

    let mut conditional = HeaderMap::new();
    conditional.insert(header::IF_NONE_MATCH, etag.clone());
    let response = assets
        .serve(&Method::GET, "/index.html", &conditional)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    // A changed file has another tag.
    std::fs::write(dir.path().join("index.html"), "<h1>console 2</h1>").unwrap();
    let response = assets
        .serve(&Method::GET, "/index.html", &conditional)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(response.headers()[header::ETAG], etag);
}

#[tokio::test]
async fn nothing_outside_the_static_dir_is_served() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.txt"), "ok").unwrap();
    symlink(
        outside.path().join("secret.txt"),
        dir.path().join("link.txt"),
    )
    .unwrap();
    symlink(outside.path(), dir.path().join("linkdir")).unwrap();
    std::fs::write(dir.path().join("ok-target.txt"), "inside").unwrap();
    symlink(
        dir.path().join("ok-target.txt"),
        dir.path().join("inner-link.txt"),
    )
    .unwrap();
    let assets = Assets::from_dir(dir.path()).unwrap();
    for path in [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/link.txt",
        "/linkdir/secret.txt",
        "/inner-link.txt",
        "//etc/passwd",
        "/./ok.txt",
        "/js/",
    ] {
        let response = assets.serve(&Method::GET, path, &HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!text(response).await.contains("s3cret"));
    }
    let response = assets
        .serve(&Method::GET, "/ok.txt", &HeaderMap::new())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = assets
        .serve(&Method::POST, "/ok.txt", &HeaderMap::new())
        .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_router_serves_pages_to_a_session_only() {
    // Embedded assets: whatever this build holds is served to a session, never to a stranger.
    let app = App::new();
    let (session, _) = app.sign_in().await;
    for path in Assets::embedded_paths() {
        if crate::web::auth::is_public_asset(path) {
            continue;
        }
        assert_eq!(
            app.send(get(path)).await.status(),
            StatusCode::SEE_OTHER,
            "{path}"
        );
        assert_eq!(
            app.send(cookie(get(path), &session)).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let _ = Body::empty();
}
