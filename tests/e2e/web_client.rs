//! A small HTTP/1.1 client for the console's API over a plain TCP socket (the tests need no
//! HTTP client crate): one request per connection, bodies by length or chunked, and an event
//! stream read line by line in the background.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// A signed-in browser, or a script with Basic credentials.
#[derive(Clone, Debug)]
pub struct WebClient {
    pub port: u16,
    /// `Authorization: Basic ...` when set.
    pub basic: Option<String>,
    /// The session cookie and its CSRF token after [`WebClient::sign_in`].
    pub session: Option<(String, String)>,
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

impl WebClient {
    pub fn anonymous(port: u16) -> Self {
        Self {
            port,
            basic: None,
            session: None,
        }
    }

    pub fn basic(port: u16, user: &str, password: &str) -> Self {
        Self {
            basic: Some(base64(format!("{user}:{password}").as_bytes())),
            ..Self::anonymous(port)
        }
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Signs in with `POST /api/session` and keeps the cookie and CSRF token.
    pub fn sign_in(port: u16, user: &str, password: &str) -> Self {
        let mut client = Self::anonymous(port);
        let answer = client.send(
            "POST",
            "/api/session",
            Some(&serde_json::json!({"user": user, "password": password}).to_string()),
        );
        assert_eq!(answer.status, 200, "sign-in: {answer:?}");
        let cookie = answer
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let csrf = answer.json()["csrf_token"]
            .as_str()
            .expect("a CSRF token")
            .to_string();
        client.session = Some((cookie, csrf));
        client
    }

    fn request_head(&self, method: &str, path: &str, body: Option<&str>) -> String {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        if let Some(basic) = &self.basic {
            head.push_str(&format!("Authorization: Basic {basic}\r\n"));
        }
        if let Some((cookie, csrf)) = &self.session {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
            if method != "GET" {
                head.push_str(&format!("X-CSRF-Token: {csrf}\r\n"));
            }
        }
        if method != "GET" {
            head.push_str(&format!(
                "Origin: {}\r\nContent-Type: application/json\r\n",
                self.origin()
            ));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        head
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the console");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        stream
    }

    pub fn send(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let mut stream = self.connect();
        let mut request = self.request_head(method, path, body).into_bytes();
        request.extend_from_slice(body.unwrap_or_default().as_bytes());
        stream.write_all(&request).expect("send the request");
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader);
        let chunked = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let mut body = Vec::new();
        if chunked {
            while let Some(chunk) = read_chunk(&mut reader) {
                body.extend(chunk);
            }
        } else {
            reader.read_to_end(&mut body).expect("read the body");
        }
        Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, None)
    }

    pub fn get_json(&self, path: &str) -> Value {
        let answer = self.get(path);
        assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
        answer.json()
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.send("POST", path, Some(&body.to_string()))
    }

    /// Opens `GET /api/events`; its lines arrive on the returned stream.
    pub fn events(&self) -> EventStream {
        let mut stream = self.connect();
        stream
            .set_read_timeout(None)
            .expect("no read timeout on the stream");
        stream
            .write_all(self.request_head("GET", "/api/events", None).as_bytes())
            .expect("send the request");
        let mut reader = BufReader::new(stream.try_clone().expect("clone the socket"));
        let (status, headers) = read_head(&mut reader);
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            while let Some(chunk) = read_chunk(&mut reader) {
                pending.extend(chunk);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    if lines_tx.send(text).is_err() {
                        return;
                    }
                }
            }
            // The end of the stream: the sender drops, the receiver sees it closed.
        });
        EventStream {
            status,
            headers,
            lines,
            _socket: stream,
        }
    }
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

/// An open `GET /api/events`.
pub struct EventStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    lines: mpsc::Receiver<String>,
    _socket: TcpStream,
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

impl EventStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next event (comments skipped) within `timeout`; `Err(true)` if the stream ended,
    /// `Err(false)` on timeout.
    pub fn next_event(&self, timeout: Duration) -> Result<Event, bool> {
        let deadline = Instant::now() + timeout;
        let mut name = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(false),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(true),
            };
            if let Some(event) = line.strip_prefix("event:") {
                name = Some(event.trim().to_string());
            } else if let Some(data) = line.strip_prefix("data:") {
                let data = serde_json::from_str(data.trim()).expect("event data is JSON");
                return Ok(Event {
                    name: name.take().unwrap_or_else(|| "message".into()),
                    data,
                });
            }
        }
    }

    /// Waits for an event named `name` whose data satisfies `matches`.
    pub fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Ok(event) if event.name == name && matches(&event.data) => return event.data,
                Ok(event) => seen.push(event.name),
                Err(ended) => panic!(
                    "no matching {name:?} event (stream {}); saw {seen:?}",
                    if ended { "ended" } else { "timed out" }
                ),
            }
        }
    }

    /// True if the stream ends within `timeout` (events before the end are skipped).
    pub fn ends_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}
