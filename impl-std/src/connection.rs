//! A TCP stream and its receive buffer, used by both server and client.
//!
//! Lines are parsed by `ferry-engine` from the front of the buffer; bytes
//! beyond the line stay for the next call (pipelined requests, or the start
//! of a body). Reads wait at most until a deadline: `set_read_timeout` is set
//! to the time left before every read, because it bounds one call, not the
//! line.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_app::dial::Dial;
use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming, SEND_WINDOW};
use ferry_engine::client::ClientError;
use ferry_engine::frame::{LINE_READ, LineError, ParseLine, is_timeout, stopped_reading, take_line};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_engine::{Refusal, Request, parse_pipelined};
use ferry_share::{BATCH_REQUESTS, Batch, FileBody, Part};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    /// Shared, not owned: the server keeps another handle to shut the read
    /// side at shutdown, and an `Arc` does that without a second descriptor.
    stream: Arc<TcpStream>,
    buffer: Vec<u8>,
    /// The write timeout last set on the socket, so it is set only when it
    /// changes (a system call each time).
    write_limit: Option<Duration>,
}

impl Connection {
    /// Connects to the first address `addr` resolves to that accepts
    /// (client side).
    pub fn connect(addr: &str, limit: Duration) -> Result<Connection, ClientError> {
        let stream = connect_stream(addr, limit)?;
        // Requests are written whole; do not hold them back.
        stream.set_nodelay(true).map_err(|source| ClientError::Io { addr: addr.to_owned(), source })?;
        Ok(Connection::new(stream))
    }

    /// Wraps a connected stream.
    pub fn new(stream: impl Into<Arc<TcpStream>>) -> Connection {
        Connection { stream: stream.into(), buffer: Vec::with_capacity(LINE_READ), write_limit: None }
    }

    /// The socket's descriptor, for a check on the peer while heavy work
    /// runs (`ferry_app::serve` duplicates it).
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Reads request lines (server side) into `pending`, which must be
    /// empty: waits until one is whole, then takes every whole line already
    /// buffered behind it, up to [`BATCH_REQUESTS`], so that pipelined
    /// requests are answered together. A line the core refuses is queued as
    /// the refusal to send, not an error of the connection.
    pub fn read_requests(
        &mut self,
        deadline: Instant,
        pending: &mut VecDeque<Result<Request, Refusal>>,
    ) -> Result<(), LineError<Infallible>> {
        self.read_line(deadline, |buffer| Ok(parse_pipelined(buffer, pending, BATCH_REQUESTS))).map(drop)
    }

