//! A TCP stream and its receive buffer, used by both server and client:
//! [`AsyncLink`] the compio way.
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
//! in the connection (`read_more`); a body read is never cut by the pace
//! check, which waits beside it (`receive_with`); and
//! every other cut (an idle timeout, shutdown, a client that stopped
//! reading) ends the connection.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::pin;
use std::time::{Duration, Instant};

use compio::BufResult;
use compio::buf::IoBufMut;
use compio::buf::{IntoInner, IoBuf};
use compio::driver::op::ReadAt;
use compio::driver::{SharedFd, ToSharedFd};
use compio::io::compat::AsyncStream;
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::{TcpStream, ToSocketAddrsAsync};
use compio::time::sleep_until;
use compio::tls::{TlsAcceptor, TlsConnector, TlsStream};
use ferry_app::dial::{self, Remote};
use ferry_app::link::AsyncLink;
use ferry_app::tls::ServerTls;
use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming, SEND_WINDOW};
use ferry_engine::client::ClientError;
use ferry_engine::frame::{LINE_READ, stopped_reading};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_share::FileBody;
use futures_util::future::{Either, select};

use crate::pool::Pipe;

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    /// The socket itself: its descriptor, `shutdown` and `splice`.
    socket: TcpStream,
    /// What reads and writes go through: the socket, or TLS over it.
    pub(crate) stream: Stream,
    pub(crate) buffer: Vec<u8>,
    /// What line reads are handed to the kernel in; emptied into `buffer`.
    scratch: Vec<u8>,
}

impl AsyncLink for Connection {
    fn received(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// The kernel fills the scratch buffer's uninitialised capacity, so
    /// there is nothing to zero first. If the wait is cut, the scratch
    /// buffer goes with the cancelled read, and the bytes already buffered
    /// stay: cancel-safe for what was received before this read (a cut
    /// read's own bytes are the kernel's to lose, and a cut ends the
    /// connection).
    async fn read_more(&mut self, deadline: Instant) -> Option<io::Result<usize>> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.reserve(LINE_READ);
        until(deadline, self.stream.read(scratch)).await.map(|BufResult(read, scratch)| {
            self.buffer.extend_from_slice(&scratch);
            self.scratch = scratch;
            read
        })
    }

