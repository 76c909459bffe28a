//! The server's side of one connection as steps, without I/O.
//!
//! The counterpart of [`crate::session`]: a driver's `server.rs` asks
//! [`Serving::next`] what to do, does it with its runtime, and hands the
//! result back. `Serving` decides the order of things once for every
//! runtime: the greeting (or `ERR BUSY` instead of it), reading requests
//! until the idle deadline, `ERR TIMEOUT` and a graceful close when none
//! comes, answering what was read in batches (heavy ones behind a permit,
//! [`ferry_fs::heavy_permits`]), which answers close the connection, that
//! shutdown ends a connection between requests, and one access-log line per
//! request. What differs by runtime stays in the driver: accepting, the
//! connection limit, waiting and racing shutdown, the blocking pool, the
//! body path.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferry_fs::{Batch, Logged, Reply, Work, starts_heavy};
use ferry_proto::{Refusal, Request};

use crate::conn::{LineError, busy_refusal, greeting, timeout_refusal};
use crate::{ServeConfig, access};

/// The requests a connection has read and not yet answered.
pub type Pending = VecDeque<Result<Request, Refusal>>;

impl ServeConfig {
    /// Answers, without blocking, the GETs at the front of `pending` whose
    /// files the kernel has in memory ([`ferry_fs::Root::batch_cached`]):
    /// `Some` when that is the whole answer for now (something was answered,
    /// or nothing is left), `None` when the blocking pool must answer, as it
    /// must for a `heavy` batch. An async driver calls it on its event loop
    /// before the trip to its pool.
    pub fn answer_cached(&self, pending: &mut Pending, heavy: bool) -> Option<Batch> {
        if heavy {
            return None;
        }
        let batch = self.root.batch_cached(pending);
        (!batch.is_empty() || pending.is_empty()).then_some(batch)
    }

    /// Answers the front of `pending` (blocking: a driver runs it where
    /// blocking is allowed), heavy work bounded by `deadline` and stopped
    /// between chunks once `stop` says the client left or the server is
    /// shutting down. Returns the batch and what is left.
    pub fn answer_blocking(
        &self,
        mut pending: Pending,
        deadline: Instant,
        stop: impl Fn() -> bool + Sync,
    ) -> (Batch, Pending) {
        let work = Work { deadline, limit: self.idle_timeout, stop: &stop };
        (self.root.batch(&mut pending, &work), pending)
    }
}

/// How long a client past the connection limit has to take its `ERR BUSY`.
pub const BUSY_WRITE: Duration = Duration::from_secs(1);

/// One connection, from the server's side.
#[derive(Debug)]
pub struct Serving {
    peer: SocketAddr,
    idle: Duration,
    pending: VecDeque<Result<Request, Refusal>>,
    phase: Phase,
    /// The batch being written: when its requests were read, and their log.
    started: Instant,
    log: Vec<Logged>,
}

