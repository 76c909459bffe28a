//! What smol and async-std do the same way, because both read and write
//! through futures-io's traits (`AsyncRead`, `AsyncWrite`): a line's next
//! read, a body received at its pace, a write within a deadline, the drain
//! at close, and TLS with futures-rustls ([`Wire`], [`accepted`],
//! [`connected`]). A driver's connection says only what differs
//! ([`FuturesLink`]: its socket, how `sendfile` waits for room, how it
//! sleeps; [`FuturesSave`]: the file a client writes to), and is an
//! [`AsyncLink`] and an [`AsyncSave`] through the impls here.

use std::io;
use std::net::TcpStream;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Async;
use futures_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming, SEND_WINDOW};
use ferry_engine::frame::{LINE_READ, Spare, stopped_reading};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use rustix::io::Errno;

use ferry_engine::client::{ClientError, SaveError};
use ferry_share::FileBody;

use crate::dial::Remote;
use crate::link::{AsyncLink, AsyncSave};
use crate::save::Item;
use crate::serve::unless;
use crate::switch::AnyExecutor;
use crate::tls::ServerTls;

/// A connection on a runtime whose streams are futures-io's: what it does
/// its own way. Every such connection is an [`AsyncLink`].
#[allow(async_fn_in_trait)]
pub trait FuturesLink: AsFd + Sized {
    /// The runtime, for its timers.
    type Runtime: AnyExecutor;
    /// The socket.
    type Socket: AsyncRead + AsyncWrite + Unpin + AsFd;
    /// The socket (inside TLS or not), and what has been received on it
    /// but not yet used.
    fn parts(&mut self) -> (&mut Wire<Self::Socket>, &mut Vec<u8>);
    /// The socket alone, to drain at close.
    fn into_stream(self) -> Wire<Self::Socket>;
    /// [`AsyncLink::send_body`] on a plain socket: `sendfile`, the
    /// runtime's way to wait for room.
    async fn send_file(socket: &Self::Socket, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()>;
}

impl<L: FuturesLink> AsyncLink for L {
    fn received(&mut self) -> &mut Vec<u8> {
        self.parts().1
    }

    async fn read_more(&mut self, deadline: Instant) -> Option<io::Result<usize>> {
        let (stream, buffer) = self.parts();
        read_more::<L::Runtime>(stream, buffer, deadline).await
    }

    async fn write_all(&mut self, bytes: Vec<u8>, within: Duration) -> io::Result<()> {
        write_all::<L::Runtime>(self.parts().0, &bytes, within).await
    }

    /// Over TLS every window is copied through this process and encrypted
    /// (no kTLS here for `sendfile`).
    async fn send_body(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        match self.parts().0 {
            Wire::Plain(socket) => L::send_file(socket, body, idle, sent).await,
            tls @ Wire::Tls(_) => send_through::<L::Runtime>(tls, body, idle, sent).await,
        }
    }

    /// Sends FIN (a `shutdown` of the write side; TLS first sends its
    /// close_notify), then drains.
    async fn close(self) {
        let mut stream = self.into_stream();
        let closed = match &mut stream {
            Wire::Plain(socket) => rustix::net::shutdown(&*socket, rustix::net::Shutdown::Write).is_ok(),
            Wire::Tls(tls) => unless(L::Runtime::sleep_until(Instant::now() + LINGER), tls.close()).await.is_some(),
        };
        if closed {
            drain::<L::Runtime>(stream).await;
        }
    }
}

/// The socket `S` as a futures-io stream, plain or inside TLS
/// (futures-rustls): both smol's and async-std's.
#[derive(Debug)]
pub enum Wire<S> {
    /// TCP as it is.
    Plain(S),
    /// FERRY/1 over TLS.
    Tls(Box<TlsStream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Wire<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Plain(socket) => Pin::new(socket).poll_read(cx, buf),
            Wire::Tls(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Plain(socket) => Pin::new(socket).poll_write(cx, buf),
            Wire::Tls(tls) => Pin::new(tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(socket) => Pin::new(socket).poll_flush(cx),
            Wire::Tls(tls) => Pin::new(tls).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(socket) => Pin::new(socket).poll_close(cx),
            Wire::Tls(tls) => Pin::new(tls).poll_close(cx),
        }
    }
}

impl<S: AsFd> AsFd for Wire<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Wire::Plain(socket) => socket.as_fd(),
            Wire::Tls(tls) => tls.get_ref().0.as_fd(),
        }
    }
}

