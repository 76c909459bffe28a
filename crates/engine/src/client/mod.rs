//! The client's side of FERRY/1, without I/O: one conversation as steps
//! ([`Session`]), the loop that does them over a driver ([`Steps`],
//! [`AsyncSteps`]), and what can go wrong, in words that name the path or
//! address ([`ClientError`], [`SaveError`]).

mod error;
mod session;
mod step;
mod steps;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

pub use error::{ClientError, SaveError, without_os_code};
pub use session::{DIGEST_HEX, DISCARD_MOST, GREETING_WAIT, PIPELINE_WINDOW, Session};
pub use step::{NotReceived, Received, Step};
pub use steps::{AsyncSteps, Outcomes, Steps};

use crate::WirePath;

/// Everything a client needs to reach a server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's address as the user wrote it (`host:port`).
    pub addr: String,
    /// How long to wait for a connection, and for each read.
    pub timeout: Duration,
    /// The largest body a `get` accepts (`--max-size`); larger ones fail
    /// before anything is written.
    pub max_size: Option<u64>,
    /// The access token to give first (`AUTH`), for a server that
    /// requires one.
    pub token: Option<crate::Token>,
}

/// One file a [`Session`] fetches, as the session needs to know it. The
/// application's plan says where each file goes and implements this; the
/// session only asks.
pub trait Fetch {
    /// The path on the server.
    fn path(&self) -> &WirePath;
    /// The first byte to request: the length of a `.part` being resumed.
    fn offset(&self) -> u64;
    /// Where the bytes go, as messages name it: `stdout`, a device, or the
    /// `.part`.
    fn sink(&self) -> &Path;
    /// Whether the bytes are written straight through (stdout, a device)
    /// rather than into a file that is committed: when verifying, they are
    /// hashed on their way, since they cannot be read back.
    fn streams(&self) -> bool;
}
