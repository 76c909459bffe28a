//! The server's side of one connection as steps, without I/O.
//!
//! The counterpart of [`crate::client::Session`]: a driver's `server.rs` asks
//! [`Serving::next`] what to do, does it with its runtime, and hands the
//! result back. `Serving` decides the order of things once for every
//! runtime: the greeting (or `ERR BUSY` instead of it), reading requests
//! until the idle deadline, `ERR TIMEOUT` and a graceful close when none
//! comes, answering what was read in batches (heavy ones behind a permit),
//! which answers close the connection, that
//! shutdown ends a connection between requests, and one access-log line per
//! request. It reads no clock: every call that starts or ends a wait takes
//! the time, so the tests below drive it with a fake one. What differs by
//! runtime stays in the driver: accepting, the connection limit, waiting and
//! racing shutdown, the blocking pool, the body path. The answers themselves
//! are the share's ([`Answers`]): the session only passes them on.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Answers, Logged, Pending, WriteCut, access, busy_refusal, greeting, starts_heavy, timeout_refusal};
use crate::frame::LineError;
use crate::{Answer, Refusal, Request};

/// How long a client past the connection limit has to take its `ERR BUSY`.
pub const BUSY_WRITE: Duration = Duration::from_secs(1);

/// One connection, from the server's side; `B` is what the share answers
/// with (`ferry_share::Batch`).
#[derive(Debug)]
pub struct Serving<B> {
    peer: SocketAddr,
    idle: Duration,
    pending: VecDeque<Result<Request, Refusal>>,
    phase: Phase<B>,
    /// The batch being written: when its requests were read, and their log.
    started: Instant,
    log: Vec<Logged>,
}

#[derive(Debug)]
enum Phase<B> {
    /// Something to write, then where to go.
    Write {
        batch: B,
        within: Duration,
        then: After,
    },
    /// Waiting for the driver to report a write.
    Writing {
        then: After,
    },
    /// Requests to read.
    Read,
    /// Requests to answer.
    Answer,
    /// Waiting for the driver's answer.
    Answering,
    Close,
    Stop,
}

/// Where a connection goes once a write is done.
#[derive(Debug, Clone, Copy)]
enum After {
    /// On to the next requests.
    Next,
    /// Close gracefully: the answer closed the connection.
    Close,
    /// Stop at once: nothing is expected back.
    Stop,
}

/// What the driver does next.
#[derive(Debug)]
pub enum Next<B> {
    /// Write `batch` (bytes, and file bodies from their files),
    /// each part taken within `within`; pass the result to
    /// [`Serving::on_written`].
    Write {
        /// The answers.
        batch: B,
        /// How long the peer may take to accept each part.
        within: Duration,
    },
    /// Read request lines into [`Serving::pending`] until `deadline`,
    /// racing shutdown; pass the result to [`Serving::on_read`].
    Read {
        /// When the whole line must have arrived.
        deadline: Instant,
    },
    /// Answer [`Serving::take_pending`] with the share (`Root::batch`), off
    /// the event loop, by `deadline`; when
    /// `heavy`, first wait (at most until `deadline`, racing shutdown) for
    /// a permit of the server-wide limit. Pass the batch and what is left
    /// to [`Serving::on_answered`].
    Answer {
        /// Whether the batch starts with a heavy request.
        heavy: bool,
        /// When its answer must be ready.
        deadline: Instant,
    },
    /// Close gracefully (send FIN, drain briefly) and stop.
    Close,
    /// Stop: the peer left, or the server is shutting down.
    Stop,
}

impl<B: Answers> Serving<B> {
    /// A connection admitted under the limit at `now`: the greeting of
    /// implementation `name` comes first; requests may take `idle`.
    pub fn new(peer: SocketAddr, name: &str, idle: Duration, now: Instant) -> Serving<B> {
        tracing::debug!(%peer, "connected");
        let batch = B::bytes(greeting(name));
        Serving::with(peer, idle, Phase::Write { batch, within: idle, then: After::Next }, now)
    }

    /// A connection past the limit of `limit`: `ERR BUSY` instead of the
    /// greeting, then the end, without waiting for anything.
    pub fn busy(peer: SocketAddr, limit: usize, now: Instant) -> Serving<B> {
        access::refused(Some(peer), "BUSY");
        let batch = B::bytes(refusal(busy_refusal(limit)));
        Serving::with(peer, BUSY_WRITE, Phase::Write { batch, within: BUSY_WRITE, then: After::Stop }, now)
    }

    fn with(peer: SocketAddr, idle: Duration, phase: Phase<B>, now: Instant) -> Serving<B> {
        Serving { peer, idle, pending: VecDeque::new(), phase, started: now, log: Vec::new() }
    }

