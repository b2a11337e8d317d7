//! A peer without credentials against the real binary's OPC UA port: a flood of idle TCP
//! connections under a small open-file limit, connections beyond the caps, silent and
//! slow-loris connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use ua::crypto::SecurityPolicy;
use ua::types::{MessageSecurityMode, StatusCode};

use crate::support::{Daemon, Workdir, MINIMAL_CONFIG, TEST_PASSWORD};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One connection attempt from `source` (a loopback address).
async fn connect_from(source: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    match tokio::time::timeout(
        Duration::from_secs(2),
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Opens `count` idle connections to `port` from `source` (the flood must not come from the
/// client's own 127.0.0.1). A connection the server resets at once may fail to connect at
/// all (the reset arrives before the connect completes); those are left out.
async fn open_idle(source: Ipv4Addr, port: u16, count: usize) -> Vec<TcpStream> {
    let mut opened = Vec::with_capacity(count);
    for _ in 0..count {
        match connect_from(source, port).await {
            Ok(stream) => opened.push(stream),
            Err(e) => assert_ne!(
                e.kind(),
                std::io::ErrorKind::TimedOut,
                "the server stopped accepting"
            ),
        }
    }
    opened
}

/// How long until the server ends `stream` (EOF or reset), reading whatever it says first.
async fn time_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn open_descriptors(daemon: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn log_file(workdir: &Workdir) -> String {
    std::fs::read_to_string(workdir.path().join("log/opcgw.log")).unwrap_or_default()
}

#[test]
fn a_flood_of_idle_connections_under_a_1024_descriptor_limit_leaves_room_for_a_real_client() {
    let workdir = Workdir::new(MINIMAL_CONFIG);
    // As systemd sets it by default, and the hard limit too: raising cannot help.
    let daemon = Daemon::start_with_open_file_limit(&workdir, 1024, 1024);
    let limit = daemon.wait_for_events("open_file_limit", 1, Duration::from_secs(30));
    assert!(
        limit[0].contains("soft=1024") && limit[0].contains("hard=1024"),
        "{}",
        limit[0]
    );
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    let port = workdir.opcua_port();

    runtime().block_on(async {
        // 1,600 idle connections from four addresses, held open.
        let mut flood = Vec::new();
        for last in 2..=5u8 {
            flood.extend(open_idle(Ipv4Addr::new(127, 0, 0, last), port, 400).await);
        }
        assert!(flood.len() >= 80, "only {} connected", flood.len());
        let descriptors = open_descriptors(&daemon);
        eprintln!(
            "flood: {} connections held by the test, {descriptors} descriptors in the server",
            flood.len()
        );
        // 4 x 20 admitted (per-address cap) plus the gateway's own files and sockets.
        assert!(
            descriptors < 250,
            "the server holds {descriptors} descriptors during the flood"
        );

        // A real client connects, logs in and reads while the flood is held.
        let start = Instant::now();
        let ua = tokio::time::timeout(
            Duration::from_secs(5),
            crate::ua_client::connect(
                port,
                SecurityPolicy::None,
                MessageSecurityMode::None,
                crate::ua_client::USER,
                TEST_PASSWORD,
            ),
        )
        .await
        .expect("the client did not get in within 5 s during the flood")
        .expect("the client was refused during the flood");
        let level = ua.read("0000000000000001/Level").await;
        assert_eq!(level.status(), StatusCode::BadWaitingForInitialData);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "connect + read took {took:?}"
        );
        ua.close().await;
        // Past the Hello timeout: the admitted idle connections have been closed too.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(open_descriptors(&daemon) < 100);
        drop(flood);
    });

    let refused = daemon.events("opcua_connection_refused");
    assert!(
        !refused.is_empty() && refused.len() <= 2,
        "one line per burst: {refused:#?}"
    );
    assert!(refused[0].contains("reason=\"per_source_connection_limit\""));
    assert!(refused[0].contains("peer=127.0.0."));
    let lines = daemon.lines();
    assert!(
        lines.len() < 300,
        "{} log lines for a flood of 1,600 connections:\n{}",
        lines.len(),
        lines[lines.len().saturating_sub(40)..].join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains("Too many open files")),
        "descriptors ran out"
    );
    let file = log_file(&workdir);
    eprintln!(
        "flood: {} log lines, log file {} bytes",
        lines.len(),
        file.len()
    );
    assert!(
        file.len() < 100_000,
        "the log file grew to {} bytes",
        file.len()
    );
    daemon.signal(Signal::SIGTERM);
}

const CAPPED_CONFIG: &str =
    "[opcua]\nhello_timeout = 2\nmax_tcp_connections = 10\nmax_tcp_connections_per_address = 10\n";

#[test]
fn beyond_the_cap_a_connection_is_closed_at_once_and_silent_or_dripping_ones_at_the_hello_timeout()
{
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace("[opcua]\n", CAPPED_CONFIG));
    // systemd's default: soft 1024, a larger hard limit. The gateway raises the soft one.
    let mut daemon = Daemon::start_with_open_file_limit(&workdir, 1024, 4096);
    let limit = daemon.wait_for_events("open_file_limit", 1, Duration::from_secs(30));
    assert!(
        limit[0].contains("soft_before=1024")
            && limit[0].contains("soft=4096")
            && limit[0].contains("hard=4096"),
        "{}",
        limit[0]
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().nth(3) == Some("4096"),
        "{open_files}"
    );
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    let port = workdir.opcua_port();

    runtime().block_on(async {
        let localhost = Ipv4Addr::LOCALHOST;
        let mut held = open_idle(localhost, port, 8).await;
        // One sends a partial header and stops; one drips a Hello a byte at a time.
        let mut partial = open_idle(localhost, port, 1).await.remove(0);
        partial.write_all(b"HEL").await.unwrap();
        let mut dripping = open_idle(localhost, port, 1).await.remove(0);
        let opened = Instant::now();
        // Let the server account for all ten before the eleventh arrives.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let closed = match connect_from(localhost, port).await {
            // Reset before the connect completed.
            Err(e) if e.kind() != std::io::ErrorKind::TimedOut => Some(Duration::ZERO),
            Err(e) => panic!("{e}"),
            Ok(mut eleventh) => time_to_close(&mut eleventh, Duration::from_secs(5)).await,
        };
        assert!(
            closed.is_some_and(|t| t < Duration::from_millis(500)),
            "the connection beyond the cap was not closed at once: {closed:?}"
        );

        let drip = tokio::spawn(async move {
            let hello_header = [b'H', b'E', b'L', b'F', 60, 0, 0, 0, 0, 0, 0, 0];
            for byte in hello_header.iter().cycle().take(40) {
                if dripping.write_all(&[*byte]).await.is_err() {
                    break;
                }
                let mut probe = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(250), dripping.read(&mut probe))
                    .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
                    _ => {}
                }
            }
            time_to_close(&mut dripping, Duration::from_secs(1))
                .await
                .map(|_| opened.elapsed())
        });
        let partial_closed = time_to_close(&mut partial, Duration::from_secs(6))
            .await
            .map(|_| opened.elapsed());
        let mut idle_closed = Vec::new();
        for stream in &mut held {
            idle_closed.push(
                time_to_close(stream, Duration::from_secs(6))
                    .await
                    .map(|_| opened.elapsed()),
            );
        }
        let drip_closed = drip.await.unwrap();
        let within_hello_timeout = |t: &Option<Duration>| {
            t.is_some_and(|t| t >= Duration::from_millis(1_500) && t < Duration::from_millis(3_500))
        };
        assert!(within_hello_timeout(&partial_closed), "{partial_closed:?}");
        assert!(within_hello_timeout(&drip_closed), "{drip_closed:?}");
        assert!(
            idle_closed.iter().all(within_hello_timeout),
            "{idle_closed:?}"
        );

        // The slots are free again: a new connection is admitted (kept past the refusal time).
        let mut later = open_idle(localhost, port, 1).await.remove(0);
        let closed = time_to_close(&mut later, Duration::from_millis(800)).await;
        assert_eq!(closed, None, "a connection after the flood was refused");
    });

    let refused = daemon.events("opcua_connection_refused");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(
        refused[0].contains("reason=\"tcp_connection_limit\"") && refused[0].contains("limit=10"),
        "{}",
        refused[0]
    );
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}

