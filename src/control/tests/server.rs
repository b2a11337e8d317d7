use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use crate::control::{
    serve_admitted, serve_connection, AuthRejection, ConnectionEnd, ErrorBody, ErrorCode, Request,
    Response, ServeOptions, TokenVerifier, MAX_FRAME_BYTES,
};

pub(super) const TOKEN: &str = "s3cret-s3cret-s3cret-s3cret";

/// Answers as a daemon would, with a few scripted failures.
pub(super) async fn scripted_handler(request: Request) -> Result<Value, ErrorBody> {
    match request {
        Request::Status => Ok(json!({"version": "test"})),
        Request::Reload => Err(ErrorBody::new(
            ErrorCode::Unavailable,
            "reload actor restarting",
        )),
        Request::Read { device, .. } if device == "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Value::Null)
        }
        Request::Read { device, metric } => Ok(json!({"device": device, "metric": metric})),
        _ => Ok(Value::Null),
    }
}

fn fast_options() -> ServeOptions {
    ServeOptions {
        auth_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    }
}

/// A connected pair: the test's end, and the server's end served in a task.
fn start(options: ServeOptions) -> (BufReader<UnixStream>, JoinHandle<ConnectionEnd>) {
    let (client, server) = UnixStream::pair().unwrap();
    let task = tokio::spawn(async move {
        let (read_half, write_half) = server.into_split();
        let verifier = TokenVerifier::new(TOKEN);
        serve_connection(
            BufReader::new(read_half),
            write_half,
            &verifier,
            &options,
            scripted_handler,
        )
        .await
    });
    (BufReader::new(client), task)
}

/// Everything the server sends until it closes (a reset after the last frame counts as close:
/// the server may close with our unread bytes still queued).
async fn read_until_closed(peer: &mut BufReader<UnixStream>) -> String {
    let mut received = Vec::new();
    let _ = peer.read_to_end(&mut received).await;
    String::from_utf8(received).unwrap()
}

async fn exchange(peer: &mut BufReader<UnixStream>, line: &str) -> Value {
    peer.get_mut().write_all(line.as_bytes()).await.unwrap();
    read_line(peer).await
}

