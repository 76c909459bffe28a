//! A TCP stream and its receive buffer, used by both server and client.
//!
//! Lines are parsed by `ferry-engine` from the front of the buffer; bytes
//! beyond the line stay for the next call (pipelined requests, or the start
//! of a body). The socket is an `Async<TcpStream>`: a plain std socket,
//! made non-blocking and registered with smol's reactor, so every wait is a
//! future. A deadline is an `async-io` `Timer` raced against the read.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_app::dial::Dial;
use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming, SEND_WINDOW};
use ferry_engine::client::ClientError;
use ferry_engine::frame::{LINE_READ, LineError, ParseLine, Spare, stopped_reading, take_line};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_engine::{Refusal, Request, parse_pipelined};
use ferry_share::{BATCH_REQUESTS, Batch, FileBody, Part};
use rustix::io::Errno;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Timer, future};

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    stream: Async<TcpStream>,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to the first address `addr` resolves to that accepts
    /// (client side).
    pub async fn connect(addr: &str, limit: Duration) -> Result<Connection, ClientError> {
        let stream = connect_stream(addr, limit).await?;
        // Requests are written whole; do not hold them back.
        stream.get_ref().set_nodelay(true).map_err(|source| ClientError::Io { addr: addr.to_owned(), source })?;
        Ok(Connection::new(stream))
    }

    /// Wraps a connected stream.
    pub fn new(stream: Async<TcpStream>) -> Connection {
        Connection { stream, buffer: Vec::with_capacity(LINE_READ) }
    }

    /// The socket's descriptor, for a check on the peer from a blocking
    /// thread while heavy work runs (`ferry_app::serve` duplicates it).
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.stream.get_ref().as_fd()
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
            // The bytes read into must be zeroed first; reading little while
            // little is buffered keeps an idle connection to one touched
            // page of buffer rather than LINE_READ bytes of zeros. The
            // guard takes the zeros off again however the read ends,
            // dropped at the deadline or by `future::or` included, so the
            // next call never parses them as data: cancel-safe.
            let mut spare = Spare::grow(&mut self.buffer, LINE_READ);
            let read = until(deadline, self.stream.read(spare.bytes())).await;
            spare.keep(match &read {
                Some(Ok(n)) => *n,
                _ => 0,
            });
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
        sink: &mut (dyn smol::io::AsyncWrite + Unpin + Send),
        mut on_chunk: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let (mut body, first) = Incoming::start(len, timeout, &mut self.buffer, Instant::now());
        sink.write_all(&first).await.map_err(|e| body.sink_failed(first.len(), e))?;
        on_chunk(&first);
        let mut chunk = vec![0; BODY_BUFFER];
        while let Some(want) = body.want(chunk.len()) {
            let n = body.on_read(until(body.deadline(), self.stream.read(&mut chunk[..want])).await, Instant::now())?;
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
        until(Instant::now() + limit, self.stream.write_all(bytes)).await.unwrap_or_else(|| Err(stopped_reading()))
    }

    /// Sends a batch of answers: joined bytes in one write each, each file
    /// body with `send_body`. Each write of bytes may take
    /// `idle` to be accepted.
    pub async fn write_batch(&mut self, batch: Batch, idle: Duration) -> io::Result<()> {
        for part in batch.parts {
            match part {
                Part::Bytes(bytes) => {
                    until(Instant::now() + idle, self.stream.write_all(&bytes))
                        .await
                        .unwrap_or_else(|| Err(stopped_reading()))?;
                }
                Part::Body(body) => self.send_body(body, idle).await?,
            }
        }
        Ok(())
    }

    /// Sends a file's range with `sendfile(2)`, driven by readiness:
    /// `Async::write_with` calls it on the non-blocking socket, and when it
    /// would block, waits for the reactor to say the socket is writable and
    /// calls again — nginx's loop, on smol's reactor. File pages go to the
    /// socket without passing through this process.
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
            let sent = until(Instant::now() + idle, self.send_window(&body, window)).await;
            sent.unwrap_or_else(|| Err(stopped_reading()))?;
        }
        Ok(())
    }

    /// Sends one window of a body: `write_with` calls `sendfile` until the
    /// socket is full, then waits for the reactor to say it has room. Only
    /// if the kernel has the window in memory: `sendfile` reads the file on
    /// this executor thread, and from a slow disk it would hold the thread,
    /// and every connection on it, for as long as the disk takes.
    async fn send_window(&self, body: &Arc<FileBody>, window: Range<u64>) -> io::Result<()> {
        if !body.resident(&window) {
            return self.send_cold(body, window).await;
        }
        let mut offset = window.start;
        while offset < window.end {
            let count = usize::try_from(window.end - offset).unwrap_or(usize::MAX);
            let sent = self
                .stream
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

    /// Sends a window the kernel does not have in memory: `unblock` reads
    /// it on smol's blocking pool, [`COLD_READ`](ferry_share::COLD_READ) bytes
    /// at a time, and this thread writes what was read. The disk's wait is
    /// a pool thread's.
    async fn send_cold(&self, body: &Arc<FileBody>, window: Range<u64>) -> io::Result<()> {
        let mut at = window.start;
        while at < window.end {
            let (body, end) = (Arc::clone(body), window.end);
            let bytes = smol::unblock(move || body.read_cold(at, end)).await?;
            (&self.stream).write_all(&bytes).await?;
            at += bytes.len() as u64;
        }
        Ok(())
    }

    /// Closes after a last answer: sends FIN, then reads and discards what
    /// the peer still sends for up to [`LINGER`]. Closing with unread bytes
    /// would make the kernel send a reset, which can destroy the answer
    /// before the peer reads it.
    pub async fn close(mut self) {
        if self.stream.get_ref().shutdown(Shutdown::Write).is_err() {
            return;
        }
        let drain = (&mut self.stream).take(LINGER_BYTES);
        until(Instant::now() + LINGER, smol::io::copy(drain, smol::io::sink())).await;
    }
}

/// Runs `work` until `deadline`: `None` if the timer fired first.
pub async fn until<T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(work.await) }, async {
        Timer::at(deadline).await;
        None
    })
    .await
}

/// The first address `addr` resolves to that accepts a connection.
async fn connect_stream(addr: &str, limit: Duration) -> Result<Async<TcpStream>, ClientError> {
    let mut dial = Dial::new(addr);
    for resolved in smol::net::resolve(addr).await.map_err(|e| dial.unresolved(e))? {
        if let Some(stream) = dial.attempt(until(Instant::now() + limit, Async::<TcpStream>::connect(resolved)).await) {
            return Ok(stream);
        }
    }
    Err(dial.failed())
}
