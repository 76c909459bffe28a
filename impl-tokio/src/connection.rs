//! A TCP stream and its receive buffer, used by both server and client.
//!
//! Lines are parsed by `ferry-engine` from the front of the buffer; bytes
//! beyond the line stay for the next call (pipelined requests, or the start
//! of a body). Every wait is a future under `tokio::time::timeout_at`, so a
//! deadline for a whole line is one call around the loop, not a setting
//! recomputed before each read as on std.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use ferry_app::dial::Dial;
use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming, SEND_WINDOW};
use ferry_engine::client::ClientError;
use ferry_engine::frame::{LINE_READ, LineError, ParseLine, stopped_reading, take_line};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_engine::{Refusal, Request, parse_pipelined};
use ferry_share::{BATCH_REQUESTS, Batch, FileBody, Part};
use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to the first address `addr` resolves to that accepts
    /// (client side).
    pub async fn connect(addr: &str, limit: Duration) -> Result<Connection, ClientError> {
        let stream = connect_stream(addr, limit).await?;
        // Requests are written whole; do not hold them back.
        stream.set_nodelay(true).map_err(|source| ClientError::Io { addr: addr.to_owned(), source })?;
        Ok(Connection::new(stream))
    }

    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> Connection {
        Connection { stream, buffer: Vec::with_capacity(LINE_READ) }
    }

    /// The socket's descriptor, for a check on the peer from a blocking
    /// thread while heavy work runs (`ferry_app::serve` duplicates it).
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Reads request lines (server side) into `pending`, which must be
    /// empty: waits until one is whole, then takes every whole line already
    /// buffered behind it, up to [`BATCH_REQUESTS`], so that pipelined
    /// requests are answered together. A line the core refuses is queued as
    /// the refusal to send, not an error of the connection.
    pub async fn read_requests(
        &mut self,
        deadline: Instant,
        pending: &mut VecDeque<Result<Request, Refusal>>,
    ) -> Result<(), LineError<Infallible>> {
        self.read_line(deadline, |buffer| Ok(parse_pipelined(buffer, pending, BATCH_REQUESTS))).await.map(drop)
    }

    /// Parses one line from the front of the buffer with `parse` (the
    /// greeting or an answer header, client side), reading more until it is
    /// whole or `deadline` passes.
    /// Cancel-safe: a read that is dropped has taken no bytes.
    pub async fn read_line<T, E>(
        &mut self,
        deadline: Instant,
        mut parse: impl ParseLine<T, E>,
    ) -> Result<T, LineError<E>> {
        loop {
            if let Some(value) = take_line(&mut self.buffer, &mut parse)? {
                return Ok(value);
            }
            self.buffer.reserve(LINE_READ);
            match timeout_at(deadline, self.stream.read_buf(&mut self.buffer)).await {
                Err(_elapsed) => return Err(LineError::TimedOut),
                Ok(Ok(0)) => return Err(LineError::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(LineError::from_io(e)),
            }
        }
    }

    /// Receives exactly `len` body bytes into `sink`, handing each chunk to
    /// `on_chunk` as well (for a digest and progress). The body must keep
    /// pace ([`Incoming`]): a stalled server, or one that trickles, is given
    /// up on; a slow one is not.
    pub async fn read_body(
        &mut self,
        len: u64,
        sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        mut on_chunk: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let (mut body, first) = Incoming::start(len, timeout, &mut self.buffer, std::time::Instant::now());
        sink.write_all(&first).await.map_err(|e| body.sink_failed(first.len(), e))?;
        on_chunk(&first);
        let mut chunk = vec![0; BODY_BUFFER];
        while let Some(want) = body.want(chunk.len()) {
            let read = timeout_at(Instant::from_std(body.deadline()), self.stream.read(&mut chunk[..want])).await;
            let n = body.on_read(read.ok(), std::time::Instant::now())?;
            sink.write_all(&chunk[..n]).await.map_err(|e| body.sink_failed(n, e))?;
            on_chunk(&chunk[..n]);
        }
        Ok(())
    }

    /// Reads a body that belongs in memory (LIST, SUM), `len` bytes that
    /// the session has checked (client side).
    pub async fn read_small(&mut self, len: usize, timeout: Duration) -> Result<Vec<u8>, BodyError> {
        let mut body = Vec::with_capacity(len);
        self.read_body(len as u64, &mut body, |_| {}, timeout).await?;
        Ok(body)
    }

    /// Writes bytes as they are (greetings, requests), which the peer must
    /// take within `limit`.
    pub async fn write_all(&mut self, bytes: &[u8], limit: Duration) -> io::Result<()> {
        timeout(limit, self.stream.write_all(bytes)).await.unwrap_or_else(|_elapsed| Err(stopped_reading()))
    }

    /// Sends a batch of answers: joined bytes in one write each, each file
    /// body with `send_body`. Each write of bytes may take
    /// `idle` to be accepted.
    pub async fn write_batch(&mut self, batch: Batch, idle: Duration) -> io::Result<()> {
        for part in batch.parts {
            match part {
                Part::Bytes(bytes) => {
                    timeout(idle, self.stream.write_all(&bytes)).await.unwrap_or_else(|_| Err(stopped_reading()))?;
                }
                Part::Body(body) => self.send_body(body, idle).await?,
            }
        }
        Ok(())
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
    ///
    /// If the file yields fewer bytes than the header promised (it shrank),
    /// this fails: the caller must close the connection, so the client sees
    /// a short body rather than bytes that are not the file's.
    async fn send_body(&mut self, body: FileBody, idle: Duration) -> io::Result<()> {
        // Shared with the blocking pool when a window must be read there.
        let body = Arc::new(body);
        for window in body.windows(SEND_WINDOW) {
            let sent = timeout(idle, self.send_window(&body, window)).await;
            sent.unwrap_or_else(|_elapsed| Err(stopped_reading()))?;
        }
        Ok(())
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

    /// Closes after a last answer: sends FIN, then reads and discards what
    /// the peer still sends for up to [`LINGER`]. Closing with unread bytes
    /// would make the kernel send a reset, which can destroy the answer
    /// before the peer reads it.
    pub async fn close(mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let mut drain = (&mut self.stream).take(LINGER_BYTES);
        let _ = timeout(LINGER, tokio::io::copy(&mut drain, &mut tokio::io::sink())).await;
    }
}

/// The first address `addr` resolves to that accepts a connection.
async fn connect_stream(addr: &str, limit: Duration) -> Result<TcpStream, ClientError> {
    let mut dial = Dial::new(addr);
    for resolved in tokio::net::lookup_host(addr).await.map_err(|e| dial.unresolved(e))? {
        if let Some(stream) = dial.attempt(timeout(limit, TcpStream::connect(resolved)).await.ok()) {
            return Ok(stream);
        }
    }
    Err(dial.failed())
}
