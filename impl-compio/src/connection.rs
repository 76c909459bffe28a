//! A TCP stream and its receive buffer, used by both server and client.
//!
//! Lines are parsed by `ferry-engine` from the front of the buffer; bytes
//! beyond the line stay for the next call (pipelined requests, or the start
//! of a body). Every operation is compio's: it takes its buffer by value,
//! the kernel completes it, and the buffer comes back with the result.
//!
//! A deadline drops an operation's future, as on the other runtimes, but
//! here that asks the kernel to cancel an operation that may already have
//! finished: the bytes a finished read brought are gone with its buffer.
//! So nothing a connection still needs is ever in a read that a deadline
//! may cut: line reads go into a scratch buffer, and what is buffered stays
//! in the connection ([`Connection::read_line`]); a body read is never cut
//! by the pace check, which waits beside it ([`Connection::read_body`]); and
//! every other cut (an idle timeout, shutdown, a client that stopped
//! reading) ends the connection.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::pin;
use std::time::{Duration, Instant};

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::driver::op::ReadAt;
use compio::driver::{SharedFd, ToSharedFd};
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::{TcpStream, ToSocketAddrsAsync};
use compio::time::sleep_until;
use ferry_app::dial::Dial;
use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming, SEND_WINDOW};
use ferry_engine::client::ClientError;
use ferry_engine::frame::{LINE_READ, LineError, ParseLine, stopped_reading, take_line};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_engine::{Refusal, Request, parse_pipelined};
use ferry_share::{BATCH_REQUESTS, Batch, FileBody, Part};

