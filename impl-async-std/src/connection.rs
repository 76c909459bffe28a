//! A TCP stream and its receive buffer, used by both server and client.
//!
//! Lines are parsed by `ferry-engine` from the front of the buffer; bytes
//! beyond the line stay for the next call (pipelined requests, or the start
//! of a body). The socket is an `async_std::net::TcpStream`, whose reads and
//! writes are futures; a deadline is `async_std::future::timeout` around
//! the work ([`until`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::Shutdown;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpStream, ToSocketAddrs};
use ferry_app::dial::Dial;
use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming, SEND_WINDOW};
use ferry_engine::client::ClientError;
use ferry_engine::frame::{LINE_READ, LineError, ParseLine, Spare, stopped_reading, take_line};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_engine::{Refusal, Request, parse_pipelined};
use ferry_share::{BATCH_REQUESTS, Batch, FileBody, Part};
use rustix::io::Errno;

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
    pub async fn read_line<T, E>(
        &mut self,
        deadline: Instant,
        mut parse: impl ParseLine<T, E>,
    ) -> Result<T, LineError<E>> {
        loop {
            if let Some(value) = take_line(&mut self.buffer, &mut parse)? {
                return Ok(value);
            }
            // Zeroed room for the read, taken off again however the read
            // ends (a deadline, or `race` with shutdown, drops it): the
            // next call never parses the zeros as data.
            let mut spare = Spare::grow(&mut self.buffer, LINE_READ);
            let read = until(deadline, self.stream.read(spare.bytes())).await;
            spare.keep(read.as_ref().and_then(|read| read.as_ref().ok()).copied().unwrap_or(0));
            drop(spare);
            match read {
                None => return Err(LineError::TimedOut),
                Some(Ok(0)) => return Err(LineError::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(LineError::from_io(e)),
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
        sink: &mut (dyn async_std::io::Write + Unpin + Send),
        mut on_chunk: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let (mut body, first) = Incoming::start(len, timeout, &mut self.buffer, Instant::now());
        sink.write_all(&first).await.map_err(|e| body.sink_failed(first.len(), e))?;
        on_chunk(&first);
        let mut chunk = vec![0; BODY_BUFFER];
        while let Some(want) = body.want(chunk.len()) {
            // `io::timeout` ends a read at the window's end with `TimedOut`,
            // which `Incoming` counts as no bytes before it checks the pace.
            let left = body.deadline().saturating_duration_since(Instant::now());
            let n = body.on_read(
                Some(async_std::io::timeout(left, self.stream.read(&mut chunk[..want])).await),
                Instant::now(),
            )?;
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
        let written = async_std::future::timeout(limit, self.stream.write_all(bytes)).await;
        written.unwrap_or_else(|_timed_out| Err(stopped_reading()))
    }

    /// Sends a batch of answers: joined bytes in one write each, each file
    /// body with `send_body`. Each write of bytes may take `idle` to be
    /// accepted.
    pub async fn write_batch(&mut self, batch: Batch, idle: Duration) -> io::Result<()> {
        for part in batch.parts {
            match part {
                Part::Bytes(bytes) => self.write_all(&bytes, idle).await?,
                Part::Body(body) => self.send_body(body, idle).await?,
            }
        }
        Ok(())
    }

    /// Sends a file's range with `sendfile(2)`, driven by readiness. An
    /// async-std socket does not expose its readiness (there is no
    /// `write_with`), so the body is sent on a duplicate of its descriptor
    /// registered with async-io, the reactor async-std itself runs on: one
    /// more descriptor while a body is in flight. (On smol, `Async` is the
    /// socket itself.) File pages go to the socket without passing through
    /// this process.
    ///
    /// Every [`SEND_WINDOW`] bytes must be accepted within `idle`, so a
    /// client that stops reading is dropped.
    ///
    /// If the file yields fewer bytes than the header promised (it shrank),
    /// this fails: the caller must close the connection, so the client sees
    /// a short body rather than bytes that are not the file's.
    async fn send_body(&mut self, body: FileBody, idle: Duration) -> io::Result<()> {
        let socket = Async::new(std::net::TcpStream::from(self.socket().try_clone_to_owned()?))?;
        // Shared with the blocking pool when a window must be read there.
        let body = Arc::new(body);
        for window in body.windows(SEND_WINDOW) {
            let sent = async_std::future::timeout(idle, Connection::send_window(&socket, &body, window)).await;
            sent.unwrap_or_else(|_timed_out| Err(stopped_reading()))?;
        }
        Ok(())
    }

    /// Sends one window of a body: `write_with` calls `sendfile` until the
    /// socket is full, then waits for the reactor to say it has room. Only
    /// if the kernel has the window in memory: `sendfile` reads the file on
    /// this executor thread, and from a slow disk it would hold the thread,
    /// and every task on it, for as long as the disk takes.
    async fn send_window(
        socket: &Async<std::net::TcpStream>,
        body: &Arc<FileBody>,
        window: Range<u64>,
    ) -> io::Result<()> {
        if !body.resident(&window) {
            return Connection::send_cold(socket, body, window).await;
        }
        let mut offset = window.start;
        while offset < window.end {
            let count = usize::try_from(window.end - offset).unwrap_or(usize::MAX);
            let sent = socket
                .write_with(|socket| {
                    loop {
                        match rustix::fs::sendfile(socket, &body.file, Some(&mut offset), count) {
                            Err(Errno::INTR) => continue,
                            other => return other.map_err(io::Error::from),
                        }
                    }
                })
                .await?;
            if sent == 0 {
                return Err(body.shrank_at(offset));
            }
        }
        Ok(())
    }

    /// Sends a window the kernel does not have in memory:
    /// `task::spawn_blocking` reads it, [`COLD_READ`](ferry_share::COLD_READ)
    /// bytes at a time, and this task writes what was read. The disk's wait
    /// is a pool thread's.
    async fn send_cold(
        mut socket: &Async<std::net::TcpStream>,
        body: &Arc<FileBody>,
        window: Range<u64>,
    ) -> io::Result<()> {
        let mut at = window.start;
        while at < window.end {
            let (body, end) = (Arc::clone(body), window.end);
            let bytes = async_std::task::spawn_blocking(move || body.read_cold(at, end)).await?;
            socket.write_all(&bytes).await?;
            at += bytes.len() as u64;
        }
        Ok(())
    }

    /// Closes after a last answer: sends FIN, then reads and discards what
    /// the peer still sends for up to [`LINGER`]. Closing with unread bytes
    /// would make the kernel send a reset, which can destroy the answer
    /// before the peer reads it.
    pub async fn close(self) {
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let mut drain = (&self.stream).take(LINGER_BYTES);
        let _ = async_std::future::timeout(LINGER, async_std::io::copy(&mut drain, &mut async_std::io::sink())).await;
    }
}

/// Runs `work` until `deadline`: `None` if it did not finish by then.
pub async fn until<T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    async_std::future::timeout(deadline.saturating_duration_since(Instant::now()), work).await.ok()
}

/// The first address `addr` resolves to that accepts a connection.
async fn connect_stream(addr: &str, limit: Duration) -> Result<TcpStream, ClientError> {
    let mut dial = Dial::new(addr);
    for resolved in addr.to_socket_addrs().await.map_err(|e| dial.unresolved(e))? {
        if let Some(stream) = dial.attempt(until(Instant::now() + limit, TcpStream::connect(resolved)).await) {
            return Ok(stream);
        }
    }
    Err(dial.failed())
}