#[derive(Debug)]
enum Phase {
    /// Something to write, then where to go.
    Write {
        batch: Batch,
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
pub enum Next {
    /// Write `batch` ([`Batch`]: bytes, and file bodies from their files),
    /// each part taken within `within`; pass the result to
    /// [`Serving::on_written`].
    Write {
        /// The answers.
        batch: Batch,
        /// How long the peer may take to accept each part.
        within: Duration,
    },
    /// Read request lines into [`Serving::pending`] until `deadline`,
    /// racing shutdown; pass the result to [`Serving::on_read`].
    Read {
        /// When the whole line must have arrived.
        deadline: Instant,
    },
    /// Answer [`Serving::take_pending`] with [`ferry_fs::Root::batch`] off
    /// the event loop, bounded by [`ferry_fs::Work`] with `deadline`; when
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

impl Serving {
    /// A connection admitted under the limit: the greeting of
    /// implementation `name` comes first; requests may take `idle`.
    pub fn new(peer: SocketAddr, name: &str, idle: Duration) -> Serving {
        tracing::debug!(%peer, "connected");
        let batch = Batch::bytes(greeting(name));
        Serving::with(peer, idle, Phase::Write { batch, within: idle, then: After::Next })
    }

    /// A connection past the limit of `limit`: `ERR BUSY` instead of the
    /// greeting, then the end, without waiting for anything.
    pub fn busy(peer: SocketAddr, limit: usize) -> Serving {
        access::refused(Some(peer), "BUSY");
        let batch = Batch::from(Reply::refuse(busy_refusal(limit)));
        Serving::with(peer, BUSY_WRITE, Phase::Write { batch, within: BUSY_WRITE, then: After::Stop })
    }

    fn with(peer: SocketAddr, idle: Duration, phase: Phase) -> Serving {
        Serving { peer, idle, pending: VecDeque::new(), phase, started: Instant::now(), log: Vec::new() }
    }

    /// The peer.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// What to do next; `shutting_down` once the server is.
    pub fn next(&mut self, shutting_down: bool) -> Next {
        match std::mem::replace(&mut self.phase, Phase::Stop) {
            Phase::Write { batch, within, then } => {
                self.phase = Phase::Writing { then };
                Next::Write { batch, within }
            }
            // Between requests, shutdown ends the connection at once.
            Phase::Read | Phase::Answer if shutting_down => Next::Stop,
            Phase::Read if !self.pending.is_empty() => self.answer(),
            Phase::Read => {
                self.phase = Phase::Read;
                Next::Read { deadline: Instant::now() + self.idle }
            }
            Phase::Answer => self.answer(),
            Phase::Close => Next::Close,
            // A driver that asks again without the call back it owes ends
            // the connection rather than guess.
            Phase::Writing { .. } | Phase::Answering | Phase::Stop => Next::Stop,
        }
    }

    fn answer(&mut self) -> Next {
        self.started = Instant::now();
        self.phase = Phase::Answering;
        Next::Answer { heavy: starts_heavy(&self.pending), deadline: self.started + self.idle }
    }

    /// Where [`Next::Read`] puts the requests it reads.
    pub fn pending(&mut self) -> &mut VecDeque<Result<Request, Refusal>> {
        &mut self.pending
    }

    /// The requests to answer, moved out for the blocking pool; they come
    /// back, less the ones answered, with [`Serving::on_answered`].
    pub fn take_pending(&mut self) -> VecDeque<Result<Request, Refusal>> {
        std::mem::take(&mut self.pending)
    }

    /// How [`Next::Read`] ended: `None` if shutdown came first.
    pub fn on_read(&mut self, read: Option<Result<(), LineError<Infallible>>>) -> io::Result<()> {
        self.phase = match read {
            None | Some(Err(LineError::Closed)) => Phase::Stop,
            Some(Ok(())) => Phase::Answer,
            Some(Err(LineError::TimedOut)) => {
                access::refused(Some(self.peer), "TIMEOUT");
                let batch = Batch::from(Reply::refuse(timeout_refusal(self.idle)));
                Phase::Write { batch, within: self.idle, then: After::Close }
            }
            Some(Err(LineError::Io(error))) => return Err(error),
            Some(Err(LineError::Invalid(never))) => match never {},
        };
        Ok(())
    }

    /// The batch that answers the front of the requests, and those left.
    pub fn on_answered(&mut self, (mut batch, rest): (Batch, VecDeque<Result<Request, Refusal>>)) {
        self.pending = rest;
        self.log = std::mem::take(&mut batch.log);
        let then = if batch.closes { After::Close } else { After::Next };
        self.phase = Phase::Write { batch, within: self.idle, then };
    }

    /// How [`Next::Write`] went; logs the requests it answered, and passes
    /// a failure on (the connection then ends).
    pub fn on_written(&mut self, written: io::Result<()>) -> io::Result<()> {
        let log = std::mem::take(&mut self.log);
        access::answered(self.peer, &log, self.started, &written);
        let Phase::Writing { then } = self.phase else { return written };
        self.phase = match then {
            After::Next => Phase::Read,
            After::Close => Phase::Close,
            After::Stop => Phase::Stop,
        };
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().expect("addr")
    }

    fn bytes(next: Next) -> Vec<u8> {
        let Next::Write { batch, .. } = next else { panic!("expected Write, got {next:?}") };
        let part = |part| match part {
            ferry_fs::Part::Bytes(bytes) => bytes,
            ferry_fs::Part::Body(_) => panic!("a body"),
        };
        batch.parts.into_iter().flat_map(part).collect()
    }

    fn request(line: &str) -> Result<Request, Refusal> {
        match ferry_proto::parse_request(line.as_bytes()) {
            ferry_proto::Parsed::Complete { value, .. } => value,
            ferry_proto::Parsed::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn greet_read_answer_write_and_read_again() {
        let mut serving = Serving::new(peer(), "test", Duration::from_secs(1));
        assert_eq!(bytes(serving.next(false)), b"FERRY/1 test\n");
        serving.on_written(Ok(())).expect("written");
        assert!(matches!(serving.next(false), Next::Read { .. }));
        serving.pending().push_back(request("SUM a\n"));
        serving.on_read(Some(Ok(()))).expect("read");
        assert!(matches!(serving.next(false), Next::Answer { heavy: true, .. }));
        let pending = serving.take_pending();
        assert_eq!(pending.len(), 1);
        serving.on_answered((Batch::bytes(b"OK 0\n".to_vec()), VecDeque::new()));
        assert_eq!(bytes(serving.next(false)), b"OK 0\n");
        serving.on_written(Ok(())).expect("written");
        assert!(matches!(serving.next(false), Next::Read { .. }));
    }

    #[test]
    fn silence_is_answered_timeout_and_closed() {
        let mut serving = Serving::new(peer(), "test", Duration::from_millis(500));
        serving.next(false);
        serving.on_written(Ok(())).expect("written");
        serving.next(false);
        serving.on_read(Some(Err(LineError::TimedOut))).expect("read");
        let line = String::from_utf8(bytes(serving.next(false))).expect("utf-8");
        assert!(line.starts_with("ERR TIMEOUT ") && line.contains("0.5 s"), "{line}");
        serving.on_written(Ok(())).expect("written");
        assert!(matches!(serving.next(false), Next::Close));
    }

    #[test]
    fn shutdown_between_requests_and_a_departed_peer_stop_at_once() {
        let mut serving = Serving::new(peer(), "test", Duration::from_secs(1));
        serving.next(true);
        serving.on_written(Ok(())).expect("the greeting goes out even at shutdown");
        assert!(matches!(serving.next(true), Next::Stop));

        let mut serving = Serving::new(peer(), "test", Duration::from_secs(1));
        serving.next(false);
        serving.on_written(Ok(())).expect("written");
        serving.next(false);
        serving.on_read(Some(Err(LineError::Closed))).expect("read");
        assert!(matches!(serving.next(false), Next::Stop));
    }

    #[test]
    fn a_closing_answer_closes_and_busy_says_so_and_stops() {
        let mut serving = Serving::new(peer(), "test", Duration::from_secs(1));
        serving.next(false);
        serving.on_written(Ok(())).expect("written");
        serving.next(false);
        serving.on_read(Some(Ok(()))).expect("read");
        serving.next(false);
        serving.on_answered((Batch::from(Reply::Bytes { bytes: b"BYE\n".to_vec(), closes: true }), VecDeque::new()));
        serving.next(false);
        serving.on_written(Ok(())).expect("written");
        assert!(matches!(serving.next(false), Next::Close));

        let mut busy = Serving::busy(peer(), 2);
        let line = String::from_utf8(bytes(busy.next(false))).expect("utf-8");
        assert!(line.starts_with("ERR BUSY serving 2 connections"), "{line}");
        busy.on_written(Ok(())).expect("written");
        assert!(matches!(busy.next(false), Next::Stop));
    }
}
