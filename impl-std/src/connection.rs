//! A TCP stream and its receive buffer, used by both server and client:
//! [`Link`] with blocking calls.
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

use ferry_app::dial;
use ferry_app::link::Link;
use ferry_engine::body::SEND_WINDOW;
use ferry_engine::client::{ClientConfig, ClientError};
use ferry_engine::frame::{LINE_READ, is_timeout, stopped_reading};
use ferry_engine::server::{LINGER, LINGER_BYTES};
use ferry_share::FileBody;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    /// Shared, not owned: the server keeps another handle to shut the read
    /// side at shutdown, and an `Arc` does that without a second descriptor.
    pub(crate) stream: Arc<TcpStream>,
    pub(crate) buffer: Vec<u8>,
    /// The write timeout last set on the socket, so it is set only when it
    /// changes (a system call each time).
    write_limit: Option<Duration>,
}

impl Link for Connection {
    fn received(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// The socket's read timeout bounds one call, not a line: it is set to
    /// the time left before every read. A read the kernel interrupts is
    /// made again.
    fn read_more(&mut self, deadline: Instant) -> Option<io::Result<usize>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if let Err(e) = self.stream.set_read_timeout(Some(left)) {
                return Some(Err(e));
            }
            let filled = self.buffer.len();
            // The bytes read into must be zeroed first; reading little while
            // little is buffered keeps an idle connection to one touched
            // page of buffer rather than LINE_READ bytes of zeros.
            self.buffer.resize(filled + filled.clamp(1024, LINE_READ), 0);
            let read = (&*self.stream).read(&mut self.buffer[filled..]);
            self.buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
            match read {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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
        (&*self.stream).write_all(&bytes).map_err(|e| if is_timeout(&e) { stopped_reading() } else { e })
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
    fn send_body(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        self.stream.set_nonblocking(true)?;
        let went = body.windows(SEND_WINDOW).try_for_each(|window| {
            let len = window.end - window.start;
            self.send_window(&body, window, Instant::now() + idle).map(|()| *sent += len)
        });
        self.stream.set_nonblocking(false)?;
        went
    }

    /// Sends FIN (`shutdown` of the write side), then drains up to
    /// [`LINGER_BYTES`] under a read timeout of [`LINGER`].
    fn close(self) {
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

impl Connection {
    /// Connects to the first address `config.addr` resolves to that
    /// accepts (client side), each within the client's timeout.
    pub fn connect(config: &ClientConfig) -> Result<Connection, ClientError> {
        let attempt = |to, within| match TcpStream::connect_timeout(&to, within) {
            Err(error) if error.kind() == io::ErrorKind::TimedOut => None,
            connected => Some(connected),
        };
        dial::connect_blocking(config, |addr: &str| addr.to_socket_addrs(), attempt).map(Connection::new)
    }

    /// Wraps a connected stream; its `TCP_NODELAY` is already set (by the
    /// listener it was accepted from, or by `Dial::made`).
    pub fn new(stream: impl Into<Arc<TcpStream>>) -> Connection {
        Connection { stream: stream.into(), buffer: Vec::with_capacity(LINE_READ), write_limit: None }
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