/// A socket just accepted by a server on runtime `R`: with `tls`, once its
/// handshake is done within `within` (`None` if it failed, and was logged).
pub async fn accepted<R: AnyExecutor, S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    tls: Option<ServerTls>,
    within: Duration,
    peer: std::net::SocketAddr,
) -> Option<Wire<S>> {
    let Some(tls) = tls else { return Some(Wire::Plain(socket)) };
    // Boxed: its state (a whole TLS connection) would otherwise be
    // reserved inline in every connection's task, plain ones too.
    let handshake = Box::pin(TlsAcceptor::from(tls.config()).accept(socket));
    match unless(R::sleep_until(Instant::now() + within), handshake).await.unwrap_or_else(|| Err(timed_out())) {
        Ok(stream) => Some(Wire::Tls(Box::new(stream.into()))),
        Err(error) => {
            ServerTls::failed(peer, &error);
            None
        }
    }
}

/// A socket a client connected to `remote` on runtime `R`: over TLS when
/// the user asked, the handshake done and the server trusted.
pub async fn connected<R: AnyExecutor, S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    remote: &Remote,
) -> Result<Wire<S>, ClientError> {
    let (Some(tls), config) = (&remote.tls, &remote.config) else { return Ok(Wire::Plain(socket)) };
    let handshake = TlsConnector::from(tls.config()).connect(tls.name(), socket);
    let shaken = unless(R::sleep_until(Instant::now() + config.timeout), handshake).await;
    let stream = shaken.unwrap_or_else(|| Err(timed_out())).map_err(|e| tls.failed(&config.addr, config.timeout, e))?;
    tls.settle(&config.addr)?;
    Ok(Wire::Tls(Box::new(stream.into())))
}

/// A handshake that did not finish in time, as a read that timed out.
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake did not finish in time")
}

/// What a client on such a runtime does its own way when it saves a body:
/// the file it writes to, opening it and committing it. Every such
/// connection is an [`AsyncSave`], receiving through [`receive_into`].
#[allow(async_fn_in_trait)]
pub trait FuturesSave: FuturesLink {
    /// [`AsyncSave::File`]: one that futures-io can write to.
    type File: AsyncWrite + Unpin;
    /// [`AsyncSave::open`].
    async fn open(&mut self, item: &Item, len: u64) -> Result<Self::File, SaveError>;
    /// [`AsyncSave::commit`].
    async fn commit(&mut self, item: &Item, file: Self::File, digest: Option<[u8; 32]>) -> Result<(), SaveError>;
    /// [`AsyncSave::unblock`].
    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T>;
}

impl<L: FuturesSave> AsyncSave for L {
    type File = L::File;

    async fn receive_into(
        &mut self,
        len: u64,
        file: Option<&mut L::File>,
        each: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let (stream, buffer) = self.parts();
        match file {
            Some(file) => receive_into::<L::Runtime>(stream, buffer, len, file, each, timeout).await,
            None => receive_into::<L::Runtime>(stream, buffer, len, &mut futures_lite::io::sink(), each, timeout).await,
        }
    }

    async fn open(&mut self, item: &Item, len: u64) -> Result<L::File, SaveError> {
        FuturesSave::open(self, item, len).await
    }

    /// The file may hold writes back (a buffer, a write on a pool).
    async fn flush(file: &mut L::File) -> io::Result<()> {
        file.flush().await
    }

    async fn commit(&mut self, item: &Item, file: L::File, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        FuturesSave::commit(self, item, file, digest).await
    }

    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        <L as FuturesSave>::unblock(work).await
    }
}

/// [`crate::link::AsyncLink::read_more`]: one read onto the end of
/// `buffer`, until `deadline`. The bytes read into must be zeroed first;
/// reading little while little is buffered keeps an idle connection to one
/// touched page of buffer rather than `LINE_READ` bytes of zeros. The guard
/// takes the zeros off again however the read ends, dropped at the
/// deadline or by a race with shutdown included: cancel-safe.
pub async fn read_more<R: AnyExecutor>(
    stream: &mut (impl AsyncRead + Unpin),
    buffer: &mut Vec<u8>,
    deadline: Instant,
) -> Option<io::Result<usize>> {
    let mut spare = Spare::grow(buffer, LINE_READ);
    let read = unless(R::sleep_until(deadline), stream.read(spare.bytes())).await;
    spare.kept(read)
}

