//! The server's side of FERRY/1, without I/O: one connection as steps
//! ([`Serving`]), what it logs ([`access`]), and the answers a server gives
//! of its own (the greeting, `BUSY`, `TIMEOUT`).

pub mod access;
mod serving;

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

pub use serving::{AUTH_PENALTY, BUSY_WRITE, Next, Serving};

use crate::{ErrorCode, Refusal, Request, encode_greeting};

/// The requests a connection has read and not yet answered.
pub type Pending = VecDeque<Result<Request, Refusal>>;

/// What a server writes for a run of requests: the share's batch of answers
/// (`ferry_share::Batch`). A [`Serving`] only makes one of plain bytes (its
/// own greeting and refusals), asks whether it closes the connection, and
/// takes its log.
pub trait Answers {
    /// Bytes to write as they are, answering no request.
    fn bytes(bytes: Vec<u8>) -> Self;
    /// Whether the connection ends once these are written.
    fn closes(&self) -> bool;
    /// One record per request answered, for the access log.
    fn take_log(&mut self) -> Vec<Logged>;
}

/// A batch's write that failed, and how far it got. A batch holds at most
/// one file body, its last part: `body` is how many of its bytes had gone
/// to the socket when the write failed there, and `None` when it failed
/// before (every answer of such a batch is logged as having sent nothing:
/// which of its joined bytes went out is not known).
#[derive(Debug)]
pub struct WriteCut {
    /// Why the write failed.
    pub error: io::Error,
    /// The file body's bytes already handed to the socket.
    pub body: Option<u64>,
}

impl From<io::Error> for WriteCut {
    fn from(error: io::Error) -> WriteCut {
        WriteCut { error, body: None }
    }
}

/// What the access log says of one answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The request, or `None` for a line that was refused before it was a
    /// request (`-` in the log). Kept as it is, not as the text the log
    /// shows, so that a server whose log is off (`-q`) does no formatting
    /// for it: the text is made only when a line is written.
    pub request: Option<Request>,
    /// `OK`, `BYE`, an error code, or `-` when abandoned unanswered.
    pub status: &'static str,
    /// The body's length: what `OK` promised.
    pub bytes: u64,
}

/// Whether the next batch of `pending` starts with a heavy request
/// ([`Request::is_heavy`]), which needs a permit from the server-wide limit
/// before it is answered.
pub fn starts_heavy(pending: &Pending) -> bool {
    matches!(pending.front(), Some(Ok(request)) if request.is_heavy())
}

/// How long a server keeps reading (and discarding) after its last answer on
/// a connection it is closing, so that unread request bytes do not make the
/// kernel reset the connection before the client has read that answer.
pub const LINGER: Duration = Duration::from_secs(1);

/// The most a server discards while lingering.
pub const LINGER_BYTES: u64 = 1 << 20;

/// The refusal a server sends when a request line did not arrive in time.
pub fn timeout_refusal(idle: Duration) -> Refusal {
    Refusal::new(ErrorCode::Timeout, format!("no complete request line within {:.1} s; closing", idle.as_secs_f64()))
}

/// The refusal a server sends instead of its greeting at its limit.
pub fn busy_refusal(limit: usize) -> Refusal {
    Refusal::new(ErrorCode::Busy, format!("serving {limit} connections already; try again later"))
}

/// The greeting a server of implementation `name` sends.
pub fn greeting(name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_greeting(name, &mut bytes);
    bytes
}
