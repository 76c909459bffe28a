//! A TCP stream (or a TLS stream over one) and its receive buffer, used by
//! both server and client: [`AsyncLink`] the tokio way.
//!
//! Lines are parsed by `ferry-engine` from the front of the buffer; bytes
//! beyond the line stay for the next call (pipelined requests, or the start
//! of a body). Every wait is a future under `tokio::time::timeout_at`, so a
//! deadline for a whole line is one call around the loop, not a setting
//! recomputed before each read as on std.

use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use ferry_app::dial::{self, Remote};
use ferry_app::link::AsyncLink;
use ferry_app::tls::ServerTls;
use ferry_engine::body::SEND_WINDOW;
use ferry_engine::client::ClientError;
use ferry_engine::frame::{LINE_READ, stopped_reading};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_share::FileBody;

use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};
use tokio_util::either::Either;

/// The socket, plain or inside TLS (tokio-rustls): both are tokio's
/// `AsyncRead` and `AsyncWrite`, and so is `Either` of them. The TLS state
/// is boxed: inline, its kilobytes would be in every plain connection's
/// task too.
pub type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    pub(crate) stream: Stream,
    pub(crate) buffer: Vec<u8>,
}

impl AsyncLink for Connection {
    fn received(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Cancel-safe: `read_buf` appends to the buffer only what a finished
    /// read brought, so a read dropped at the deadline has taken no bytes.
    async fn read_more(&mut self, deadline: std::time::Instant) -> Option<io::Result<usize>> {
        self.buffer.reserve(LINE_READ);
        timeout_at(Instant::from_std(deadline), self.stream.read_buf(&mut self.buffer)).await.ok()
    }

    async fn write_all(&mut self, bytes: Vec<u8>, within: Duration) -> io::Result<()> {
        timeout(within, self.stream.write_all(&bytes)).await.unwrap_or_else(|_elapsed| Err(stopped_reading()))
    }

    /// Sends a file's range with `sendfile(2)`, driven by readiness: tokio's
    /// socket is non-blocking, so the call takes what fits in the socket
    /// buffer and returns; `try_io` clears the readiness when it would
    /// block, and `writable()` waits for room — nginx's loop, on tokio's
    /// reactor. File pages go to the socket without passing through this
    /// process.
    ///
    /// Every [`SEND_WINDOW`] bytes must be accepted within `idle`, so a
    /// client that stops reading is dropped.
    async fn send_body(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        // Shared with the blocking pool when a window must be read there.
        let body = Arc::new(body);
        for window in body.windows(SEND_WINDOW) {
            let len = window.end - window.start;
            let went = timeout(idle, self.send_window(&body, window)).await;
            went.unwrap_or_else(|_elapsed| Err(stopped_reading()))?;
            *sent += len;
        }
        Ok(())
    }

    /// Sends FIN with `shutdown` (TLS first sends its close_notify), then
    /// drains up to [`LINGER_BYTES`] for [`LINGER`].
    async fn close(mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let mut drain = (&mut self.stream).take(LINGER_BYTES);
        let _ = timeout(LINGER, tokio::io::copy(&mut drain, &mut tokio::io::sink())).await;
    }
}

impl Connection {
    /// Connects to the first address `config.addr` resolves to that
    /// accepts (client side), each within the client's timeout.
    pub async fn connect(remote: &Remote) -> Result<Connection, ClientError> {
        let config = &remote.config;
        let resolve = |addr: &str| tokio::net::lookup_host(addr.to_owned());
        let attempt = |to, within| async move { timeout(within, TcpStream::connect(to)).await.ok() };
        let socket = dial::connect(config, resolve, attempt).await?;
        let Some(tls) = &remote.tls else { return Ok(Connection::new(socket)) };
        let handshake = TlsConnector::from(tls.config()).connect(tls.name(), socket);
        let shaken = timeout(config.timeout, handshake).await.unwrap_or_else(|_elapsed| Err(timed_out()));
        let stream = shaken.map_err(|e| tls.failed(&config.addr, config.timeout, e))?;
        tls.settle(&config.addr)?;
        Ok(Connection::with(Either::Right(Box::new(stream.into()))))
    }