/// Receives exactly `len` body bytes into `sink`, the first of them
/// already in `buffer`, handing each piece to `each` as well (for a digest
/// and progress). The body must keep pace ([`Incoming`]): a stalled
/// server, or one that trickles, is given up on; a slow one is not.
pub async fn receive_into<R: AnyExecutor>(
    stream: &mut (impl AsyncRead + Unpin),
    buffer: &mut Vec<u8>,
    len: u64,
    sink: &mut (impl AsyncWrite + Unpin + ?Sized),
    mut each: impl FnMut(&[u8]),
    timeout: Duration,
) -> Result<(), BodyError> {
    let (mut body, first) = Incoming::start(len, timeout, buffer, Instant::now());
    sink.write_all(&first).await.map_err(|e| body.sink_failed(first.len(), e))?;
    each(&first);
    let mut chunk = vec![0; BODY_BUFFER];
    while let Some(want) = body.want(chunk.len()) {
        let read = unless(R::sleep_until(body.deadline()), stream.read(&mut chunk[..want])).await;
        let n = body.on_read(read, Instant::now())?;
        sink.write_all(&chunk[..n]).await.map_err(|e| body.sink_failed(n, e))?;
        each(&chunk[..n]);
    }
    Ok(())
}

/// Writes `bytes`, which the peer must take within `within`.
pub async fn write_all<R: AnyExecutor>(
    stream: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    within: Duration,
) -> io::Result<()> {
    let written = unless(R::sleep_until(Instant::now() + within), stream.write_all(bytes)).await;
    written.unwrap_or_else(|| Err(stopped_reading()))
}

/// After FIN: reads and discards what the peer still sends, up to
/// [`LINGER_BYTES`] for [`LINGER`], so that the kernel does not answer it
/// with a reset that could destroy the answer before the peer reads it.
pub async fn drain<R: AnyExecutor>(stream: impl AsyncRead + Unpin) {
    let drain = stream.take(LINGER_BYTES);
    unless(R::sleep_until(Instant::now() + LINGER), futures_lite::io::copy(drain, futures_lite::io::sink())).await;
}

/// Sends a file's range through `out` (TLS), every window copied
/// ([`send_copied`]) and taken within `idle`, counting in `sent`.
async fn send_through<R: AnyExecutor>(
    out: &mut (impl AsyncWrite + Unpin),
    body: FileBody,
    idle: Duration,
    sent: &mut u64,
) -> io::Result<()> {
    let body = Arc::new(body);
    for window in body.windows(SEND_WINDOW) {
        let len = window.end - window.start;
        let done = unless(R::sleep_until(Instant::now() + idle), send_copied::<R>(out, &body, window)).await;
        done.unwrap_or_else(|| Err(stopped_reading()))?;
        *sent += len;
    }
    Ok(())
}

/// Sends a file's range on `socket`, a socket registered with async-io,
/// the reactor under both smol and async-std, with `sendfile(2)` driven by
/// readiness: `write_with` calls it on the non-blocking socket, and when it
/// would block, waits for the reactor to say the socket is writable and
/// calls again — nginx's loop. File pages go to the socket without passing
/// through this process. Every [`SEND_WINDOW`] bytes must be accepted
/// within `idle`, so a client that stops reading is dropped; `sent`
/// counts the windows that went out.
pub async fn send_body<R: AnyExecutor>(
    socket: &Async<TcpStream>,
    body: FileBody,
    idle: Duration,
    sent: &mut u64,
) -> io::Result<()> {
    // Shared with the blocking pool when a window must be read there.
    let body = Arc::new(body);
    for window in body.windows(SEND_WINDOW) {
        let len = window.end - window.start;
        let done = unless(R::sleep_until(Instant::now() + idle), send_window::<R>(socket, &body, window)).await;
        done.unwrap_or_else(|| Err(stopped_reading()))?;
        *sent += len;
    }
    Ok(())
}

/// Sends one window of a body: `sendfile` until the socket is full, then a
/// wait for room. Only if the kernel has the window in memory: `sendfile`
/// reads the file on this executor thread, and from a slow disk it would
/// hold the thread, and every task on it, for as long as the disk takes.
async fn send_window<R: AnyExecutor>(
    socket: &Async<TcpStream>,
    body: &Arc<FileBody>,
    window: Range<u64>,
) -> io::Result<()> {
    if !body.resident(&window) {
        return send_copied::<R>(&mut &*socket, body, window).await;
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

/// Sends a window through this process, [`COLD_READ`](ferry_share::COLD_READ)
/// bytes at a time: read here what the kernel has in memory (`read_hot`),
/// on the runtime's blocking pool what it does not, so a disk's wait is a
/// pool thread's; then written to `out` (and encrypted, over TLS).
async fn send_copied<R: AnyExecutor>(
    out: &mut (impl AsyncWrite + Unpin),
    body: &Arc<FileBody>,
    window: Range<u64>,
) -> io::Result<()> {
    let mut at = window.start;
    while at < window.end {
        let bytes = match body.read_hot(at, window.end) {
            Some(bytes) => bytes,
            None => {
                let (body, end) = (Arc::clone(body), window.end);
                R::unblock(move || body.read_cold(at, end)).await?
            }
        };
        out.write_all(&bytes).await?;
        at += bytes.len() as u64;
    }
    out.flush().await
}