    /// Parses one line from the front of the buffer with `parse` (the
    /// greeting or an answer header, client side), reading more until it is
    /// whole or `deadline` passes.
    pub fn read_line<T, E>(&mut self, deadline: Instant, mut parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        loop {
            if let Some(value) = take_line(&mut self.buffer, &mut parse)? {
                return Ok(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LineError::TimedOut);
            }
            self.stream.set_read_timeout(Some(left)).map_err(LineError::Io)?;
            let filled = self.buffer.len();
            // The bytes read into must be zeroed first; reading little while
            // little is buffered keeps an idle connection to one touched
            // page of buffer rather than LINE_READ bytes of zeros.
            self.buffer.resize(filled + filled.clamp(1024, LINE_READ), 0);
            let read = (&*self.stream).read(&mut self.buffer[filled..]);
            self.buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => return Err(LineError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LineError::from_io(e)),
            }
        }
    }

    /// Receives exactly `len` body bytes into `sink`, handing each chunk to
    /// `on_chunk` as well (for a digest and progress). The body must keep
    /// pace ([`Incoming`]): a stalled server, or one that trickles, is given
    /// up on; a slow one is not.
    pub fn read_body(
        &mut self,
        len: u64,
        sink: &mut dyn Write,
        mut on_chunk: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let (mut body, first) = Incoming::start(len, timeout, &mut self.buffer, Instant::now());
        sink.write_all(&first).map_err(|e| body.sink_failed(first.len(), e))?;
        on_chunk(&first);
        // One read waits at most `timeout`: set once, not before every read
        // (a system call each). A read begun late in a window may then run
        // past its end, so a stalled body fails within two windows.
        self.stream.set_read_timeout(Some(timeout)).map_err(|e| BodyError::socket(0, e))?;
        let mut chunk = vec![0; BODY_BUFFER];
        while let Some(want) = body.want(chunk.len()) {
            let n = body.on_read(Some((&*self.stream).read(&mut chunk[..want])), Instant::now())?;
            sink.write_all(&chunk[..n]).map_err(|e| body.sink_failed(n, e))?;
            on_chunk(&chunk[..n]);
        }
        Ok(())
    }

    /// Reads a body that belongs in memory (LIST, SUM), `len` bytes that
    /// the session has checked (client side).
    pub fn read_small(&mut self, len: usize, timeout: Duration) -> Result<Vec<u8>, BodyError> {
        let mut body = Vec::with_capacity(len);
        self.read_body(len as u64, &mut body, |_| {}, timeout)?;
        Ok(body)
    }

    /// Writes bytes as they are (greetings, requests), which the peer must
    /// take within `limit`.
    pub fn write_all(&mut self, bytes: &[u8], limit: Duration) -> io::Result<()> {
        if self.write_limit != Some(limit) {
            self.stream.set_write_timeout(Some(limit))?;
            self.write_limit = Some(limit);
        }
        (&*self.stream).write_all(bytes).map_err(|e| if is_timeout(&e) { stopped_reading() } else { e })
    }

    /// Sends a batch of answers: joined bytes in one write each, each file
    /// body with `send_body`.
    pub fn write_batch(&mut self, batch: Batch, idle: Duration) -> io::Result<()> {
        for part in batch.parts {
            match part {
                Part::Bytes(bytes) => self.write_all(&bytes, idle)?,
                Part::Body(body) => self.send_body(&body, idle)?,
            }
        }
        Ok(())
    }

    /// Sends a file's range with `sendfile(2)`: the kernel moves the bytes
    /// from the page cache to the socket without copying them through this
    /// process. (`io::copy` from a `File` to a `TcpStream` reads and writes
    /// 8 KiB at a time on current std; `strace` shows no `sendfile`.)
    ///
    /// Every [`SEND_WINDOW`] bytes must be accepted within `idle`, so a
    /// client that stops reading is dropped. A blocking `sendfile` does not
    /// honour the socket's write timeout (it was seen blocking twice as long),
    /// so the socket is made non-blocking for the body and the thread waits
    /// in `poll(2)` for room, with the time left, as nginx does.
    ///
    /// If the file yields fewer bytes than the header promised (it shrank),
    /// this fails: the caller must close the connection, so the client sees
    /// a short body rather than bytes that are not the file's.
    fn send_body(&mut self, body: &FileBody, idle: Duration) -> io::Result<()> {
        self.stream.set_nonblocking(true)?;
        let sent =
            body.windows(SEND_WINDOW).try_for_each(|window| self.send_window(body, window, Instant::now() + idle));
        self.stream.set_nonblocking(false)?;
        sent
    }

    /// Sends one window of a body, on the non-blocking socket: `sendfile`
    /// until the socket is full, then `poll(2)` until it has room again, or
    /// `deadline` passes.
    fn send_window(&self, body: &FileBody, window: Range<u64>, deadline: Instant) -> io::Result<()> {
        let mut offset = window.start;
        while offset < window.end {
            let count = usize::try_from(window.end - offset).unwrap_or(usize::MAX);
            match rustix::fs::sendfile(&*self.stream, &body.file, Some(&mut offset), count) {
                Ok(0) => return Err(body.shrank_at(offset)),
                Ok(_) | Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let timeout = Timespec::try_from(left).map_err(|_| io::ErrorKind::InvalidInput)?;
                    let mut fds = [PollFd::new(&*self.stream, PollFlags::OUT)];
                    match rustix::event::poll(&mut fds, Some(&timeout)) {
                        Ok(0) => return Err(stopped_reading()),
                        Ok(_) | Err(Errno::INTR) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Closes after a last answer: sends FIN, then reads and discards what
    /// the peer still sends for up to [`LINGER`]. Closing with unread bytes
    /// would make the kernel send a reset, which can destroy the answer
    /// before the peer reads it.
    pub fn close(self) {
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        // The read timeout bounds each read, not the whole drain; at most
        // two of LINGER each (end of stream usually comes at once).
        if self.stream.set_read_timeout(Some(LINGER)).is_ok() {
            let _ = io::copy(&mut (&*self.stream).take(LINGER_BYTES), &mut io::sink());
        }
    }
}

/// The first address `addr` resolves to that accepts a connection.
fn connect_stream(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let mut dial = Dial::new(addr);
    for resolved in addr.to_socket_addrs().map_err(|e| dial.unresolved(e))? {
        let connected = match TcpStream::connect_timeout(&resolved, timeout) {
            Err(error) if error.kind() == io::ErrorKind::TimedOut => None,
            connected => Some(connected),
        };
        if let Some(stream) = dial.attempt(connected) {
            return Ok(stream);
        }
    }
    Err(dial.failed())
}
