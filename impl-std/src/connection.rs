//! A TCP stream (or a TLS stream over one: rustls' `StreamOwned`) and its
//! receive buffer, used by both server and client: [`Link`] with blocking
//! calls.
//!
//! Lines are parsed by `ferry-engine` from the front of the buffer; bytes
//! beyond the line stay for the next call (pipelined requests, or the start
//! of a body). Reads wait at most until a deadline: `set_read_timeout` is set
//! to the time left before every read, because it bounds one call, not the
//! line.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_app::dial::{self, Remote};
use ferry_app::link::Link;
use ferry_app::tls::ServerTls;
use ferry_engine::body::SEND_WINDOW;
use ferry_engine::client::ClientError;
use ferry_engine::frame::{LINE_READ, is_timeout, stopped_reading};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_share::FileBody;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustls::{ClientConnection, ServerConnection, StreamOwned};

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    /// Shared, not owned: the server keeps another handle to shut the read
    /// side at shutdown, and an `Arc` does that without a second descriptor.
    /// Its timeouts bound every read and write, through TLS too.
    pub(crate) stream: Arc<TcpStream>,
    /// What reads and writes go through: the socket, or TLS over it.
    pub(crate) wire: Wire,
    pub(crate) buffer: Vec<u8>,
    /// The write timeout last set on the socket, so it is set only when it
    /// changes (a system call each time).
    write_limit: Option<Duration>,
    /// The read timeout last set on the socket ([`Connection::read_timeout`]).
    read_limit: Option<Duration>,
}

/// What a read timeout set for a line's deadline is rounded down to.
const READ_LIMIT_STEP: Duration = Duration::from_millis(10);

impl Link for Connection {
    fn received(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// The socket's read timeout bounds one call, not a line: before a
    /// read, one that would outlast the deadline is lowered to the time
    /// left, rounded down to [`READ_LIMIT_STEP`]. The next line's deadline,
    /// a moment later than this one's, then finds it short enough as it
    /// is: one `setsockopt` a connection rather than one a request. A read
    /// cut early by the rounding, or interrupted, is made again.
    fn read_more(&mut self, deadline: Instant) -> Option<io::Result<usize>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if self.read_limit.is_none_or(|limit| limit > left) {
                let step = READ_LIMIT_STEP.as_nanos();
                let rounded = Duration::from_nanos(u64::try_from(left.as_nanos() / step * step).unwrap_or(u64::MAX));
                if let Err(e) = self.read_timeout(if rounded.is_zero() { left } else { rounded }) {
                    return Some(Err(e));
                }
            }
            let filled = self.buffer.len();
            // The bytes read into must be zeroed first; reading little while
            // little is buffered keeps an idle connection to one touched
            // page of buffer rather than LINE_READ bytes of zeros.
            self.buffer.resize(filled + filled.clamp(1024, LINE_READ), 0);
            let read = self.wire.read(&mut self.buffer[filled..]);
            self.buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
            match read {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                read => return Some(read),
            }
        }
    }

    /// The socket's write timeout bounds each `write`; it is set only when
    /// it changes.
    fn write_all(&mut self, bytes: Vec<u8>, within: Duration) -> io::Result<()> {
        if self.write_limit != Some(within) {
            self.stream.set_write_timeout(Some(within))?;
            self.write_limit = Some(within);
        }
        // TLS keeps what it could not send yet: the flush sends it.
        self.wire.write_all(&bytes).and_then(|()| self.wire.flush()).map_err(stopped_if_timed_out)
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
    /// Over TLS the bytes must be encrypted here (no kTLS): each window is
    /// read and written through TLS, [`COLD_READ`](ferry_share::COLD_READ)
    /// at a time, under the write timeout.
    fn send_body(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        if !matches!(self.wire, Wire::Plain(_)) {
            return body.windows(SEND_WINDOW).try_for_each(|window| {
                let len = window.end - window.start;
                let mut at = window.start;
                while at < window.end {
                    let bytes = body.read_cold(at, window.end)?;
                    at += bytes.len() as u64;
                    self.write_all(bytes, idle)?;
                }
                *sent += len;
                Ok(())
            });
        }
        self.stream.set_nonblocking(true)?;
        let went = body.windows(SEND_WINDOW).try_for_each(|window| {
            let len = window.end - window.start;
            self.send_window(&body, window, Instant::now() + idle).map(|()| *sent += len)
        });
        self.stream.set_nonblocking(false)?;
        went
    }

    /// Sends FIN (`shutdown` of the write side; TLS first sends its
    /// close_notify), then drains up to [`LINGER_BYTES`] under a read
    /// timeout of [`LINGER`].
    fn close(mut self) {
        self.wire.close_notify();
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        // The read timeout bounds each read, not the whole drain; at most
        // two of LINGER each (end of stream usually comes at once).
        if self.read_timeout(LINGER).is_ok() {
            let _ = io::copy(&mut (&*self.stream).take(LINGER_BYTES), &mut io::sink());
        }
    }
}