async fn read_line(peer: &mut BufReader<UnixStream>) -> Value {
    let mut line = String::new();
    peer.read_line(&mut line).await.unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[tokio::test]
async fn any_first_frame_but_a_good_auth_gets_one_auth_failed_frame_and_a_closed_connection() {
    let cases = [
        (
            "{\"id\":1,\"type\":\"status\"}\n".to_string(),
            AuthRejection::NotAuthFrame,
        ),
        (
            format!("{{\"type\":\"auth\",\"token\":\"{TOKEN}x\"}}\n"),
            AuthRejection::WrongToken,
        ),
        (
            "{\"type\":\"auth\",\"token\":\"\"}\n".to_string(),
            AuthRejection::WrongToken,
        ),
        (
            format!("{{\"type\":\"auth\",\"token\":\"{TOKEN}\",\"x\":1}}\n"),
            AuthRejection::NotAuthFrame,
        ),
        ("hello\n".to_string(), AuthRejection::NotAuthFrame),
    ];
    for (first, reason) in cases {
        let (mut peer, task) = start(fast_options());
        peer.get_mut().write_all(first.as_bytes()).await.unwrap();
        // A second request must not be answered either.
        let _ = peer
            .get_mut()
            .write_all(b"{\"id\":2,\"type\":\"status\"}\n")
            .await;
        assert_eq!(
            read_until_closed(&mut peer).await,
            Response::auth_failed().to_line(),
            "{first}"
        );
        assert_eq!(
            task.await.unwrap(),
            ConnectionEnd::AuthRejected(reason),
            "{first}"
        );
    }
}

#[tokio::test]
async fn a_silent_peer_is_refused_when_the_auth_timeout_expires() {
    let (mut peer, task) = start(fast_options());
    let started = Instant::now();
    assert_eq!(
        read_until_closed(&mut peer).await,
        Response::auth_failed().to_line()
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        task.await.unwrap(),
        ConnectionEnd::AuthRejected(AuthRejection::Timeout)
    );
}

#[tokio::test]
async fn an_oversized_first_frame_is_refused_without_waiting_for_its_end() {
    let (peer, task) = start(fast_options());
    let (read_half, mut write_half) = peer.into_inner().into_split();
    let writer = tokio::spawn(async move {
        let _ = write_half.write_all(&vec![b'{'; 4 * MAX_FRAME_BYTES]).await;
        write_half
    });
    let mut received = Vec::new();
    let _ = BufReader::new(read_half).read_to_end(&mut received).await;
    assert_eq!(
        String::from_utf8(received).unwrap(),
        Response::auth_failed().to_line()
    );
    assert!(matches!(
        task.await.unwrap(),
        ConnectionEnd::AuthRejected(AuthRejection::BadFrame(_))
    ));
    drop(writer.await);
}

#[tokio::test]
async fn a_peer_that_leaves_before_authenticating_is_logged_as_closed() {
    let (mut peer, task) = start(fast_options());
    peer.get_mut().shutdown().await.unwrap();
    assert_eq!(
        read_until_closed(&mut peer).await,
        Response::auth_failed().to_line()
    );
    assert_eq!(
        task.await.unwrap(),
        ConnectionEnd::AuthRejected(AuthRejection::Closed)
    );
}

#[tokio::test]
async fn an_authenticated_session_answers_every_request_in_order_echoing_its_id() {
    let (mut peer, task) = start(fast_options());
    let auth = format!("{{\"id\":\"a\",\"type\":\"auth\",\"token\":\"{TOKEN}\"}}\n");
    assert_eq!(
        exchange(&mut peer, &auth).await,
        json!({"id": "a", "ok": true, "result": {"authenticated": true}})
    );
    // Pipelined in one write, with noise between the requests.
    let batch = concat!(
        "{\"id\":1,\"type\":\"status\"}\n",
        "\n",
        "{\"id\":\"two\",\"type\":\"read\",\"device\":\"tank\"}\n",
        "{\"id\":3,\"type\":\"reload\"}\n",
        "{\"id\":4,\"type\":\"explode\"}\n",
        "{\"id\":5,\"type\":\"history\",\"device\":\"d\"}\n",
        "not json\n",
    );
    peer.get_mut().write_all(batch.as_bytes()).await.unwrap();
    peer.get_mut().write_all(b"\xff\xfe\n").await.unwrap();
    peer.get_mut()
        .write_all(b"{\"type\":\"status\"}\n")
        .await
        .unwrap();

    assert_eq!(
        read_line(&mut peer).await,
        json!({"id": 1, "ok": true, "result": {"version": "test"}})
    );
    assert_eq!(
        read_line(&mut peer).await,
        json!({"id": "two", "ok": true, "result": {"device": "tank", "metric": null}})
    );
    assert_eq!(
        read_line(&mut peer).await,
        json!({"id": 3, "ok": false, "error": {"code": "unavailable", "message": "reload actor restarting"}})
    );
    let unknown = read_line(&mut peer).await;
    assert_eq!(
        (unknown["id"].clone(), unknown["error"]["code"].clone()),
        (json!(4), json!("unknown_command"))
    );
    let bad = read_line(&mut peer).await;
    assert_eq!(
        (bad["id"].clone(), bad["error"]["code"].clone()),
        (json!(5), json!("bad_request"))
    );
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`metric`"));
    let not_json = read_line(&mut peer).await;
    assert_eq!(
        (not_json.get("id"), not_json["error"]["code"].clone()),
        (None, json!("bad_request"))
    );
    let not_utf8 = read_line(&mut peer).await;
    assert_eq!(not_utf8["error"]["code"], json!("bad_request"));
    assert_eq!(
        read_line(&mut peer).await["result"],
        json!({"version": "test"})
    );

    peer.get_mut().shutdown().await.unwrap();
    assert_eq!(read_until_closed(&mut peer).await, "");
    assert_eq!(task.await.unwrap(), ConnectionEnd::Closed);
}

async fn authenticated(
    options: ServeOptions,
) -> (BufReader<UnixStream>, JoinHandle<ConnectionEnd>) {
    let (mut peer, task) = start(options);
    let auth = format!("{{\"type\":\"auth\",\"token\":\"{TOKEN}\"}}\n");
    assert_eq!(exchange(&mut peer, &auth).await["ok"], json!(true));
    (peer, task)
}

#[tokio::test]
async fn a_slow_request_is_answered_timeout_and_the_session_goes_on() {
    let (mut peer, _task) = authenticated(fast_options()).await;
    let answer = exchange(
        &mut peer,
        "{\"id\":9,\"type\":\"read\",\"device\":\"slow\"}\n",
    )
    .await;
    assert_eq!(
        (answer["id"].clone(), answer["error"]["code"].clone()),
        (json!(9), json!("timeout"))
    );
    let answer = exchange(&mut peer, "{\"id\":10,\"type\":\"status\"}\n").await;
    assert_eq!(answer["ok"], json!(true));
}

#[tokio::test]
async fn an_oversized_request_is_answered_bad_request_then_the_connection_closes() {
    let (peer, task) = authenticated(fast_options()).await;
    let (read_half, mut write_half) = peer.into_inner().into_split();
    let writer = tokio::spawn(async move {
        let _ = write_half.write_all(&vec![b'x'; 4 * MAX_FRAME_BYTES]).await;
        write_half
    });
    let mut received = Vec::new();
    let _ = BufReader::new(read_half).read_to_end(&mut received).await;
    let text = String::from_utf8(received).unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["error"]["code"], json!("bad_request"));
    assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
    assert_eq!(task.await.unwrap(), ConnectionEnd::FrameTooLarge);
    drop(writer.await);
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let options = ServeOptions {
        idle_timeout: Duration::from_millis(100),
        ..fast_options()
    };
    let (mut peer, task) = authenticated(options).await;
    assert_eq!(read_until_closed(&mut peer).await, "");
    assert_eq!(task.await.unwrap(), ConnectionEnd::IdleTimeout);
}

