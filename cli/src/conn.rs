//! What can go wrong reading a connection, shared by the three drivers'
//! `connection.rs`, and how a client reports it.

use std::io;
use std::time::Duration;

use ferry_proto::{AnswerError, GreetingError};

use crate::error::ClientError;

/// How long a server keeps reading (and discarding) after its last answer on
/// a connection it is closing, so that unread request bytes do not make the
/// kernel reset the connection before the client has read that answer.
pub const LINGER: Duration = Duration::from_secs(1);

/// The most a server discards while lingering.
pub const LINGER_BYTES: u64 = 1 << 20;

/// How many bytes a driver asks for per read while it waits for a line.
pub const LINE_READ: usize = 8 * 1024;

/// The buffer a client receives bodies through. The kernel copies every
/// byte into it, so it must stay in the CPU's cache: larger buffers were
/// measured slower, not faster (README, benchmarks).
pub const BODY_BUFFER: usize = 64 * 1024;

/// A server must get this many body bytes accepted by the client's socket
/// within one idle timeout, or it drops the client. A deadline over a window
/// of bytes, not over each write: a client that has stopped reading still
/// lets the kernel take a few bytes now and then, and a per-write timeout
/// that restarts on any progress would never fire.
pub const SEND_WINDOW: u64 = 1 << 20;

/// The least a body must bring in every `--timeout` window (or all that is
/// left of it, when that is less). A per-read timeout alone never fires for
/// a server that trickles a byte a second; this bounds a body that makes no
/// real progress to about one window, whatever its length.
pub const MIN_PROGRESS: u64 = 1024;

/// Keeps a body to [`MIN_PROGRESS`] bytes per window: the deadline of the
/// current window, and whether the body kept pace when it ended. Without
/// I/O or a clock: each driver passes in the time and bytes it saw, and
/// waits in each read until [`Pace::deadline`].
#[derive(Debug, Clone)]
pub struct Pace {
    window: Duration,
    started: std::time::Instant,
    at_start: u64,
}

impl Pace {
    /// A first window of length `window`, from `now`, with `received` bytes
    /// of the body already in.
    pub fn new(window: Duration, now: std::time::Instant, received: u64) -> Pace {
        Pace { window, started: now, at_start: received }
    }

    /// When the current window ends; no read waits past it.
    pub fn deadline(&self) -> std::time::Instant {
        self.started + self.window
    }

    /// Called after each read, and when a wait reached [`Pace::deadline`],
    /// with the body's bytes so far out of `len`. Once the window is over, it
    /// either starts the next one or, if the window brought too little, says
    /// how many bytes it did bring.
    pub fn check(&mut self, now: std::time::Instant, received: u64, len: u64) -> Result<(), BodyCause> {
        if now < self.deadline() {
            return Ok(());
        }
        let brought = received - self.at_start;
        if brought >= MIN_PROGRESS.min(len - self.at_start) {
            *self = Pace::new(self.window, now, received);
            Ok(())
        } else {
            Err(BodyCause::Stalled { brought })
        }
    }
}

/// What parses one line from the front of a receive buffer: the greeting,
/// an answer header, or a server's run of pipelined requests.
pub trait ParseLine<T, E>: FnMut(&[u8]) -> Result<ferry_proto::Parsed<T>, E> {}

impl<T, E, P: FnMut(&[u8]) -> Result<ferry_proto::Parsed<T>, E>> ParseLine<T, E> for P {}

/// Parses a line from the front of `buffer` with `parse`, and removes it:
/// `Some` once a whole line is there, `None` when more must be read. Every
/// driver's `read_line` is a loop of this and its runtime's read.
pub fn take_line<T, E>(buffer: &mut Vec<u8>, parse: &mut impl ParseLine<T, E>) -> Result<Option<T>, LineError<E>> {
    match parse(buffer).map_err(LineError::Invalid)? {
        ferry_proto::Parsed::Complete { value, consumed } => {
            buffer.drain(..consumed);
            Ok(Some(value))
        }
        ferry_proto::Parsed::Incomplete => Ok(None),
    }
}

/// A body being received, without I/O: how much to read next, until when,
/// and what each read means. Each driver's `read_body` is a loop of its
/// runtime's read, under [`Incoming::deadline`], fed to
/// [`Incoming::on_read`].
#[derive(Debug)]
pub struct Incoming {
    len: u64,
    received: u64,
    pace: Pace,
}

impl Incoming {
    /// Starts a body of `len` bytes that must keep [`Pace`] over windows of
    /// `timeout`. Bytes that arrived together with the header are taken from
    /// the front of `buffer` and returned: they come first.
    pub fn start(len: u64, timeout: Duration, buffer: &mut Vec<u8>) -> (Incoming, Vec<u8>) {
        let buffered = buffer.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        let first: Vec<u8> = buffer.drain(..buffered).collect();
        let received = first.len() as u64;
        (Incoming { len, received, pace: Pace::new(timeout, std::time::Instant::now(), received) }, first)
    }

