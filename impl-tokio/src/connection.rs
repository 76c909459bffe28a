//! A TCP stream and its receive buffer, used by both server and client:
//! [`AsyncLink`] the tokio way.
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

use ferry_app::dial;
use ferry_app::link::AsyncLink;
use ferry_engine::body::SEND_WINDOW;
use ferry_engine::client::{ClientConfig, ClientError};
use ferry_engine::frame::{LINE_READ, stopped_reading};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_share::FileBody;

use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    pub(crate) stream: TcpStream,
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

    /// Sends FIN with `shutdown`, then drains up to [`LINGER_BYTES`] for
    /// [`LINGER`].
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
    pub async fn connect(config: &ClientConfig) -> Result<Connection, ClientError> {
        let resolve = |addr: &str| tokio::net::lookup_host(addr.to_owned());
        let attempt = |to, within| async move { timeout(within, TcpStream::connect(to)).await.ok() };
        dial::connect(config, resolve, attempt).await.map(Connection::new)
    }

    /// Wraps a connected stream; its `TCP_NODELAY` is already set (by the
    /// listener it was accepted from, or by `Dial::made`).
    pub fn new(stream: TcpStream) -> Connection {
        Connection { stream, buffer: Vec::with_capacity(LINE_READ) }
    }

    /// Sends one window of a body: `sendfile` until the socket is full,
    /// then `writable()` until it has room again. Only if the kernel has the
    /// window in memory: `sendfile` reads the file on this worker, and
    /// from a slow disk it would hold the worker, and every connection on
    /// it, for as long as the disk takes.
    async fn send_window(&mut self, body: &Arc<FileBody>, window: Range<u64>) -> io::Result<()> {
        if !body.resident(&window) {
            return self.send_cold(body, window).await;
        }
        let mut offset = window.start;
        while offset < window.end {
            self.stream.writable().await?;
            let count = usize::try_from(window.end - offset).unwrap_or(usize::MAX);
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                loop {
                    match rustix::fs::sendfile(&self.stream, &body.file, Some(&mut offset), count) {
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

    /// Sends a window the kernel does not have in memory: the blocking pool
    /// reads it, [`COLD_READ`](ferry_share::COLD_READ) bytes at a time, and the
    /// worker writes what was read. The disk's wait is a pool thread's.
    async fn send_cold(&mut self, body: &Arc<FileBody>, window: Range<u64>) -> io::Result<()> {
        let mut at = window.start;
        while at < window.end {
            let (body, end) = (Arc::clone(body), window.end);
            let read = tokio::task::spawn_blocking(move || body.read_cold(at, end)).await;
            let bytes = read.map_err(io::Error::other)??;
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
        self.stream.as_fd()
    }
}
