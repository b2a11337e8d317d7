//! A small HTTP/1.1 client for the web console over a plain TCP socket (after
//! tests/e2e/web_client.rs, which cannot be shared with benches): one keep-alive connection
//! with Basic credentials, and event streams read by a thread that hands every event to a
//! callback, so fifty streams at 10,000 events/s cost the bench little.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// CPU time (user + system) of the calling thread, in microseconds.
fn thread_cpu_micros() -> u64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .map(|usage| {
            let t =
                |tv: nix::sys::time::TimeVal| tv.tv_sec() as u64 * 1_000_000 + tv.tv_usec() as u64;
            t(usage.user_time()) + t(usage.system_time())
        })
        .unwrap_or(0)
}

fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `Basic <base64(user:password)>`.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// One keep-alive connection to the console.
pub struct KeepAlive {
    port: u16,
    authorization: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    pub fn connect(port: u16, authorization: &str) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the console");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        Self {
            port,
            authorization: authorization.to_string(),
            reader: BufReader::new(stream.try_clone().expect("clone the socket")),
            writer: stream,
        }
    }

    /// `GET path` on this connection: the status and the whole body.
    pub fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {}\r\n\r\n",
            self.port, self.authorization
        );
        self.writer
            .write_all(head.as_bytes())
            .expect("send the request");
        let (status, headers) = read_head(&mut self.reader);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            while let Some(chunk) = read_chunk(&mut self.reader) {
                body.extend(chunk);
            }
            // The empty trailer after the last chunk, so the next answer starts clean.
            let mut trailer = String::new();
            self.reader
                .read_line(&mut trailer)
                .expect("read the trailer");
        } else {
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .expect("a Content-Length on a keep-alive answer");
            body.resize(length, 0);
            self.reader.read_exact(&mut body).expect("read the body");
        }
        assert!(
            !header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")),
            "the console closed the keep-alive connection"
        );
        (status, body)
    }
}

/// Opens `GET /api/events` and hands `(event name, data)` of every event to `on_event` on a
/// thread of its own, until the stream ends or `on_event` returns false. The thread's own CPU
/// time goes to `cpu_micros` every 256 chunks, so a bench can tell its clients' CPU from the
/// gateway's.
pub fn open_events(
    port: u16,
    authorization: &str,
    cpu_micros: Arc<AtomicU64>,
    mut on_event: impl FnMut(&str, &str) -> bool + Send + 'static,
) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the console");
    stream
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {authorization}\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("send the request");
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 200, "GET /api/events");
    std::thread::spawn(move || {
        let mut pending: Vec<u8> = Vec::new();
        let mut name = String::new();
        let mut chunks = 0u64;
        while let Some(chunk) = read_chunk(&mut reader) {
            chunks += 1;
            if chunks % 256 == 0 {
                cpu_micros.store(thread_cpu_micros(), Ordering::Relaxed);
            }
            pending.extend(chunk);
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                let line = String::from_utf8_lossy(&pending[start..start + end]);
                let line = line.trim_end();
                if let Some(event) = line.strip_prefix("event:") {
                    name = event.trim().to_string();
                } else if let Some(data) = line.strip_prefix("data:") {
                    if !on_event(&name, data.trim()) {
                        return;
                    }
                    name.clear();
                }
                start += end + 1;
            }
            pending.drain(..start);
        }
    });
}

fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("read the status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a header");
        let line = line.trim_end();
        if line.is_empty() {
            return (status, headers);
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

/// One chunk of a chunked body; `None` at its end (or when the connection closes).
fn read_chunk(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size_line = String::new();
    if reader.read_line(&mut size_line).ok()? == 0 {
        return None;
    }
    let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
    if size == 0 {
        return None;
    }
    let mut chunk = vec![0; size + 2];
    reader.read_exact(&mut chunk).ok()?;
    chunk.truncate(size);
    Some(chunk)
}
