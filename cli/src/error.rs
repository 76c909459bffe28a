//! What can go wrong for a client, in words that name the path or address.
//!
//! One type for all three implementations: the runtimes differ in how they
//! wait, not in what can fail.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use ferry_proto::Refusal;
use thiserror::Error;

/// A client's failure.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No TCP connection could be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address as the user wrote it.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The peer's first line was not a FERRY/1 greeting.
    #[error("{addr} is not a FERRY/1 server (it said {said:?})")]
    NotFerry {
        /// The server.
        addr: String,
        /// The start of what it sent.
        said: String,
    },
    /// The server is at its connection limit.
    #[error("{addr} is busy: {message}")]
    Busy {
        /// The server.
        addr: String,
        /// Its explanation.
        message: String,
    },
    /// The server refused a request (`ERR`), or the client refused to send it.
    #[error("{path}: {refusal}")]
    Refused {
        /// The path the request was about.
        path: String,
        /// The code and message.
        refusal: Refusal,
    },
    /// A body ended before the length its header promised.
    #[error("{path}: received {got} of {expected} bytes: {why}")]
    ShortBody {
        /// The path being fetched.
        path: String,
        /// Bytes received.
        got: u64,
        /// Bytes promised.
        expected: u64,
        /// What ended it.
        why: String,
    },
    /// The server sent nothing for the whole timeout.
    #[error("{addr}: no data for {:.1} s; giving up", timeout.as_secs_f64())]
    Timeout {
        /// The server.
        addr: String,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The server closed the connection where an answer was due.
    #[error("{addr} closed the connection before answering")]
    Closed {
        /// The server.
        addr: String,
    },
    /// The server sent something FERRY/1 does not allow.
    #[error("{addr} broke FERRY/1: {detail}")]
    Protocol {
        /// The server.
        addr: String,
        /// What it sent.
        detail: String,
    },
    /// Reading from or writing to the connection failed.
    #[error("{addr}: {source}")]
    Io {
        /// The server.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Saving failed.
    #[error(transparent)]
    Save(#[from] SaveError),
}

impl ClientError {
    /// Classifies an I/O error on the connection to `addr`: an expired read
    /// timeout becomes [`ClientError::Timeout`].
    pub fn io(addr: &str, timeout: Duration, source: io::Error) -> ClientError {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ClientError::Timeout { addr: addr.to_owned(), timeout }
            }
            _ => ClientError::Io { addr: addr.to_owned(), source },
        }
    }
}

/// A download could not be saved where the user asked.
#[derive(Debug, Error)]
pub enum SaveError {
    /// DEST exists and `--force` was not given.
    #[error("{}: already exists; use --force to replace it", path.display())]
    Exists {
        /// The destination.
        path: PathBuf,
    },
    /// A file-system operation on a destination or its `.part` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The saved bytes' digest is not the server's.
    #[error(
        "{}: BLAKE3 digest {local} differs from the server's {remote}; the bytes are kept in {} \
         (delete it and fetch again)",
        dest.display(),
        part.display()
    )]
    Mismatch {
        /// Where the file would have gone.
        dest: PathBuf,
        /// Where the bytes are.
        part: PathBuf,
        /// The digest of what was saved.
        local: String,
        /// The server's digest.
        remote: String,
    },
    /// `--verify` on stdout, where the bytes cannot be taken back.
    #[error("stdout: BLAKE3 digest {local} of the bytes written differs from the server's {remote}")]
    StdoutMismatch {
        /// The digest of what was written.
        local: String,
        /// The server's digest.
        remote: String,
    },
}

impl SaveError {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> SaveError {
        SaveError::Io { path: path.into(), source }
    }
}
