//! What can go wrong for a client, in words that name the path or address.
//!
//! One type for every implementation: the runtimes differ in how they
//! wait, not in what can fail. Whatever a server chose to say (an `ERR`
//! message, a `BUSY` greeting, a line that is not FERRY/1) is shown through
//! [`escaped`], so no message carries its control bytes to the terminal.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::body::{BodyCause, BodyError, MIN_PROGRESS};
use crate::frame::{LineError, is_timeout};
use crate::show::escaped;
use crate::{AnswerError, GreetingError, Refusal};

/// A client's failure.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No TCP connection could be made.
    #[error("cannot connect to {addr}: {}", without_os_code(source))]
    Connect {
        /// The address as the user wrote it.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The peer's first line was not a FERRY/1 greeting.
    #[error("{addr} is not a FERRY/1 server (it said \"{}\")", escaped(said))]
    NotFerry {
        /// The server.
        addr: String,
        /// The start of what it sent.
        said: String,
    },
    /// The server accepted the connection and said nothing.
    #[error(
        "{addr} sent no greeting within {:.1} s: a server started with --tls says nothing until the \
         client's TLS handshake, so add --tls (with --pin, as its serve printed); otherwise it is not a \
         FERRY/1 server, or it is overloaded",
        waited.as_secs_f64()
    )]
    NoGreeting {
        /// The server.
        addr: String,
        /// How long the client waited.
        waited: Duration,
    },
    /// The server is at its connection limit.
    #[error("{addr} is busy: {}", escaped(message))]
    Busy {
        /// The server.
        addr: String,
        /// Its explanation.
        message: String,
    },
    /// The server refused a request (`ERR`), or the client refused to send it.
    #[error("{}: {}", escaped(path), escaped(&refusal.to_string()))]
    Refused {
        /// The path the request was about.
        path: String,
        /// The code and message.
        refusal: Refusal,
    },
    /// A body ended before the length its header promised.
    #[error("{}: received {got} of {expected} bytes: {why}", escaped(path))]
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
    /// The server announced a body larger than `--max-size`.
    #[error("{}: the server would send {len} bytes, more than --max-size {max}; nothing was written", escaped(path))]
    TooLarge {
        /// The path being fetched.
        path: String,
        /// The announced length.
        len: u64,
        /// The limit.
        max: u64,
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
    /// The server requires an access token, and this client gave none, or
    /// another (`ERR UNAUTHORIZED`).
    #[error("{addr} {}: {}", if *gave_token { "refused the access token" } else { "requires an access token" }, unauthorized_hint(*gave_token))]
    Unauthorized {
        /// The server.
        addr: String,
        /// Whether a token was sent.
        gave_token: bool,
        /// What the server said.
        message: String,
    },
    /// TLS failed, or the server is not the one this client trusts: said by
    /// the application, which knows which, in its own words (no byte of
    /// it comes from the server, so it is shown as it is, lines and all).
    #[error("{addr}: {detail}")]
    Tls {
        /// The server.
        addr: String,
        /// What happened, and what to do.
        detail: String,
    },
    /// A listing the client stopped reading, past a bound of its own (how
    /// many entries, how deep): the connection ends there.
    #[error("{}: {reason}", escaped(path))]
    Stopped {
        /// The folder listed.
        path: String,
        /// Which bound, in the application's words.
        reason: String,
    },
    /// The server sent something FERRY/1 does not allow.
    #[error("{addr} broke FERRY/1: {}", escaped(detail))]
    Protocol {
        /// The server.
        addr: String,
        /// What it sent.
        detail: String,
    },
    /// Reading from or writing to the connection failed.
    #[error("{addr}: {}", without_os_code(source))]
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

fn unauthorized_hint(gave_token: bool) -> &'static str {
    if gave_token {
        "check the token in --token-file or FERRY_TOKEN against the one the server was started with"
    } else {
        "give it with --token-file FILE (its first line) or the FERRY_TOKEN environment variable"
    }
}

impl ClientError {
    /// Classifies an I/O error on the connection to `addr`: an expired read
    /// timeout becomes [`ClientError::Timeout`].
    pub fn io(addr: &str, timeout: Duration, source: io::Error) -> ClientError {
        if is_timeout(&source) {
            ClientError::Timeout { addr: addr.to_owned(), timeout }
        } else {
            ClientError::Io { addr: addr.to_owned(), source }
        }
    }
}