/// User + system CPU time of `pid` in clock ticks (USER_HZ, 100 per second on Linux).
fn cpu_ticks(daemon: &Daemon) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", daemon.pid())).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn when_descriptors_run_out_anyway_accept_backs_off_and_logs_one_line_per_burst() {
    // Caps above what the open-file limit allows: accept() itself fails with EMFILE.
    let workdir = Workdir::new(&MINIMAL_CONFIG.replace(
        "[opcua]\n",
        "[opcua]\nmax_tcp_connections = 5000\nmax_tcp_connections_per_address = 5000\n",
    ));
    let mut daemon = Daemon::start_with_open_file_limit(&workdir, 256, 256);
    daemon.wait_for_events("opcua_listening", 1, Duration::from_secs(30));
    assert_eq!(daemon.events("open_file_limit_low").len(), 1);
    let port = workdir.opcua_port();
    runtime().block_on(async {
        // Connections beyond the descriptors wait in the backlog until it is full too.
        let mut flood = Vec::new();
        for _ in 0..400 {
            match connect_from(Ipv4Addr::new(127, 0, 0, 2), port).await {
                Ok(stream) => flood.push(stream),
                Err(_) => break,
            }
        }
        assert!(flood.len() > 256, "{} connected", flood.len());
        daemon.wait_for_events("opcua_accept_failed", 1, Duration::from_secs(5));
        // Descriptors stay exhausted until the Hello timeout (5 s) frees them.
        let before = cpu_ticks(&daemon);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let spent = cpu_ticks(&daemon) - before;
        assert!(
            spent < 60,
            "the server spent {spent} ticks of CPU in 3 s while out of descriptors"
        );
        daemon.wait_for_events("opcua_accept_failed_repeats", 1, Duration::from_secs(12));
        drop(flood);
    });
    let failed = daemon.events("opcua_accept_failed");
    assert!(
        failed[0].contains("Too many open files") && failed[0].contains("retry_in_ms="),
        "{}",
        failed[0]
    );
    assert!(failed.len() <= 3, "one line per burst: {failed:#?}");
    let lines = daemon.lines();
    assert!(lines.len() < 300, "{} log lines", lines.len());
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
}
