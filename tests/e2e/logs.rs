//! Captures the tracing output of in-process tests, one buffer per test.
//!
//! Actors run on many threads, so a thread-local subscriber would miss most lines, and one
//! global buffer would mix the lines of tests running in parallel (a test counting events would
//! count its neighbours'). Every `#[tokio::test]` builds its own runtime, and every line an actor
//! of a test logs is written from a thread of that runtime: one global subscriber files each line
//! under the id of the runtime that wrote it. Lines written outside any runtime are not kept.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::runtime::{Handle, Id};

type Buffer = Arc<Mutex<Vec<u8>>>;

/// The buffers of the tests that called [`capture`], by the id of their runtime.
static BUFFERS: OnceLock<Mutex<HashMap<Id, Buffer>>> = OnceLock::new();

fn buffers() -> &'static Mutex<HashMap<Id, Buffer>> {
    BUFFERS.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,h2=info,hyper=info,tower=info,tonic=info,opcua_server=info,opcua_client=info,opcua_core=info,opcua_crypto=info,opcua_types=info",
            ))
            .with_ansi(false)
            .with_writer(|| Sink)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        Mutex::new(HashMap::new())
    })
}

/// The buffer of the test whose runtime runs the calling thread, if it captures.
fn current_buffer() -> Option<Buffer> {
    let id = Handle::try_current().ok()?.id();
    buffers().lock().unwrap().get(&id).cloned()
}

struct Sink;

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(buffer) = current_buffer() {
            buffer.lock().unwrap().extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing the lines of the calling test (idempotent; call it from the test's runtime).
pub fn capture() {
    let id = Handle::current().id();
    buffers().lock().unwrap().entry(id).or_default();
}

/// Everything logged so far by the calling test.
pub fn text() -> String {
    current_buffer()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

/// Log lines carrying `event="<name>"` and mentioning `needle`.
pub fn events(name: &str, needle: &str) -> Vec<String> {
    let tag = format!("event=\"{name}\"");
    text()
        .lines()
        .filter(|l| l.contains(&tag) && l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Two tests running at once each see only their own lines.
#[test]
fn each_test_sees_only_the_lines_of_its_own_runtime() {
    let run = |name: &'static str| {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            runtime.block_on(async move {
                capture();
                // Logged from another task on another worker, as an actor would.
                tokio::spawn(async move {
                    for _ in 0..20 {
                        tracing::info!(event = "log_capture_probe", test = name);
                        tokio::task::yield_now().await;
                    }
                })
                .await
                .unwrap();
                events("log_capture_probe", "")
            })
        })
    };
    let (first, second) = (run("first"), run("second"));
    for (name, lines) in [
        ("first", first.join().unwrap()),
        ("second", second.join().unwrap()),
    ] {
        assert_eq!(lines.len(), 20, "{lines:?}");
        let other = if name == "first" { "second" } else { "first" };
        assert!(
            lines.iter().all(|l| l.contains(name) && !l.contains(other)),
            "{lines:?}"
        );
    }
}