/// A download could not be saved where the user asked.
#[derive(Debug, Error)]
pub enum SaveError {
    /// DEST exists and `--force` was not given.
    #[error("{}: already exists; use --force to replace it", shown(path))]
    Exists {
        /// The destination.
        path: PathBuf,
    },
    /// DEST exists, `--continue` was given, and it is not the whole of the
    /// server's file: the server has more.
    #[error(
        "{}: already exists and holds less than the server's file ({more} bytes more there); \
         use --force to fetch it again",
        shown(path)
    )]
    Incomplete {
        /// The destination.
        path: PathBuf,
        /// The bytes the server has beyond it.
        more: u64,
    },
    /// DEST is a symbolic link and `--force` was not given.
    #[error(
        "{}: is a symbolic link; ferry never writes through one (use --force to replace the link itself)",
        shown(path)
    )]
    Link {
        /// The destination.
        path: PathBuf,
    },
    /// A `.part` from an earlier download is in the way.
    #[error(
        "{}: an unfinished download is there ({len} bytes); use --continue to resume it or --force to start over",
        shown(part)
    )]
    PartExists {
        /// The `.part`.
        part: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The `.part` is a symbolic link or not a regular file.
    #[error(
        "{}: is not a regular file (a link, folder or device); ferry never writes through it \
         (remove it, or use --force to replace it)",
        shown(part)
    )]
    PartNotAFile {
        /// The `.part`.
        part: PathBuf,
    },
    /// Another process holds the lock on the `.part`.
    #[error("{}: already being downloaded by another process (it holds {})", shown(dest), shown(part))]
    Downloading {
        /// The destination.
        dest: PathBuf,
        /// The `.part` it holds locked.
        part: PathBuf,
    },
    /// The body would not fit in the space free where it goes.
    #[error(
        "{}: the server would send {need} bytes, and only {free} are free in {}; nothing was written \
         (free some space, or save elsewhere with -o)",
        shown(dest),
        shown(folder)
    )]
    NoSpace {
        /// The file the user asked for.
        dest: PathBuf,
        /// The folder it goes into.
        folder: PathBuf,
        /// The bytes still to come.
        need: u64,
        /// The bytes free for this user there.
        free: u64,
    },
    /// The folder a download would go into does not exist.
    #[error("{}: no such folder; use --create-dirs to create it", shown(path))]
    NoFolder {
        /// The folder.
        path: PathBuf,
    },
    /// What should be a folder is something else.
    #[error("{}: not a folder", shown(path))]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// The user answered the prompt with end-of-input.
    #[error("cancelled; nothing was fetched")]
    Cancelled,
    /// A file-system operation on a destination or its `.part` failed.
    #[error("{}: {}", shown(path), without_os_code(source))]
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
        shown(dest),
        shown(part)
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
    /// `--verify` on stdout or a device, where the bytes cannot be taken back.
    #[error("{}: BLAKE3 digest {local} of the bytes written differs from the server's {remote}", shown(name))]
    StreamMismatch {
        /// `stdout`, or the device's path.
        name: PathBuf,
        /// The digest of what was written.
        local: String,
        /// The server's digest.
        remote: String,
    },
}

/// A local path as the user should read it: lossy UTF-8, escaped.
fn shown(path: &std::path::Path) -> String {
    escaped(&path.to_string_lossy()).into_owned()
}

/// An I/O error's words without Rust's ` (os error N)` suffix: the words
/// are what the user needs, once.
pub fn without_os_code(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

impl SaveError {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> SaveError {
        SaveError::Io { path: path.into(), source }
    }
}

impl LineError<GreetingError> {
    /// What a client reports when the greeting did not arrive.
    pub fn into_client(self, addr: &str, timeout: Duration) -> ClientError {
        let addr = addr.to_owned();
        match self {
            LineError::Closed => ClientError::Closed { addr },
            LineError::TimedOut => ClientError::NoGreeting { addr, waited: timeout },
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

impl BodyError {
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
            BodyCause::Sink(error) => return SaveError::io(sink, error).into(),
        };
        ClientError::ShortBody { path: path.to_owned(), got: self.received, expected, why }
    }
}
