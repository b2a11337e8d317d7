//! Serving the four services on a TCP listener, and taking them down hard for an outage.
//!
//! tonic's own shutdown is graceful: it waits for open calls, and event streams never finish.
//! An outage must look like a crashed server instead, so every accepted connection is wrapped
//! in [`KillableIo`], which fails all reads and writes once the session is killed: hyper then
//! drops the connection with every call on it, and the listener closes with the session.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use chirpstack_api::api::application_service_server::ApplicationServiceServer;
use chirpstack_api::api::device_profile_service_server::DeviceProfileServiceServer;
use chirpstack_api::api::device_service_server::DeviceServiceServer;
use chirpstack_api::api::internal_service_server::InternalServiceServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::Server;

use super::rpc::Service;
use super::state::SimState;

/// How long stopping a session waits for tonic to wind down before aborting it.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` with `SO_REUSEADDR`, so an outage can end on the same port while the killed
/// connections sit in TIME_WAIT.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1_024)
}

/// One serving period of the listener (the first, or one after an outage).
pub(crate) struct Session {
    kill: watch::Sender<bool>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Session {
    pub(crate) fn spawn(state: Arc<SimState>, listener: TcpListener) -> Self {
        let (kill, killed) = watch::channel(false);
        let (shutdown, shutdown_requested) = oneshot::channel::<()>();
        let max_streams = state.config.max_concurrent_streams_per_connection;
        let service = Service { state };
        let incoming = TcpListenerStream::new(listener).map(move |accepted| {
            accepted.map(|stream| {
                // Small gRPC frames: do not let Nagle add latency the test did not ask for.
                let _ = stream.set_nodelay(true);
                KillableIo::new(stream, killed.clone())
            })
        });
        let router = Server::builder()
            .max_concurrent_streams(Some(max_streams))
            .add_service(ApplicationServiceServer::new(service.clone()))
            .add_service(DeviceServiceServer::new(service.clone()))
            .add_service(DeviceProfileServiceServer::new(service.clone()))
            .add_service(InternalServiceServer::new(service));
        let task = tokio::spawn(async move {
            let signal = async {
                let _ = shutdown_requested.await;
            };
            if let Err(err) = router.serve_with_incoming_shutdown(incoming, signal).await {
                tracing::warn!(event = "simulator_serve_failed", error = %err);
            }
        });
        Self {
            kill,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// Drops every connection and closes the listener; returns once the port is free.
    pub(crate) async fn stop(mut self) {
        self.kill.send_replace(true);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_TIMEOUT, &mut self.task)
            .await
            .is_err()
        {
            abort.abort();
            let _ = (&mut self.task).await;
        }
    }

    /// The synchronous last resort (a dropped handle): kill and abort without waiting.
    pub(crate) fn abort(self) {
        self.kill.send_replace(true);
        self.task.abort();
    }
}

/// A connection that fails every read and write once its session is killed.
struct KillableIo {
    inner: TcpStream,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
    dead: bool,
}

impl KillableIo {
    fn new(inner: TcpStream, mut killed: watch::Receiver<bool>) -> Self {
        Self {
            inner,
            // A dropped sender (session gone) counts as killed too.
            killed: Box::pin(async move {
                let _ = killed.wait_for(|killed| *killed).await;
            }),
            dead: false,
        }
    }

    /// Polls the kill signal (registering the waker, so an idle connection wakes up to die).
    fn is_dead(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.dead && self.killed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        self.dead
    }
}

fn outage() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "simulated ChirpStack outage",
    )
}

impl AsyncRead for KillableIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_dead(cx) {
            return Poll::Ready(Err(outage()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_dead(cx) {
            return Poll::Ready(Err(outage()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_dead(cx) {
            return Poll::Ready(Err(outage()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connected for KillableIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}
