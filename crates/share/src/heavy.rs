//! Heavy work (SUM, LIST) bounded: how many run at once, by when each must
//! be done, and the check between chunks that stops one whose client left.

use std::time::{Duration, Instant};

use ferry_engine::{ErrorCode, Refusal, WirePath};

/// How many heavy requests (SUM, LIST) a server runs at once: one per core.
/// Hashing is CPU-bound, so more would only slow each one down, and a
/// bounded number keeps them from taking every thread of a blocking pool.
pub fn heavy_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How heavy work is bounded: asked between chunks, so it ends within one
/// chunk of the client leaving, shutdown, or the deadline.
#[derive(Clone, Copy)]
pub struct Work<'a> {
    /// When the answer must be ready; past it, `ERR TIMEOUT`.
    pub deadline: Instant,
    /// The idle timeout the deadline was counted with, for the message.
    pub limit: Duration,
    /// Whether to give up now: the client left, or the server is shutting
    /// down. The connection then closes without an answer.
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl std::fmt::Debug for Work<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work").field("deadline", &self.deadline).field("limit", &self.limit).finish()
    }
}

impl Work<'_> {
    /// Work that is never stopped, with a day to finish; for tests and tools.
    pub fn unbounded() -> Work<'static> {
        Work {
            deadline: Instant::now() + Duration::from_secs(86_400),
            limit: Duration::from_secs(86_400),
            stop: &|| false,
        }
    }

    /// Checks between chunks of the heavy request about `path`.
    pub(crate) fn check(&self, verb: &str, path: &WirePath) -> Result<(), Halt> {
        if (self.stop)() {
            return Err(Halt::Stopped);
        }
        if Instant::now() >= self.deadline {
            return Err(Halt::Refused(Refusal::new(
                ErrorCode::Timeout,
                format!("{verb} {path} did not finish within {:.1} s; closing", self.limit.as_secs_f64()),
            )));
        }
        Ok(())
    }
}

/// Why a request was not answered as asked.
#[derive(Debug)]
pub(crate) enum Halt {
    /// With a refusal.
    Refused(Refusal),
    /// Not at all: the connection is to close.
    Stopped,
}

impl From<Refusal> for Halt {
    fn from(refusal: Refusal) -> Self {
        Halt::Refused(refusal)
    }
}

/// How many bytes a SUM hashes between checks of its [`Work`].
pub(crate) const SUM_CHUNK: usize = 1 << 20;

/// How many entries a LIST reads between checks of its [`Work`].
pub(crate) const LIST_CHUNK: usize = 256;