impl Connection {
    /// Connects to the first address `config.addr` resolves to that
    /// accepts (client side), each within the client's timeout.
    pub fn connect(remote: &Remote) -> Result<Connection, ClientError> {
        let config = &remote.config;
        let attempt = |to, within| match TcpStream::connect_timeout(&to, within) {
            Err(error) if error.kind() == io::ErrorKind::TimedOut => None,
            connected => Some(connected),
        };
        let socket = dial::connect_blocking(config, |addr: &str| addr.to_socket_addrs(), attempt)?;
        let mut connection = Connection::new(socket);
        let Some(tls) = &remote.tls else { return Ok(connection) };
        let client = ClientConnection::new(tls.config(), tls.name()).map_err(io::Error::other);
        let shaken = client.and_then(|client| {
            connection.wire = Wire::Client(Box::new(StreamOwned::new(client, Socket(Arc::clone(&connection.stream)))));
            connection.handshake(Instant::now() + config.timeout)
        });
        shaken.map_err(|e| tls.failed(&config.addr, config.timeout, e))?;
        tls.settle(&config.addr)?;
        Ok(connection)
    }

    /// A connection just accepted: with TLS, once its handshake is done
    /// within `within` (`None` if it failed, and was logged).
    pub fn accepted(stream: Arc<TcpStream>, tls: Option<&ServerTls>, within: Duration) -> Option<Connection> {
        let mut connection = Connection::new(stream);
        let Some(tls) = tls else { return Some(connection) };
        let server = ServerConnection::new(tls.config()).map_err(io::Error::other);
        let shaken = server.and_then(|server| {
            connection.wire = Wire::Server(Box::new(StreamOwned::new(server, Socket(Arc::clone(&connection.stream)))));
            connection.handshake(Instant::now() + within)
        });
        match shaken {
            Ok(()) => Some(connection),
            Err(error) => {
                if let Ok(peer) = connection.stream.peer_addr() {
                    ServerTls::failed(peer, &error);
                }
                None
            }
        }
    }

    /// Wraps a connected stream; its `TCP_NODELAY` is already set (by the
    /// listener it was accepted from, or by `Dial::made`).
    pub fn new(stream: impl Into<Arc<TcpStream>>) -> Connection {
        let stream = stream.into();
        let wire = Wire::Plain(Socket(Arc::clone(&stream)));
        Connection { stream, wire, buffer: Vec::with_capacity(LINE_READ), write_limit: None, read_limit: None }
    }

    /// Sets the socket's read timeout, and remembers it: every read
    /// timeout goes through here, so that `read_more` knows the one in
    /// place.
    pub(crate) fn read_timeout(&mut self, limit: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(limit))?;
        self.read_limit = Some(limit);
        Ok(())
    }

    /// Does the TLS handshake, each read and write under the time left
    /// before `deadline`.
    fn handshake(&mut self, deadline: Instant) -> io::Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake did not finish in time"));
            }
            self.read_timeout(left)?;
            self.stream.set_write_timeout(Some(left))?;
            self.write_limit = Some(left);
            let step = match &mut self.wire {
                Wire::Plain(_) => None,
                Wire::Server(tls) => tls.conn.is_handshaking().then(|| tls.conn.complete_io(&mut tls.sock)),
                Wire::Client(tls) => tls.conn.is_handshaking().then(|| tls.conn.complete_io(&mut tls.sock)),
            };
            match step {
                None => return Ok(()),
                Some(step) => step?,
            };
        }
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
}

/// The socket's descriptor, for a check on the peer from a blocking
/// thread while heavy work runs (`ferry_app::serve` duplicates it).
impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// The shared socket as a stream TLS can own: reads and writes go to the
/// one descriptor.
#[derive(Debug)]
pub(crate) struct Socket(Arc<TcpStream>);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where reads and writes go: the socket itself, or rustls' `StreamOwned`
/// over it (a server's or a client's side of TLS).
#[derive(Debug)]
pub(crate) enum Wire {
    Plain(Socket),
    Server(Box<StreamOwned<ServerConnection, Socket>>),
    Client(Box<StreamOwned<ClientConnection, Socket>>),
}

impl Wire {
    /// Sends TLS's close_notify, so the peer can tell the end from a cut.
    fn close_notify(&mut self) {
        match self {
            Wire::Plain(_) => {}
            Wire::Server(tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            Wire::Client(tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    }
}

/// One read: over TLS, at most one read of the socket (`read_once`), so
/// that the deadline `read_more` recomputes before each read also bounds
/// a peer that trickles a record a byte at a time.
impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(socket) => socket.read(buf),
            Wire::Server(tls) => read_once(&mut tls.conn, &mut tls.sock, buf),
            Wire::Client(tls) => read_once(&mut tls.conn, &mut tls.sock, buf),
        }
    }
}

/// Plaintext already decrypted, or else one read of the socket, its
/// records processed (and anything TLS must answer written): `Interrupted`
/// when that brought no plaintext yet, for the caller to read again if its
/// deadline allows. (`StreamOwned::read` would loop on the socket until a
/// whole record came, past any deadline.)
fn read_once<Data>(conn: &mut rustls::ConnectionCommon<Data>, sock: &mut Socket, buf: &mut [u8]) -> io::Result<usize> {
    match conn.reader().read(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        read => return read,
    }
    if conn.read_tls(sock)? == 0 {
        // The end of the stream: the reader says whether it was clean.
        return conn.reader().read(buf);
    }
    let processed = conn.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    processed?;
    match conn.reader().read(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::Interrupted.into()),
        read => read,
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(socket) => socket.write(buf),
            Wire::Server(tls) => tls.write(buf),
            Wire::Client(tls) => tls.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(socket) => socket.flush(),
            Wire::Server(tls) => tls.flush(),
            Wire::Client(tls) => tls.flush(),
        }
    }
}

/// A write that ran out of time is a client that stopped reading.
fn stopped_if_timed_out(error: io::Error) -> io::Error {
    if is_timeout(&error) { stopped_reading() } else { error }
}
