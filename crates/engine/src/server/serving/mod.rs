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
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Answers, Logged, Pending, WriteCut, access, busy_refusal, greeting, starts_heavy, timeout_refusal};
use crate::frame::LineError;
use crate::{Answer, ErrorCode, Refusal, Request, Token};

/// How long a client past the connection limit has to take its `ERR BUSY`.
pub const BUSY_WRITE: Duration = Duration::from_secs(1);

/// How long a server waits before it answers a wrong or missing access
/// token: a guesser gets one try per connection and per second, not as many
/// as the network carries.
pub const AUTH_PENALTY: Duration = Duration::from_secs(1);

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
    /// The access token the first request must give, until it has.
    token: Option<Arc<Token>>,
    /// Past the connection limit: `ERR BUSY`, then the end.
    busy: bool,
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
    /// The first request did not give the access token: what arrives is
    /// read and dropped until `until`, then `ERR UNAUTHORIZED` and close.
    Refusing {
        until: Instant,
    },
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
        let phase = Phase::Write { batch, within: BUSY_WRITE, then: After::Stop };
        Serving { busy: true, ..Serving::with(peer, BUSY_WRITE, phase, now) }
    }

    /// Whether this connection is past the limit, to be answered `ERR BUSY`
    /// and closed: what comes before the answer (a TLS handshake) gets
    /// only [`BUSY_WRITE`] too.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    fn with(peer: SocketAddr, idle: Duration, phase: Phase<B>, now: Instant) -> Serving<B> {
        Serving { peer, idle, pending: VecDeque::new(), phase, started: now, log: Vec::new(), token: None, busy: false }
    }

    /// Requires `token` (when there is one) as the connection's first
    /// request, `AUTH <token>`: anything else, or another token, is
    /// answered `ERR UNAUTHORIZED` after [`AUTH_PENALTY`], and the
    /// connection closed.
    pub fn requiring(mut self, token: Option<Arc<Token>>) -> Serving<B> {
        self.token = token;
        self
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
            Phase::Read | Phase::Answer | Phase::Refusing { .. } if shutting_down => Next::Stop,
            Phase::Read | Phase::Answer if !self.pending.is_empty() && !self.admits_front() => {
                self.refuse_unauthorized(now)
            }
            Phase::Read if !self.pending.is_empty() => self.answer(now),
            Phase::Refusing { until } if now >= until => self.unauthorized(),
            Phase::Refusing { until } => {
                self.phase = Phase::Refusing { until };
                Next::Read { deadline: until }
            }
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

    /// Whether the front request may be answered: always, unless a token is
    /// still required, which only `AUTH` with it gives (and which it then
    /// no longer is).
    fn admits_front(&mut self) -> bool {
        let Some(token) = &self.token else { return true };
        let admitted = matches!(self.pending.front(), Some(Ok(Request::Auth { token: guess })) if token.matches(guess));
        if admitted {
            self.token = None;
        }
        admitted
    }

    /// The first request did not give the token: it is logged, and nothing
    /// more is answered; the refusal comes after [`AUTH_PENALTY`].
    fn refuse_unauthorized(&mut self, now: Instant) -> Next<B> {
        access::refused(Some(self.peer), "UNAUTHORIZED");
        tracing::warn!(peer = %self.peer, "a client gave a wrong access token, or none");
        self.pending.clear();
        let until = now + AUTH_PENALTY;
        self.phase = Phase::Refusing { until };
        Next::Read { deadline: until }
    }

    fn unauthorized(&mut self) -> Next<B> {
        let batch = B::bytes(refusal(Refusal::new(
            ErrorCode::Unauthorized,
            "this server requires an access token: give the right one (--token-file or FERRY_TOKEN)",
        )));
        self.phase = Phase::Writing { then: After::Close };
        Next::Write { batch, within: self.idle }
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
        if let Phase::Refusing { until } = self.phase {
            // Whatever a refused client sends is dropped; its deadline is
            // the refusal's (`next` says when it has come).
            self.pending.clear();
            self.phase = match read {
                None | Some(Err(LineError::Closed)) => Phase::Stop,
                Some(Ok(()) | Err(LineError::TimedOut)) => Phase::Refusing { until },
                Some(Err(LineError::Io(error))) => return Err(error),
                Some(Err(LineError::Invalid(never))) => match never {},
            };
            return Ok(());
        }
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
mod tests;
