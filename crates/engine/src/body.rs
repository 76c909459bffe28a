//! Bodies in flight, without I/O or a clock: how much to read next, until
//! when, and the pace a body must keep. Each driver passes in the time and
//! the bytes it saw; the rules are here once, and tested with a fake clock.

use std::io;
use std::time::{Duration, Instant};

use crate::frame::is_timeout;

/// The buffer a client receives bodies through. The kernel copies every
/// byte into it, so it must stay in the CPU's cache: larger buffers were
/// measured slower, not faster (benches/README.md).
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

/// The largest LIST or SUM body a client accepts into memory; a larger
/// header is a broken or hostile server, not a big folder.
pub const MAX_SMALL_BODY: u64 = 256 << 20;

/// Keeps a body to [`MIN_PROGRESS`] bytes per window: the deadline of the
/// current window, and whether the body kept pace when it ended. Each
/// driver passes in the time and bytes it saw, and waits in each read until
/// [`Pace::deadline`].
#[derive(Debug, Clone)]
pub struct Pace {
    window: Duration,
    started: Instant,
    at_start: u64,
}

impl Pace {
    /// A first window of length `window`, from `now`, with `received` bytes
    /// of the body already in.
    pub fn new(window: Duration, now: Instant, received: u64) -> Pace {
        Pace { window, started: now, at_start: received }
    }

    /// When the current window ends; no read waits past it.
    pub fn deadline(&self) -> Instant {
        self.started + self.window
    }

    /// Called after each read, and when a wait reached [`Pace::deadline`],
    /// with the body's bytes so far out of `len`. Once the window is over, it
    /// either starts the next one or, if the window brought too little, says
    /// how many bytes it did bring.
    pub fn check(&mut self, now: Instant, received: u64, len: u64) -> Result<(), BodyCause> {
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

/// A body being received: how much to read next, until when, and what each
/// read means. Each driver's `read_body` is a loop of its runtime's read,
/// under [`Incoming::deadline`], fed to [`Incoming::on_read`].
#[derive(Debug)]
pub struct Incoming {
    len: u64,
    received: u64,
    pace: Pace,
}

impl Incoming {
    /// Starts, at `now`, a body of `len` bytes that must keep [`Pace`] over
    /// windows of `timeout`. Bytes that arrived together with the header are
    /// taken from the front of `buffer` and returned: they come first.
    pub fn start(len: u64, timeout: Duration, buffer: &mut Vec<u8>, now: Instant) -> (Incoming, Vec<u8>) {
        let buffered = buffer.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        let first: Vec<u8> = buffer.drain(..buffered).collect();
        let received = first.len() as u64;
        (Incoming { len, received, pace: Pace::new(timeout, now, received) }, first)
    }

    /// How many bytes to ask for next (at most `buffer`), or `None` once the
    /// body is whole.
    pub fn want(&self, buffer: usize) -> Option<usize> {
        (self.received < self.len).then(|| (self.len - self.received).min(buffer as u64) as usize)
    }

    /// When the current read must give up: the end of the pace window.
    pub fn deadline(&self) -> Instant {
        self.pace.deadline()
    }

    /// What a read returned at `now` (`None`: it reached
    /// [`Incoming::deadline`]): how many bytes it brought, or why the body
    /// ends here.
    pub fn on_read(&mut self, read: Option<io::Result<usize>>, now: Instant) -> Result<usize, BodyError> {
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
        self.pace.check(now, self.received, self.len).map_err(|cause| BodyError { received, cause })?;
        Ok(n)
    }

    /// Writing the last `n` bytes where they belong failed.
    pub fn sink_failed(&self, n: usize, error: io::Error) -> BodyError {
        BodyError { received: self.received - n as u64, cause: BodyCause::Sink(error) }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    #[test]
    fn a_body_that_keeps_pace_is_never_cut_however_long_it_takes() {
        let start = Instant::now();
        let mut buffer = Vec::new();
        let (mut body, first) = Incoming::start(1 << 30, WINDOW, &mut buffer, start);
        assert!(first.is_empty());
        // A window's worth of minimum progress, one window after another.
        for window in 1..=100u32 {
            let now = start + WINDOW * window;
            assert_eq!(body.on_read(Some(Ok(MIN_PROGRESS as usize)), now).expect("keeps pace"), 1024);
            assert_eq!(body.deadline(), now + WINDOW, "each window starts where the last ended");
        }
    }

    #[test]
    fn a_trickle_below_the_minimum_is_cut_at_the_end_of_its_window() {
        let start = Instant::now();
        let (mut body, _) = Incoming::start(1 << 20, WINDOW, &mut Vec::new(), start);
        // Ten bytes a second: fine until the window ends, then too little.
        for second in 1..10u32 {
            body.on_read(Some(Ok(10)), start + Duration::from_secs(second.into())).expect("inside the window");
        }
        let cut = body.on_read(Some(Ok(10)), start + WINDOW).expect_err("below the minimum");
        assert!(matches!(cut.cause, BodyCause::Stalled { brought: 100 }), "{cut:?}");
        assert_eq!(cut.received, 90, "what was received before the read that ended it");
    }

    #[test]
    fn silence_until_the_deadline_is_a_stall_and_a_close_is_a_close() {
        let start = Instant::now();
        let (mut body, _) = Incoming::start(100, WINDOW, &mut Vec::new(), start);
        let silent = body.on_read(None, body.deadline()).expect_err("nothing in a whole window");
        assert!(matches!(silent.cause, BodyCause::Stalled { brought: 0 }));
        let (mut body, _) = Incoming::start(100, WINDOW, &mut Vec::new(), start);
        let closed = body.on_read(Some(Ok(0)), start).expect_err("end of stream");
        assert!(matches!(closed.cause, BodyCause::Closed));
    }

    #[test]
    fn the_tail_of_a_body_need_only_bring_what_is_left() {
        let start = Instant::now();
        let (mut body, first) = Incoming::start(600, WINDOW, &mut vec![7; 500], start);
        assert_eq!(first.len(), 500, "bytes read with the header come first");
        assert_eq!(body.want(BODY_BUFFER), Some(100));
        body.on_read(Some(Ok(100)), start + WINDOW).expect("100 bytes were all that was left");
        assert_eq!(body.want(BODY_BUFFER), None);
    }

    #[test]
    fn bytes_beyond_the_body_stay_in_the_buffer() {
        let mut buffer = b"abcOK 1\n".to_vec();
        let (_, first) = Incoming::start(3, WINDOW, &mut buffer, Instant::now());
        assert_eq!(first, b"abc");
        assert_eq!(buffer, b"OK 1\n");
    }
}
