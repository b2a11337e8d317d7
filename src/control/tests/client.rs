use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use super::server::{scripted_handler, TOKEN};
use crate::control::{
    parse_request, serve_connection, ClientError, ControlClient, ErrorCode, Request, Response,
    ServeOptions, TokenVerifier, EXIT_AUTH_FAILED, EXIT_ERROR, EXIT_UNREACHABLE,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A daemon stand-in: the library's own connection loop behind a real listener.
struct TestDaemon {
    _dir: tempfile::TempDir,
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn socket_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctl.sock");
    (dir, path)
}

fn daemon() -> TestDaemon {
    let (dir, path) = socket_path();
    let listener = UnixListener::bind(&path).unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read_half, write_half) = stream.into_split();
                let verifier = TokenVerifier::new(TOKEN);
                serve_connection(
                    BufReader::new(read_half),
                    write_half,
                    &verifier,
                    &ServeOptions::default(),
                    scripted_handler,
                )
                .await
            });
        }
    });
    TestDaemon {
        _dir: dir,
        path,
        task,
    }
}

/// A hand-written daemon that accepts one connection and runs `script` on it.
fn scripted_daemon<F, Fut>(script: F) -> (tempfile::TempDir, PathBuf, JoinHandle<()>)
where
    F: FnOnce(tokio::net::UnixStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (dir, path) = socket_path();
    let listener = UnixListener::bind(&path).unwrap();
    let task = tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            script(stream).await;
        }
    });
    (dir, path, task)
}

#[tokio::test]
async fn a_client_authenticates_and_gets_results_and_error_responses() {
    let daemon = daemon();
    let mut client = ControlClient::connect(&daemon.path, TOKEN, TIMEOUT)
        .await
        .unwrap();

    let status = client.request(&Request::Status).await.unwrap();
    assert_eq!(status.id, Some(json!(1)));
    assert_eq!(status.result, Some(json!({"version": "test"})));

    let read = client
        .request(&Request::Read {
            device: "tank".into(),
            metric: Some("level".into()),
        })
        .await
        .unwrap();
    assert_eq!(read.id, Some(json!(2)));
    assert_eq!(
        read.result,
        Some(json!({"device": "tank", "metric": "level"}))
    );

    let reload = client.request(&Request::Reload).await.unwrap();
    assert!(!reload.ok);
    assert_eq!(reload.error.unwrap().code, ErrorCode::Unavailable);
}

#[tokio::test]
async fn a_wrong_token_is_auth_failed_with_exit_code_2() {
    let daemon = daemon();
    let err = ControlClient::connect(&daemon.path, "not-the-token", TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::AuthFailed);
    assert_eq!(err.exit_code(), EXIT_AUTH_FAILED);
    assert!(!err.to_string().contains("not-the-token"));
}

#[tokio::test]
async fn a_missing_or_stale_socket_is_unreachable_with_exit_code_3() {
    let (_dir, path) = socket_path();
    let err = ControlClient::connect(&path, TOKEN, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable(_)), "{err:?}");
    assert_eq!(err.exit_code(), EXIT_UNREACHABLE);
    assert!(err.to_string().contains("ctl.sock"), "{err}");

    // A socket file whose listener is gone refuses connections.
    drop(UnixListener::bind(&path).unwrap());
    assert!(Path::new(&path).exists());
    let err = ControlClient::connect(&path, TOKEN, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out() {
    let (_dir, path, _task) = scripted_daemon(|stream| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let started = std::time::Instant::now();
    let err = ControlClient::connect(&path, TOKEN, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::Timeout);
    assert_eq!(err.exit_code(), EXIT_ERROR);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn late_answers_to_other_ids_are_skipped() {
    let (_dir, path, _task) = scripted_daemon(|stream| async move {
        let (read_half, mut write_half) = stream.into_split();
        let mut reader = BufReader::new(read_half);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let auth_id = serde_json::from_str::<Value>(&line).unwrap()["id"].clone();
        let answer = Response::authenticated(Some(auth_id)).to_line();
        write_half.write_all(answer.as_bytes()).await.unwrap();
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let envelope = parse_request(&line).unwrap();
        let stale = Response::ok(Some(json!(999)), json!("stale")).to_line();
        let fresh = Response::ok(envelope.id, json!("fresh")).to_line();
        write_half.write_all(stale.as_bytes()).await.unwrap();
        write_half.write_all(fresh.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut client = ControlClient::connect(&path, TOKEN, TIMEOUT).await.unwrap();
    let response = client.request(&Request::Devices).await.unwrap();
    assert_eq!(response.result, Some(json!("fresh")));
}

#[tokio::test]
async fn garbage_from_the_daemon_is_a_protocol_error() {
    let (_dir, path, _task) = scripted_daemon(|mut stream| async move {
        stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let err = ControlClient::connect(&path, TOKEN, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    assert_eq!(err.exit_code(), EXIT_ERROR);
}

#[tokio::test]
async fn a_request_too_large_for_a_frame_is_refused_before_sending() {
    let daemon = daemon();
    let mut client = ControlClient::connect(&daemon.path, TOKEN, TIMEOUT)
        .await
        .unwrap();
    let err = client
        .request(&Request::LogLevel {
            filter: "x".repeat(crate::control::MAX_FRAME_BYTES),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    // The connection is still usable.
    assert!(client.request(&Request::Status).await.unwrap().ok);
}