/// A connection whose admission is decided by `admit` (counting how often it is asked).
fn start_admitted(
    admit_ok: bool,
) -> (
    BufReader<UnixStream>,
    JoinHandle<ConnectionEnd>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let (client, server) = UnixStream::pair().unwrap();
    let task = tokio::spawn(async move {
        let (read_half, write_half) = server.into_split();
        let verifier = TokenVerifier::new(TOKEN);
        serve_admitted(
            BufReader::new(read_half),
            write_half,
            &verifier,
            &fast_options(),
            || {
                counter.fetch_add(1, Ordering::SeqCst);
                if admit_ok {
                    Ok(())
                } else {
                    Err(ErrorBody::new(
                        ErrorCode::Unavailable,
                        "too many control connections",
                    ))
                }
            },
            scripted_handler,
        )
        .await
    });
    (BufReader::new(client), task, asked)
}

#[tokio::test]
async fn admission_is_asked_only_after_the_token_and_a_refusal_is_told_to_the_peer() {
    use std::sync::atomic::Ordering;
    // A wrong token never reaches admission: it takes no slot.
    let (mut peer, task, asked) = start_admitted(false);
    peer.get_mut()
        .write_all(b"{\"type\":\"auth\",\"token\":\"wrong\"}\n")
        .await
        .unwrap();
    assert_eq!(
        read_until_closed(&mut peer).await,
        Response::auth_failed().to_line()
    );
    assert!(matches!(
        task.await.unwrap(),
        ConnectionEnd::AuthRejected(_)
    ));
    assert_eq!(asked.load(Ordering::SeqCst), 0);

    // The right token, but no room: one error frame echoing the auth id, then closed.
    let (mut peer, task, asked) = start_admitted(false);
    peer.get_mut()
        .write_all(format!("{{\"id\":7,\"type\":\"auth\",\"token\":\"{TOKEN}\"}}\n").as_bytes())
        .await
        .unwrap();
    let got = read_until_closed(&mut peer).await;
    let frame: Value = serde_json::from_str(got.trim_end()).unwrap();
    assert_eq!(
        frame,
        json!({"id": 7, "ok": false, "error": {"code": "unavailable", "message": "too many control connections"}})
    );
    assert_eq!(
        task.await.unwrap(),
        ConnectionEnd::Refused("too many control connections".into())
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    // Admitted: served as usual.
    let (mut peer, _task, asked) = start_admitted(true);
    let reply = exchange(
        &mut peer,
        &format!("{{\"id\":1,\"type\":\"auth\",\"token\":\"{TOKEN}\"}}\n"),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let status = exchange(&mut peer, "{\"id\":2,\"type\":\"status\"}\n").await;
    assert_eq!(status["result"]["version"], "test");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}
