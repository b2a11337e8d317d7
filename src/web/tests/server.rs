//! The accept loop over real 127.0.0.1 sockets: the connection cap, the header-read timeout,
//! the peer address reaching the handlers, and a graceful stop with an open event stream.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::support::*;
use crate::web::server::{serve, ServeLimits};

fn limits(max_connections: usize, header_read_timeout: Duration) -> ServeLimits {
    ServeLimits {
        max_connections,
        header_read_timeout,
        shutdown_grace: Duration::from_secs(5),
    }
}

async fn start(
    app: &App,
    limits: ServeLimits,
) -> (std::net::SocketAddr, JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(
        listener,
        app.router.clone(),
        limits,
        app.shutdown.clone(),
    ));
    (addr, server)
}

fn authorization(password: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        STANDARD.encode(format!("{USER}:{password}"))
    )
}

/// Sends one request on `stream` and reads until the head and `min_body` bytes are in.
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text.contains("\r\n\r\n") || (text.contains("content-length") && !text.ends_with('}')) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buffer))
            .await
            .expect("an answer in time")
            .unwrap();
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    text
}

/// Whether the server closes `stream` within `within` (EOF or reset, after any bytes).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn health_request() -> String {
    format!(
        "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        authorization(PASSWORD)
    )
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let app = App::new();
    let (addr, _server) = start(&app, limits(1, Duration::from_secs(10))).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(&mut first, &health_request()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut second, Duration::from_secs(2)).await,
        "the second connection is closed"
    );
    drop(first);
    // The freed slot takes a new connection (the first one's task ends shortly after it goes).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(health_request().as_bytes()).await.unwrap();
        let mut buffer = [0u8; 12];
        if matches!(third.read(&mut buffer).await, Ok(n) if n > 0) {
            assert!(buffer.starts_with(b"HTTP/1.1 200"));
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_that_does_not_finish_its_headers_is_cut_off() {
    let app = App::new();
    let (addr, _server) = start(&app, limits(8, Duration::from_millis(300))).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(3)).await,
        "closed after the header timeout"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let app = App::new();
    let (addr, _server) = start(&app, limits(8, Duration::from_secs(10))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        authorization("wrong")
    );
    let answer = exchange(&mut stream, &request).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let refusal = app.shared.audit.recent().remove(0);
    assert_eq!(refusal.source_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_graceful_stop_with_an_open_event_stream_takes_well_under_a_second() {
    let app = App::new();
    let (addr, server) = start(&app, limits(8, Duration::from_secs(10))).await;
    let mut events = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        authorization(PASSWORD)
    );
    let head = exchange(&mut events, &request).await;
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
        "{head}"
    );
    // An idle keep-alive connection too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    exchange(&mut idle, &health_request()).await;

    let started = Instant::now();
    app.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(1), server).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "serve returned: {stopped:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(closed_within(&mut events, Duration::from_secs(1)).await);
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