    /// A connection just accepted: with TLS, once its handshake is done
    /// within `within` (`None` if it failed, and was logged).
    pub async fn accepted(socket: TcpStream, tls: Option<ServerTls>, within: Duration) -> Option<Connection> {
        let Some(tls) = tls else { return Some(Connection::new(socket)) };
        let peer = socket.peer_addr().ok()?;
        // Boxed: inline, its state would be reserved in every connection's
        // task, plain ones too.
        let handshake = Box::pin(TlsAcceptor::from(tls.config()).accept(socket));
        match timeout(within, handshake).await.unwrap_or_else(|_elapsed| Err(timed_out())) {
            Ok(stream) => Some(Connection::with(Either::Right(Box::new(stream.into())))),
            Err(error) => {
                ServerTls::failed(peer, &error);
                None
            }
        }
    }

    /// Wraps a connected socket, plain; its `TCP_NODELAY` is already set
    /// (by the listener it was accepted from, or by `Dial::made`).
    pub fn new(socket: TcpStream) -> Connection {
        Connection::with(Either::Left(socket))
    }

    fn with(stream: Stream) -> Connection {
        Connection { stream, buffer: Vec::with_capacity(LINE_READ) }
    }

    /// Sends one window of a body: `sendfile` until the socket is full,
    /// then `writable()` until it has room again. Only if the kernel has the
    /// window in memory: `sendfile` reads the file on this worker, and
    /// from a slow disk it would hold the worker, and every connection on
    /// it, for as long as the disk takes.
    /// Over TLS every window is copied: the kernel here cannot encrypt
    /// (no kTLS), so `sendfile` has no way in.
    async fn send_window(&mut self, body: &Arc<FileBody>, window: Range<u64>) -> io::Result<()> {
        let Either::Left(socket) = &self.stream else { return self.send_copied(body, window).await };
        if !body.resident(&window) {
            return self.send_copied(body, window).await;
        }
        let mut offset = window.start;
        while offset < window.end {
            socket.writable().await?;
            let count = usize::try_from(window.end - offset).unwrap_or(usize::MAX);
            let sent = socket.try_io(Interest::WRITABLE, || {
                loop {
                    match rustix::fs::sendfile(socket, &body.file, Some(&mut offset), count) {
                        Err(Errno::INTR) => continue,
                        other => return other.map_err(io::Error::from),
                    }
                }
            });
            match sent {
                Ok(0) => return Err(body.shrank_at(offset)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends a window through this process, [`COLD_READ`](ferry_share::COLD_READ)
    /// bytes at a time: read on the worker what the kernel has in memory
    /// (`read_hot`), on the blocking pool what it does not, so the disk's
    /// wait is a pool thread's; then written (encrypted, over TLS).
    async fn send_copied(&mut self, body: &Arc<FileBody>, window: Range<u64>) -> io::Result<()> {
        let mut at = window.start;
        while at < window.end {
            let bytes = match body.read_hot(at, window.end) {
                Some(bytes) => bytes,
                None => {
                    let (body, end) = (Arc::clone(body), window.end);
                    let read = tokio::task::spawn_blocking(move || body.read_cold(at, end)).await;
                    read.map_err(io::Error::other)??
                }
            };
            self.stream.write_all(&bytes).await?;
            at += bytes.len() as u64;
        }
        Ok(())
    }
}

/// The socket's descriptor, for a check on the peer from a blocking
/// thread while heavy work runs (`ferry_app::serve` duplicates it).
impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.stream {
            Either::Left(socket) => socket.as_fd(),
            Either::Right(tls) => tls.get_ref().0.as_fd(),
        }
    }
}

/// A handshake that did not finish in time, as a read that timed out.
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake did not finish in time")
}