    /// The peer.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// What to do next, at `now`; `shutting_down` once the server is.
    pub fn next(&mut self, now: Instant, shutting_down: bool) -> Next<B> {
        match std::mem::replace(&mut self.phase, Phase::Stop) {
            Phase::Write { batch, within, then } => {
                self.phase = Phase::Writing { then };
                Next::Write { batch, within }
            }
            // Between requests, shutdown ends the connection at once.
            Phase::Read | Phase::Answer if shutting_down => Next::Stop,
            Phase::Read if !self.pending.is_empty() => self.answer(now),
            Phase::Read => {
                self.phase = Phase::Read;
                Next::Read { deadline: now + self.idle }
            }
            Phase::Answer => self.answer(now),
            Phase::Close => Next::Close,
            // A driver that asks again without the call back it owes ends
            // the connection rather than guess.
            Phase::Writing { .. } | Phase::Answering | Phase::Stop => Next::Stop,
        }
    }

    fn answer(&mut self, now: Instant) -> Next<B> {
        self.started = now;
        self.phase = Phase::Answering;
        Next::Answer { heavy: starts_heavy(&self.pending), deadline: self.started + self.idle }
    }

    /// Where [`Next::Read`] puts the requests it reads.
    pub fn pending(&mut self) -> &mut Pending {
        &mut self.pending
    }

    /// The requests to answer, moved out for the blocking pool; they come
    /// back, less the ones answered, with [`Serving::on_answered`].
    pub fn take_pending(&mut self) -> Pending {
        std::mem::take(&mut self.pending)
    }

    /// How [`Next::Read`] ended: `None` if shutdown came first.
    pub fn on_read(&mut self, read: Option<Result<(), LineError<Infallible>>>) -> io::Result<()> {
        self.phase = match read {
            None | Some(Err(LineError::Closed)) => Phase::Stop,
            Some(Ok(())) => Phase::Answer,
            Some(Err(LineError::TimedOut)) => {
                access::refused(Some(self.peer), "TIMEOUT");
                let batch = B::bytes(refusal(timeout_refusal(self.idle)));
                Phase::Write { batch, within: self.idle, then: After::Close }
            }
            Some(Err(LineError::Io(error))) => return Err(error),
            Some(Err(LineError::Invalid(never))) => match never {},
        };
        Ok(())
    }

    /// The batch that answers the front of the requests, and those left.
    pub fn on_answered(&mut self, (mut batch, rest): (B, Pending)) {
        self.pending = rest;
        self.log = batch.take_log();
        let then = if batch.closes() { After::Close } else { After::Next };
        self.phase = Phase::Write { batch, within: self.idle, then };
    }

    /// How [`Next::Write`] went, done at `now`; logs the requests it
    /// answered, with the bytes each actually sent, and passes a failure on
    /// (the connection then ends).
    pub fn on_written(&mut self, written: Result<(), WriteCut>, now: Instant) -> io::Result<()> {
        let log = std::mem::take(&mut self.log);
        access::answered(self.peer, &log, now.saturating_duration_since(self.started), &written);
        let written = written.map_err(|cut| cut.error);
        let Phase::Writing { then } = self.phase else { return written };
        self.phase = match then {
            After::Next => Phase::Read,
            After::Close => Phase::Close,
            After::Stop => Phase::Stop,
        };
        written
    }
}

