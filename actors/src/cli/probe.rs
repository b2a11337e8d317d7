//! `opcgw probe`: asks a running gateway's metrics listener whether it is alive (`/healthz`)
//! or ready (`/readyz`) and exits 0 or 1, for container health checks in images without curl
//! (Docker `HEALTHCHECK`). One HTTP/1.1 GET over a plain TCP socket, bounded in time and size.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::Args;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The metrics listener (`[metrics].bind_address:port`; 0.0.0.0 is asked on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:9464", env = "OPCGW_PROBE_ADDRESS")]
    pub address: String,
    /// Ask `/readyz` (every actor running) instead of `/healthz` (the process answers).
    #[arg(long)]
    pub ready: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Longest answer read: the probes answer a line.
const MAX_ANSWER_BYTES: u64 = 4096;

/// 0 when the probe answered 200, 1 otherwise (with the reason on stderr).
pub fn run_probe(args: &ProbeArgs) -> u8 {
    let path = if args.ready { "/readyz" } else { "/healthz" };
    match probe(
        &args.address,
        path,
        Duration::from_secs(args.timeout.max(1)),
    ) {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("opcgw probe {path} at {}: {reason}", args.address);
            1
        }
    }
}

fn probe(address: &str, path: &str, timeout: Duration) -> Result<(), String> {
    let mut target: SocketAddr = address
        .to_socket_addrs()
        .map_err(|e| format!("not an address: {e}"))?
        .next()
        .ok_or("not an address")?;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut stream =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut answer = String::new();
    stream
        .take(MAX_ANSWER_BYTES)
        .read_to_string(&mut answer)
        .map_err(|e| format!("no answer: {e}"))?;
    let status = answer.lines().next().unwrap_or_default();
    if status.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
        Err(format!("{status}: {body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn answer_once(reply: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            stream.write_all(reply.as_bytes()).unwrap();
        });
        address
    }

    #[test]
    fn a_200_passes_anything_else_fails_with_the_reason() {
        let ok = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
        assert_eq!(probe(&ok, "/healthz", Duration::from_secs(2)), Ok(()));
        let not_ready = answer_once(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 24\r\n\r\nnot ready: opcua: Backoff\n",
        );
        let error = probe(&not_ready, "/readyz", Duration::from_secs(2)).unwrap_err();
        assert!(
            error.contains("503") && error.contains("not ready: opcua"),
            "{error}"
        );
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = probe(&closed.to_string(), "/healthz", Duration::from_secs(2)).unwrap_err();
        assert!(error.starts_with("cannot connect"), "{error}");
    }
}
