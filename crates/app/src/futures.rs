//! What smol and async-std do the same way, because both read and write
//! through futures-io's traits (`AsyncRead`, `AsyncWrite`): a line's next
//! read, a body received at its pace, a write within a deadline, the drain
//! at close. A driver's connection says only what differs ([`FuturesLink`]:
//! its socket, how `sendfile` waits for room, how it sleeps;
//! [`FuturesSave`]: the file a client writes to), and is an [`AsyncLink`]
//! and an [`AsyncSave`] through the impls here.

use std::io;
use std::net::TcpStream;
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;

use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming, SEND_WINDOW};
use ferry_engine::frame::{LINE_READ, Spare, stopped_reading};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use rustix::io::Errno;

use ferry_engine::client::SaveError;
use ferry_share::FileBody;

use crate::link::{AsyncLink, AsyncSave};
use crate::save::Item;
use crate::serve::unless;
use crate::switch::AnyExecutor;

/// A connection on a runtime whose streams are futures-io's: what it does
/// its own way. Every such connection is an [`AsyncLink`].
#[allow(async_fn_in_trait)]
pub trait FuturesLink: AsFd + Sized {
    /// The runtime, for its timers.
    type Runtime: AnyExecutor;
    /// The socket.
    type Stream: AsyncRead + AsyncWrite + Unpin;
    /// The socket, and what has been received on it and not yet used.
    fn parts(&mut self) -> (&mut Self::Stream, &mut Vec<u8>);
    /// The socket alone, to drain at close.
    fn into_stream(self) -> Self::Stream;
    /// [`AsyncLink::send_body`]: the runtime's way to wait for room.
    async fn send_file(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()>;
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

    async fn send_body(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        self.send_file(body, idle, sent).await
    }

    /// Sends FIN (a `shutdown` of the write side), then drains.
    async fn close(self) {
        if rustix::net::shutdown(&self, rustix::net::Shutdown::Write).is_ok() {
            drain::<L::Runtime>(self.into_stream()).await;
        }
    }
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
        return send_cold::<R>(socket, body, window).await;
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

/// Sends a window the kernel does not have in memory: the runtime's
/// blocking pool reads it, [`COLD_READ`](ferry_share::COLD_READ) bytes at a
/// time, and this task writes what was read. The disk's wait is a pool
/// thread's.
async fn send_cold<R: AnyExecutor>(
    mut socket: &Async<TcpStream>,
    body: &Arc<FileBody>,
    window: Range<u64>,
) -> io::Result<()> {
    let mut at = window.start;
    while at < window.end {
        let (body, end) = (Arc::clone(body), window.end);
        let bytes = R::unblock(move || body.read_cold(at, end)).await?;
        socket.write_all(&bytes).await?;
        at += bytes.len() as u64;
    }
    Ok(())
}