    async fn write_all(&mut self, bytes: Vec<u8>, within: Duration) -> io::Result<()> {
        let written = until(Instant::now() + within, self.stream.write_all(bytes)).await;
        written.map_or_else(|| Err(stopped_reading()), |BufResult(written, _)| written)
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
    /// Over TLS every window is copied, read through the ring and
    /// encrypted here (no kTLS for `splice` to write into).
    async fn send_body(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        // A pipe from this thread's pool, or, when all are in use, a copy
        // through a buffer ([`Pipe::take`]).
        let pipe = if self.stream.is_tls() { None } else { Pipe::take()? };
        let windows = body.windows(SEND_WINDOW);
        let (start, len) = (body.offset, body.len);
        // The operations share the file; it is closed when the last is done.
        let file = SharedFd::new(body.file);
        for window in windows {
            let (deadline, window_len) = (Instant::now() + idle, window.end - window.start);
            let went = match &pipe {
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
            match went {
                Sent::All => *sent += window_len,
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

    /// Sends FIN (a ring `shutdown`; TLS first sends its close_notify),
    /// then drains up to [`LINGER_BYTES`] for [`LINGER`], through one
    /// scratch buffer.
    async fn close(mut self) {
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

impl Connection {
    /// Connects to the first address `config.addr` resolves to that
    /// accepts (client side), each within the client's timeout.
    pub async fn connect(remote: &Remote) -> Result<Connection, ClientError> {
        let config = &remote.config;
        let resolve = async |addr: &str| addr.to_socket_addrs_async().await;
        let attempt = |to, within| until(Instant::now() + within, TcpStream::connect(to));
        let socket = dial::connect(config, resolve, attempt).await?;
        let Some(tls) = &remote.tls else { return Ok(Connection::new(socket)) };
        let name = tls.name().to_str().into_owned();
        let connector = TlsConnector::from(tls.config());
        let handshake = connector.connect_compat(&name, AsyncStream::with_capacity(TLS_IO_BUFFER, socket.clone()));
        let shaken = until(Instant::now() + config.timeout, handshake).await.unwrap_or_else(|| Err(timed_out()));
        let stream = shaken.map_err(|e| tls.failed(&config.addr, config.timeout, e))?;
        tls.settle(&config.addr)?;
        Ok(Connection::with(socket, Stream::Tls(Box::new(stream))))
    }

    /// A connection just accepted: with TLS, once its handshake is done
    /// within `within` (`None` if it failed, and was logged).
    pub async fn accepted(socket: TcpStream, tls: Option<ServerTls>, within: Duration) -> Option<Connection> {
        let Some(tls) = tls else { return Some(Connection::new(socket)) };
        let peer = socket.peer_addr().ok()?;
        let acceptor = TlsAcceptor::from(tls.config());
        // Boxed: inline, its state would be reserved in every connection's
        // task, plain ones too.
        let handshake = Box::pin(acceptor.accept_compat(AsyncStream::with_capacity(TLS_IO_BUFFER, socket.clone())));
        match until(Instant::now() + within, handshake).await.unwrap_or_else(|| Err(timed_out())) {
            Ok(stream) => Some(Connection::with(socket, Stream::Tls(Box::new(stream)))),
            Err(error) => {
                ServerTls::failed(peer, &error);
                None
            }
        }
    }

    /// Wraps a connected socket, plain; its `TCP_NODELAY` is already set
    /// (by the listener it was accepted from, or by `Dial::made`).
    pub fn new(socket: TcpStream) -> Connection {
        Connection::with(socket.clone(), Stream::Plain(socket))
    }

    fn with(socket: TcpStream, stream: Stream) -> Connection {
        Connection { socket, stream, buffer: Vec::new(), scratch: Vec::new() }
    }

    /// [`AsyncLink::receive_into`], into `sink` (the `.part`, stdout) or
    /// nowhere (`None`: a listing, a small body held in memory, whose bytes
    /// only `each` sees). What the reads of [`BODY_BUFFER`] bring is
    /// gathered into writes of `gather` bytes
    /// (`ferry_app::spool::spool_buffer`): a ring write to a file that would
    /// wait for the disk is handed to the kernel's workers, and fewer,
    /// larger writes make fewer such trips. The reads have a buffer of their
    /// own, so that a read cut at a deadline (its buffer gone with it) takes
    /// nothing gathered along: a cut body leaves all it received in the
    /// `.part`, for `--continue`.
    pub(crate) async fn receive_with(
        &mut self,
        len: u64,
        mut sink: Option<&mut impl AsyncWrite>,
        mut each: impl FnMut(&[u8]),
        timeout: Duration,
        gather: usize,
    ) -> Result<(), BodyError> {
        let (mut body, first) = Incoming::start(len, timeout, &mut self.buffer, Instant::now());
        each(&first);
        let n = first.len();
        let gather = match sink {
            Some(ref mut into) => {
                let BufResult(written, _) = into.write_all(first).await;
                written.map_err(|e| body.sink_failed(n, e))?;
                gather
            }
            None => 0,
        };
        let mut gathered = Gathered { bytes: Vec::with_capacity(gather), sink };
        let received = gathered.receive(self, &mut body, &mut each).await;
        // Whatever ended the body, what was gathered is written.
        let flushed = gathered.flush(&body).await;
        received.and(flushed)
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
                let Some(sent) = self.splice_until(deadline, pipe.drain(&self.socket, left)).await else {
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
    async fn send_copied(&mut self, file: &SharedFd<File>, window: Range<u64>, deadline: Instant) -> io::Result<Sent> {
        let mut offset = window.start;
        let mut buffer = Vec::new();
        while offset < window.end {
            let want = usize::try_from(window.end - offset).unwrap_or(usize::MAX).min(self.copy_buffer());
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
            let Some(BufResult(sent, back)) = until(deadline, self.stream.write_all(buffer)).await else {
                return Ok(Sent::Late);
            };
            sent?;
            buffer = back;
        }
        Ok(Sent::All)
    }

    /// How much of a body one read and write of [`Connection::send_copied`]
    /// moves.
    fn copy_buffer(&self) -> usize {
        if self.stream.is_tls() { TLS_COPY_BUFFER } else { COPY_BUFFER }
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
                let _ = rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Both);
                let _ = splice.await;
                None
            }
        }
    }
}

/// Bytes received for a sink and not yet written to it; with no sink,
/// none are kept.
struct Gathered<'a, S> {
    bytes: Vec<u8>,
    sink: Option<&'a mut S>,
}

impl<S: AsyncWrite> Gathered<'_, S> {
    /// Writes the bytes gathered.
    async fn flush(&mut self, body: &Incoming) -> Result<(), BodyError> {
        let Some(sink) = self.sink.as_mut().filter(|_| !self.bytes.is_empty()) else { return Ok(()) };
        let n = self.bytes.len();
        let BufResult(written, back) = sink.write_all(std::mem::take(&mut self.bytes)).await;
        self.bytes = back;
        self.bytes.clear();
        written.map_err(|e| body.sink_failed(n, e))
    }

    /// Reads the rest of `body` from `connection`, gathering it.
    async fn receive(
        &mut self,
        connection: &mut Connection,
        body: &mut Incoming,
        each: &mut impl FnMut(&[u8]),
    ) -> Result<(), BodyError> {
        // One buffer goes back and forth between the socket and here.
        let mut chunk = Vec::with_capacity(BODY_BUFFER);
        while let Some(want) = body.want(BODY_BUFFER) {
            chunk.clear();
            // The pace is checked at each deadline *beside* the read, which
            // stays in flight: cutting it could lose bytes the kernel had
            // already put in the buffer, a hole in the middle of the file.
            let mut read = pin!(connection.stream.read(chunk.slice(..want)));
            let BufResult(read, slice) = loop {
                match select(read.as_mut(), pin!(sleep_until(body.deadline()))).await {
                    Either::Left((done, _)) => break done,
                    Either::Right(((), _)) => body.on_read(None, Instant::now())?,
                };
            };
            chunk = slice.into_inner();
            body.on_read(Some(read), Instant::now())?;
            each(&chunk);
            if self.sink.is_none() {
                continue;
            }
            if self.bytes.capacity() - self.bytes.len() < chunk.len() {
                self.flush(body).await?;
            }
            self.bytes.extend_from_slice(&chunk);
        }
        Ok(())
    }
}

/// The socket's descriptor, for a check on the peer from a blocking
/// thread while heavy work runs (`ferry_app::serve` duplicates it).
impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// The socket as compio reads and writes it: plain, or inside TLS
/// (compio's rustls, over the same socket: compio's `TcpStream` is a
/// shared handle, so the connection keeps one for its descriptor).
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsyncRead for Stream {
    async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        match self {
            Stream::Plain(socket) => socket.read(buf).await,
            Stream::Tls(tls) => tls.read(buf).await,
        }
    }
}

/// Over TLS each write is flushed: rustls keeps back what it could not
/// send, and here no later write is sure to come and push it out.
impl AsyncWrite for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(socket) => socket.write(buf).await,
            Stream::Tls(tls) => match tls.write(buf).await {
                BufResult(Ok(n), buf) => BufResult(tls.flush().await.map(|()| n), buf),
                failed => failed,
            },
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush().await,
            Stream::Tls(tls) => tls.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.shutdown().await,
            Stream::Tls(tls) => tls.shutdown().await,
        }
    }
}

/// A handshake that did not finish in time, as a read that timed out.
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake did not finish in time")
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

/// The buffers between TLS and the socket (each way, allocated with the
/// connection): compio's default, 8 KiB, splits every 16 KiB record in two
/// ring operations, and a download over TLS was much slower with it than
/// with 64 KiB (256 KiB was faster still: benches/README.md, "Measurements
/// behind design choices"); 64 KiB keeps a thousand idle TLS connections
/// to 128 MiB of buffers.
const TLS_IO_BUFFER: usize = 64 << 10;

/// The buffer a body over TLS goes through: every body over TLS is
/// copied, so its reads and writes are the body path itself, and each
/// costs a ring operation and a trip through the TLS layer.
const TLS_COPY_BUFFER: usize = 256 << 10;

/// Runs `work` until `deadline`: `None` if the deadline came first. The
/// work is dropped then, and an operation in it cancelled: only for waits
/// whose end ends the connection (see the module's docs).
pub async fn until<T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    match select(pin!(work), pin!(sleep_until(deadline))).await {
        Either::Left((done, _)) => Some(done),
        Either::Right(((), _)) => None,
    }
}