    /// How many bytes to ask for next (at most `buffer`), or `None` once the
    /// body is whole.
    pub fn want(&self, buffer: usize) -> Option<usize> {
        (self.received < self.len).then(|| (self.len - self.received).min(buffer as u64) as usize)
    }

    /// When the current read must give up: the end of the pace window.
    pub fn deadline(&self) -> std::time::Instant {
        self.pace.deadline()
    }

    /// What a read returned (`None`: it reached [`Incoming::deadline`]):
    /// how many bytes it brought, or why the body ends here.
    pub fn on_read(&mut self, read: Option<io::Result<usize>>) -> Result<usize, BodyError> {
        let received = self.received;
        let n = match read {
            None => 0,
            Some(Ok(0)) => return Err(BodyError { received, cause: BodyCause::Closed }),
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => 0,
            Some(Err(e)) if is_timeout(&e) => 0,
            Some(Err(e)) => return Err(BodyError::socket(received, e)),
        };
        self.received += n as u64;
        self.pace
            .check(std::time::Instant::now(), self.received, self.len)
            .map_err(|cause| BodyError { received, cause })?;
        Ok(n)
    }

    /// Writing the last `n` bytes where they belong failed.
    pub fn sink_failed(&self, n: usize, error: io::Error) -> BodyError {
        BodyError { received: self.received - n as u64, cause: BodyCause::Sink(error) }
    }
}

/// Reading a header line failed.
#[derive(Debug)]
pub enum LineError<E> {
    /// The peer closed the connection before a whole line.
    Closed,
    /// The deadline passed before a whole line.
    TimedOut,
    /// The line is not what FERRY/1 allows here.
    Invalid(E),
    /// The socket failed.
    Io(io::Error),
}

impl<E> LineError<E> {
    /// Classifies a failed read: an expired socket timeout is `TimedOut`.
    pub fn from_io(error: io::Error) -> LineError<E> {
        if is_timeout(&error) { LineError::TimedOut } else { LineError::Io(error) }
    }
}

/// The error of a write the peer did not take within its deadline: it has
/// stopped reading. One wording for every driver, server and client.
pub fn stopped_reading() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")
}

/// Whether an I/O error is an expired socket timeout.
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl LineError<GreetingError> {
    /// What a client reports when the greeting did not arrive.
    pub fn into_client(self, addr: &str, timeout: Duration) -> ClientError {
        let addr = addr.to_owned();
        match self {
            LineError::Closed => ClientError::Closed { addr },
            LineError::TimedOut => ClientError::NotFerry { addr, said: format!("nothing within {timeout:?}") },
            LineError::Invalid(GreetingError { said }) => ClientError::NotFerry { addr, said },
            LineError::Io(source) => ClientError::Io { addr, source },
        }
    }
}

impl LineError<AnswerError> {
    /// What a client reports when an answer header did not arrive.
    pub fn into_client(self, addr: &str, timeout: Duration) -> ClientError {
        let addr = addr.to_owned();
        match self {
            LineError::Closed => ClientError::Closed { addr },
            LineError::TimedOut => ClientError::Timeout { addr, timeout },
            LineError::Invalid(error) => ClientError::Protocol { addr, detail: error.to_string() },
            LineError::Io(source) => ClientError::Io { addr, source },
        }
    }
}

/// Receiving a body failed after `received` of its bytes.
#[derive(Debug)]
pub struct BodyError {
    /// Bytes received (and written to the sink) before it failed.
    pub received: u64,
    /// What failed.
    pub cause: BodyCause,
}

/// Why a body stopped.
#[derive(Debug)]
pub enum BodyCause {
    /// The server closed the connection.
    Closed,
    /// Nothing arrived for the whole timeout.
    TimedOut,
    /// Fewer than [`MIN_PROGRESS`] bytes arrived in one timeout window.
    Stalled {
        /// How many did.
        brought: u64,
    },
    /// The socket failed.
    Io(io::Error),
    /// Writing the bytes where they belong failed.
    Sink(io::Error),
}

impl BodyError {
    /// A failure of the socket (not of the sink), classified.
    pub fn socket(received: u64, error: io::Error) -> BodyError {
        let cause = if is_timeout(&error) { BodyCause::TimedOut } else { BodyCause::Io(error) };
        BodyError { received, cause }
    }