use crate::pool::Pipe;
use futures_util::future::{self, Either, select};

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// What line reads are handed to the kernel in; emptied into `buffer`.
    scratch: Vec<u8>,
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
        Connection { stream, buffer: Vec::new(), scratch: Vec::new() }
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
    /// the refusal to send, not an error of the connection. A wait also
    /// ends, as at the deadline, when the future `stop` makes completes
    /// (shutdown).
    pub async fn read_requests<S: Future<Output = ()>>(
        &mut self,
        deadline: Instant,
        stop: impl Fn() -> S,
        pending: &mut VecDeque<Result<Request, Refusal>>,
    ) -> Result<(), LineError<Infallible>> {
        let parse = |buffer: &[u8]| Ok(parse_pipelined(buffer, pending, BATCH_REQUESTS));
        self.read_line_or(deadline, stop, parse).await.map(drop)
    }

    /// Parses one line from the front of the buffer with `parse` (the
    /// greeting or an answer header, client side), reading more until it is
    /// whole or `deadline` passes.
    pub async fn read_line<T, E>(&mut self, deadline: Instant, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.read_line_or(deadline, future::pending, parse).await
    }

    /// [`Connection::read_line`], whose waits also end when `stop` says.
    async fn read_line_or<T, E, S: Future<Output = ()>>(
        &mut self,
        deadline: Instant,
        stop: impl Fn() -> S,
        mut parse: impl ParseLine<T, E>,
    ) -> Result<T, LineError<E>> {
        loop {
            if let Some(value) = take_line(&mut self.buffer, &mut parse)? {
                return Ok(value);
            }
            // The kernel fills the scratch buffer's uninitialised capacity,
            // so there is nothing to zero first. If the wait is cut, the
            // scratch buffer goes with the cancelled read, and the bytes
            // already buffered stay: cancel-safe for what was received
            // before this read (a cut read's own bytes are the kernel's to
            // lose, and a cut ends the connection).
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.reserve(LINE_READ);
            let read = async { Some(self.stream.read(scratch).await) };
            let ends = async {
                select(pin!(stop()), pin!(sleep_until(deadline))).await;
                None
            };
            let read = select(pin!(read), pin!(ends)).await.factor_first().0;
            let read = read.map(|BufResult(read, scratch)| {
                self.buffer.extend_from_slice(&scratch);
                self.scratch = scratch;
                read
            });
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
        sink: &mut impl AsyncWrite,
        mut on_chunk: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let (mut body, first) = Incoming::start(len, timeout, &mut self.buffer, Instant::now());
        on_chunk(&first);
        let n = first.len();
        let BufResult(written, _) = sink.write_all(first).await;
        written.map_err(|e| body.sink_failed(n, e))?;
        // One buffer goes back and forth between the socket and the sink.
        let mut chunk = Vec::with_capacity(BODY_BUFFER);
        while let Some(want) = body.want(BODY_BUFFER) {
            chunk.clear();
            // The pace is checked at each deadline *beside* the read, which
            // stays in flight: cutting it could lose bytes the kernel had
            // already put in the buffer, a hole in the middle of the file.
            let mut read = pin!(self.stream.read(chunk.slice(..want)));
            let BufResult(read, slice) = loop {
                match select(read.as_mut(), pin!(sleep_until(body.deadline()))).await {
                    Either::Left((done, _)) => break done,
                    Either::Right(((), _)) => body.on_read(None, Instant::now())?,
                };
            };
            chunk = slice.into_inner();
            let n = body.on_read(Some(read), Instant::now())?;
            on_chunk(&chunk);
            let BufResult(written, back) = sink.write_all(chunk).await;
            written.map_err(|e| body.sink_failed(n, e))?;
            chunk = back;
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
    pub async fn write_all(&mut self, bytes: Vec<u8>, limit: Duration) -> io::Result<()> {
        let written = until(Instant::now() + limit, self.stream.write_all(bytes)).await;
        written.map_or_else(|| Err(stopped_reading()), |BufResult(written, _)| written)
    }

    /// Sends a batch of answers: joined bytes in one write each, each file
    /// body with `send_body`. Each write of bytes may take `idle` to be
    /// accepted.
    pub async fn write_batch(&mut self, batch: Batch, idle: Duration) -> io::Result<()> {
        for part in batch.parts {
            match part {
                Part::Bytes(bytes) => self.write_all(bytes, idle).await?,
                Part::Body(body) => self.send_body(body, idle).await?,
            }
        }
        Ok(())
    }

    /// Sends a file's range with `splice(2)`: from the file into a pipe,
    /// at the range's offset, then from the pipe into the socket, each a
    /// ring operation. File pages go to the socket without passing through
    /// this process, and no readiness loop is needed: the kernel completes
    /// each splice when it can.
    ///
    /// Every [`SEND_WINDOW`] bytes must be accepted within `idle`, so a
    /// client that stops reading is dropped.
    ///
    /// If the file yields fewer bytes than the header promised (it shrank),
    /// this fails: the caller must close the connection, so the client sees
    /// a short body rather than bytes that are not the file's.
    async fn send_body(&mut self, body: FileBody, idle: Duration) -> io::Result<()> {
        // A pipe from this thread's pool, or, when all are in use, a copy
        // through a buffer ([`Pipe::take`]).
        let pipe = Pipe::take()?;
        let windows = body.windows(SEND_WINDOW);
        let (start, len) = (body.offset, body.len);
        // The operations share the file; it is closed when the last is done.
        let file = SharedFd::new(body.file);
        for window in windows {
            let deadline = Instant::now() + idle;
            let sent = match &pipe {
                // On the polling driver, filling the pipe is a plain
                // `splice(2)` on this thread (epoll cannot wait for a file),
                // so only for a window the kernel has in memory; the ring
                // runs its splices on the kernel's own workers.
                Some(pipe) if pipe.ring || ferry_share::resident(&*file, &window) => {
                    self.send_window(&file, pipe, window, deadline).await?
                }
                // A copy reads through the ring, or on the polling driver
                // through compio's blocking pool.
                _ => self.send_copied(&file, window, deadline).await?,
            };
            match sent {
                Sent::All => {}
                // The pipe is not given back: it may still hold bytes.
                Sent::Late => return Err(stopped_reading()),
                Sent::ShortAt(at) => return Err(FileBody::shrunk(start, len, at)),
            }
        }
        if let Some(pipe) = pipe {
            pipe.give_back();
        }
        Ok(())
    }

    /// Sends one window of a body through `pipe`, as much as the pipe holds
    /// at a time; the splices into the socket must be done by `deadline`
    /// ([`Connection::splice_until`]).
    async fn send_window(
        &self,
        file: &SharedFd<File>,
        pipe: &Pipe,
        window: Range<u64>,
        deadline: Instant,
    ) -> io::Result<Sent> {
        let mut offset = window.start;
        while offset < window.end {
            let want = usize::try_from(window.end - offset).unwrap_or(usize::MAX).min(pipe.size);
            let mut left = pipe.fill(file, offset, want).await?;
            if left == 0 {
                return Ok(Sent::ShortAt(offset));
            }
            offset += left as u64;
            while left > 0 {
                let Some(sent) = self.splice_until(deadline, pipe.drain(&self.stream, left)).await else {
                    return Ok(Sent::Late);
                };
                match sent? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    n => left -= n,
                }
            }
        }
        Ok(Sent::All)
    }

    /// Sends one window of a body through an owned buffer: a ring read of
    /// the file, then a send, for when every pipe of this thread's pool is
    /// in use (by clients that stopped reading, say).
    async fn send_copied(&self, file: &SharedFd<File>, window: Range<u64>, deadline: Instant) -> io::Result<Sent> {
        let mut offset = window.start;
        let mut buffer = Vec::new();
        while offset < window.end {
            let want = usize::try_from(window.end - offset).unwrap_or(usize::MAX).min(COPY_BUFFER);
            // The read fills the buffer from its start; a buffer of `want`
            // initialised bytes keeps `unsafe` out of taking its length.
            buffer.resize(want, 0);
            let read = ReadAt::new(file.to_shared_fd(), offset, buffer.slice(..want));
            let BufResult(read, back) = compio::runtime::submit(read).await.into_inner();
            buffer = back.into_inner();
            let n = read?;
            if n == 0 {
                return Ok(Sent::ShortAt(offset));
            }
            buffer.truncate(n);
            offset += n as u64;
            let Some(BufResult(sent, back)) = until(deadline, (&self.stream).write_all(buffer)).await else {
                return Ok(Sent::Late);
            };
            sent?;
            buffer = back;
        }
        Ok(Sent::All)
    }

    /// Runs `splice`, a splice into the socket, until `deadline`: `None` if
    /// the deadline came first. Such a splice cannot be cut by dropping it:
    /// io_uring runs it on one of its kernel workers, which holds the pipe
    /// while it waits for the socket, and closing the pipe would then block
    /// this thread. So at the deadline the socket is shut down, which ends
    /// the splice at once, and the splice is waited for; the connection is
    /// over anyway (its client stopped reading).
    async fn splice_until(
        &self,
        deadline: Instant,
        splice: impl Future<Output = io::Result<usize>>,
    ) -> Option<io::Result<usize>> {
        let mut splice = pin!(splice);
        match select(splice.as_mut(), pin!(sleep_until(deadline))).await {
            Either::Left((done, _)) => Some(done),
            Either::Right(((), _)) => {
                let _ = rustix::net::shutdown(&self.stream, rustix::net::Shutdown::Both);
                let _ = splice.await;
                None
            }
        }
    }

    /// Closes after a last answer: sends FIN, then reads and discards what
    /// the peer still sends for up to [`LINGER`]. Closing with unread bytes
    /// would make the kernel send a reset, which can destroy the answer
    /// before the peer reads it.
    pub async fn close(mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        let mut scratch = Vec::with_capacity(LINE_READ);
        while drained < LINGER_BYTES {
            scratch.clear();
            match until(deadline, self.stream.read(scratch)).await {
                Some(BufResult(Ok(n), back)) if n > 0 => {
                    drained += n as u64;
                    scratch = back;
                }
                _ => break,
            }
        }
    }
}

/// How sending a window ended, when the socket itself did not fail.
enum Sent {
    All,
    /// The deadline passed: the client stopped reading.
    Late,
    /// The file had nothing at this offset: it shrank.
    ShortAt(u64),
}

/// The buffer a copied body goes through. Small, because a flood of
/// downloads beyond the pool holds one each while its client reads:
/// 8,000 of them hold 125 MiB.
const COPY_BUFFER: usize = 16 << 10;

/// A sink that takes every byte and keeps none, for bodies the session
/// drops. (compio's `null()` reports writing nothing.)
#[derive(Debug)]
pub struct Drain;

impl AsyncWrite for Drain {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        BufResult(Ok(buf.buf_len()), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `work` until `deadline`: `None` if the deadline came first. The
/// work is dropped then, and an operation in it cancelled: only for waits
/// whose end ends the connection (see the module's docs).
pub async fn until<T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    match select(pin!(work), pin!(sleep_until(deadline))).await {
        Either::Left((done, _)) => Some(done),
        Either::Right(((), _)) => None,
    }
}

/// The first address `addr` resolves to that accepts a connection.
async fn connect_stream(addr: &str, limit: Duration) -> Result<TcpStream, ClientError> {
    let mut dial = Dial::new(addr);
    for resolved in addr.to_socket_addrs_async().await.map_err(|e| dial.unresolved(e))? {
        if let Some(stream) = dial.attempt(until(Instant::now() + limit, TcpStream::connect(resolved)).await) {
            return Ok(stream);
        }
    }
    Err(dial.failed())
}