/// The bytes of an answer refusing with `refusal`.
fn refusal(refusal: Refusal) -> Vec<u8> {
    let mut bytes = Vec::new();
    Answer::Err(refusal).encode(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers as bytes in memory, the way the share's batches look to the
    /// session.
    #[derive(Debug, Default)]
    struct Written {
        bytes: Vec<u8>,
        closes: bool,
        log: Vec<Logged>,
    }

    impl Answers for Written {
        fn bytes(bytes: Vec<u8>) -> Written {
            Written { bytes, ..Written::default() }
        }
        fn closes(&self) -> bool {
            self.closes
        }
        fn take_log(&mut self) -> Vec<Logged> {
            std::mem::take(&mut self.log)
        }
    }

    const IDLE: Duration = Duration::from_secs(1);

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().expect("addr")
    }

    fn bytes(next: Next<Written>) -> Vec<u8> {
        let Next::Write { batch, .. } = next else { panic!("expected Write, got {next:?}") };
        batch.bytes
    }

    fn request(line: &str) -> Result<Request, Refusal> {
        match crate::parse_request(line.as_bytes()) {
            crate::Parsed::Complete { value, .. } => value,
            crate::Parsed::Incomplete => panic!("incomplete"),
        }
    }

    /// A session past its greeting, waiting for requests, at `now`.
    fn greeted(now: Instant) -> Serving<Written> {
        let mut serving = Serving::new(peer(), "test", IDLE, now);
        assert_eq!(bytes(serving.next(now, false)), b"FERRY/1 test\n");
        serving.on_written(Ok(()), now).expect("written");
        serving
    }

    #[test]
    fn greet_read_answer_write_and_read_again() {
        let now = Instant::now();
        let mut serving = greeted(now);
        assert!(matches!(serving.next(now, false), Next::Read { .. }));
        serving.pending().push_back(request("SUM a\n"));
        serving.on_read(Some(Ok(()))).expect("read");
        assert!(matches!(serving.next(now, false), Next::Answer { heavy: true, .. }));
        let pending = serving.take_pending();
        assert_eq!(pending.len(), 1);
        serving.on_answered((Written::bytes(b"OK 0\n".to_vec()), VecDeque::new()));
        assert_eq!(bytes(serving.next(now, false)), b"OK 0\n");
        serving.on_written(Ok(()), now).expect("written");
        assert!(matches!(serving.next(now, false), Next::Read { .. }));
    }

    #[test]
    fn every_deadline_counts_from_the_time_it_is_given() {
        let start = Instant::now();
        let mut serving = greeted(start);
        // The wait for a request line starts when the session is asked.
        let later = start + Duration::from_secs(7);
        let Next::Read { deadline } = serving.next(later, false) else { panic!("not Read") };
        assert_eq!(deadline, later + IDLE);
        // An answer must be ready one idle timeout after its request was read.
        serving.pending().push_back(request("LIST /\n"));
        serving.on_read(Some(Ok(()))).expect("read");
        let read = later + Duration::from_millis(300);
        let Next::Answer { deadline, heavy: true } = serving.next(read, false) else { panic!("not Answer") };
        assert_eq!(deadline, read + IDLE);
        // A pipelined GET behind it is not heavy.
        serving.on_answered((Written::bytes(b"OK 0\n".to_vec()), VecDeque::from([request("GET a\n")])));
        serving.next(read, false);
        serving.on_written(Ok(()), read).expect("written");
        let Next::Answer { heavy: false, .. } = serving.next(read, false) else { panic!("not Answer") };
    }

    #[test]
    fn silence_is_answered_timeout_and_closed() {
        let now = Instant::now();
        let mut serving = Serving::<Written>::new(peer(), "test", Duration::from_millis(500), now);
        serving.next(now, false);
        serving.on_written(Ok(()), now).expect("written");
        serving.next(now, false);
        serving.on_read(Some(Err(LineError::TimedOut))).expect("read");
        let line = String::from_utf8(bytes(serving.next(now, false))).expect("utf-8");
        assert!(line.starts_with("ERR TIMEOUT ") && line.contains("0.5 s"), "{line}");
        serving.on_written(Ok(()), now).expect("written");
        assert!(matches!(serving.next(now, false), Next::Close));
    }

    #[test]
    fn shutdown_between_requests_and_a_departed_peer_stop_at_once() {
        let now = Instant::now();
        let mut serving = Serving::<Written>::new(peer(), "test", IDLE, now);
        serving.next(now, true);
        serving.on_written(Ok(()), now).expect("the greeting goes out even at shutdown");
        assert!(matches!(serving.next(now, true), Next::Stop));

        let mut serving = greeted(now);
        serving.next(now, false);
        serving.on_read(Some(Err(LineError::Closed))).expect("read");
        assert!(matches!(serving.next(now, false), Next::Stop));

        let mut serving = greeted(now);
        serving.next(now, false);
        serving.on_read(None).expect("shutdown came first");
        assert!(matches!(serving.next(now, false), Next::Stop));
    }

    #[test]
    fn a_closing_answer_closes_and_busy_says_so_and_stops() {
        let now = Instant::now();
        let mut serving = greeted(now);
        serving.next(now, false);
        serving.on_read(Some(Ok(()))).expect("read");
        serving.next(now, false);
        serving.on_answered((Written { bytes: b"BYE\n".to_vec(), closes: true, log: Vec::new() }, VecDeque::new()));
        serving.next(now, false);
        serving.on_written(Ok(()), now).expect("written");
        assert!(matches!(serving.next(now, false), Next::Close));

        let mut busy = Serving::<Written>::busy(peer(), 2, now);
        let Next::Write { batch, within } = busy.next(now, false) else { panic!("not Write") };
        let line = String::from_utf8(batch.bytes).expect("utf-8");
        assert!(line.starts_with("ERR BUSY serving 2 connections"), "{line}");
        assert_eq!(within, BUSY_WRITE, "a client past the limit gets a second to take its answer");
        busy.on_written(Ok(()), now).expect("written");
        assert!(matches!(busy.next(now, false), Next::Stop));
    }

    #[test]
    fn a_failed_write_is_passed_on() {
        let now = Instant::now();
        let mut serving = Serving::<Written>::new(peer(), "test", IDLE, now);
        serving.next(now, false);
        let failed = serving.on_written(Err(io::Error::from(io::ErrorKind::BrokenPipe).into()), now);
        assert_eq!(failed.expect_err("passed on").kind(), io::ErrorKind::BrokenPipe);
    }
}