    /// What a client reports for the body of `path`, `expected` bytes long,
    /// going to `sink`.
    pub fn into_client(self, path: &str, expected: u64, sink: &std::path::Path, timeout: Duration) -> ClientError {
        let why = match self.cause {
            BodyCause::Closed => "the server closed the connection".to_owned(),
            BodyCause::TimedOut | BodyCause::Stalled { brought: 0 } => {
                format!("no data for {:.1} s", timeout.as_secs_f64())
            }
            BodyCause::Stalled { brought } => format!(
                "only {brought} bytes in {:.1} s, below the {MIN_PROGRESS} bytes per --timeout a body must bring",
                timeout.as_secs_f64()
            ),
            BodyCause::Io(error) => error.to_string(),
            BodyCause::Sink(error) => return crate::SaveError::io(sink, error).into(),
        };
        ClientError::ShortBody { path: path.to_owned(), got: self.received, expected, why }
    }
}

/// Whether the peer on `socket` has left: it closed its sending side or
/// reset the connection. Asked between chunks of heavy work (a SUM of a
/// large file), so that work for a client that disconnected stops within a
/// chunk instead of holding its connection's slot. Does not wait.
///
/// A client that half-closes its sending side while a heavy answer is
/// computed is taken to have left, as nginx treats a client that closes
/// mid-request; FERRY/1 clients end a session with QUIT, not with a
/// half-close (SPEC.md §7).
pub fn peer_left(socket: impl std::os::fd::AsFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&socket, PollFlags::RDHUP)];
    let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    match rustix::event::poll(&mut fds, Some(&zero)) {
        Ok(0) | Err(_) => false,
        Ok(_) => fds[0].revents().intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR),
    }
}

/// Logs accept errors at most once a second, with a count of the ones it
/// held back: running out of descriptors fails every accept at once.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    last: Option<std::time::Instant>,
    held_back: u64,
}

impl AcceptErrors {
    /// Records a failed accept; logs it if a second has passed since the
    /// last one logged. Returns how long the accept loop should pause
    /// before trying again (none for a connection that was simply reset).
    pub fn record(&mut self, error: &io::Error) -> Option<Duration> {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
        ) {
            tracing::debug!(%error, "accept");
            return None;
        }
        let now = std::time::Instant::now();
        if self.last.is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1)) {
            let held_back = std::mem::take(&mut self.held_back);
            tracing::warn!(%error, held_back, "accept failed; pausing 100 ms");
            self.last = Some(now);
        } else {
            self.held_back += 1;
        }
        Some(Duration::from_millis(100))
    }
}

/// The refusal a server sends when a request line did not arrive in time.
pub fn timeout_refusal(idle: Duration) -> ferry_proto::Refusal {
    ferry_proto::Refusal::new(
        ferry_proto::ErrorCode::Timeout,
        format!("no complete request line within {:.1} s; closing", idle.as_secs_f64()),
    )
}

/// The refusal a server sends instead of its greeting at its limit.
pub fn busy_refusal(limit: usize) -> ferry_proto::Refusal {
    ferry_proto::Refusal::new(
        ferry_proto::ErrorCode::Busy,
        format!("serving {limit} connections already; try again later"),
    )
}

/// The greeting a server of implementation `name` sends.
pub fn greeting(name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    ferry_proto::encode_greeting(name, &mut bytes);
    bytes
}

/// Where a server connects to itself to wake its own blocked `accept`: its
/// address, with an unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
pub fn wake_addr(local: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// The largest LIST or SUM body a client accepts into memory; a larger
/// header is a broken or hostile server, not a big folder.
pub const MAX_SMALL_BODY: u64 = 256 << 20;

/// Zeroed room at the end of a buffer for one read, taken off again when
/// dropped, but for the bytes the read [kept](Spare::keep): a read into it
/// that is cancelled half-way (dropped at a deadline, or by a race with
/// shutdown) leaves no zeros behind to be parsed as data. For the runtimes
/// whose reads take a `&mut [u8]` that must be initialised (futures-io:
/// smol, async-std); tokio's `read_buf` fills spare capacity instead.
#[derive(Debug)]
pub struct Spare<'a> {
    buffer: &'a mut Vec<u8>,
    filled: usize,
    kept: usize,
}

impl<'a> Spare<'a> {
    /// Room for as many bytes as are buffered (at least 1 KiB, at most `most`).
    pub fn grow(buffer: &'a mut Vec<u8>, most: usize) -> Spare<'a> {
        let filled = buffer.len();
        buffer.resize(filled + filled.clamp(1024, most), 0);
        Spare { buffer, filled, kept: 0 }
    }

    /// The room to read into.
    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.buffer[self.filled..]
    }

    /// The read filled `n` bytes of the room.
    pub fn keep(&mut self, n: usize) {
        self.kept = n;
    }
}

impl Drop for Spare<'_> {
    fn drop(&mut self) {
        self.buffer.truncate(self.filled + self.kept);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn a_peer_that_closes_has_left_one_that_sends_has_not() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        assert!(!peer_left(&server));
        client.write_all(b"GET a\n").expect("write");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!peer_left(&server), "pipelined bytes are not a departure");
        drop(client);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !peer_left(&server) {
            assert!(std::time::Instant::now() < deadline, "the close was never seen");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
