//! Captures the tracing output of in-process tests (actors run on many threads, so a global
//! subscriber is installed once for the whole test binary).

use std::io::Write;
use std::sync::{Mutex, OnceLock};

static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

struct Sink;

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(buffer) = BUFFER.get() {
            buffer.lock().unwrap().extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (idempotent).
pub fn capture() {
    if BUFFER.set(Mutex::new(Vec::new())).is_ok() {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,h2=info,hyper=info,tower=info,tonic=info,opcua_server=info,opcua_client=info,opcua_core=info,opcua_crypto=info,opcua_types=info",
            ))
            .with_ansi(false)
            .with_writer(|| Sink)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
}

/// Everything logged so far by this test binary.
pub fn text() -> String {
    BUFFER
        .get()
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
