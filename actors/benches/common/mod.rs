//! What the benchmarks share: percentiles, free ports, and an OPC UA client session.

#![allow(dead_code)] // each bench uses part of it

pub mod http;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ua::client::{ClientBuilder, IdentityToken, Session};
use ua::crypto::SecurityPolicy;
use ua::types::MessageSecurityMode;

/// The `p` percentile (0..=1) of sorted figures.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// An OPC UA session on the None endpoint as `opcua-user`, retried while the server starts,
/// with limits large enough for 10,000-value reads and week-long history pages. The event
/// loop runs until the returned handle is dropped or aborted.
pub async fn opcua_session(
    port: u16,
    password: &str,
    pki: &Path,
    max_message_size: usize,
    max_chunk_count: usize,
) -> (Arc<Session>, tokio::task::JoinHandle<ua::types::StatusCode>) {
    let mut client = ClientBuilder::new()
        .application_name("opcgw-bench-client")
        .application_uri("urn:opcgw:bench-client")
        .pki_dir(pki)
        .create_sample_keypair(true)
        .trust_server_certs(true)
        .session_retry_limit(3)
        .max_message_size(max_message_size)
        .max_chunk_count(max_chunk_count)
        .max_array_length(200_000)
        .client()
        .expect("client");
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    for _ in 0..150 {
        if let Ok((session, event_loop)) = client
            .connect_to_matching_endpoint(
                (
                    url.as_str(),
                    SecurityPolicy::None.to_uri(),
                    MessageSecurityMode::None,
                ),
                IdentityToken::new_user_name("opcua-user", password),
            )
            .await
        {
            let event_loop = event_loop.spawn();
            session.wait_for_connection().await;
            return (session, event_loop);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot connect to the gateway on port {port}");
}
