//! Error codes and refusals (SPEC.md §4 "Error codes").

use std::fmt;

/// The code in an `ERR <CODE> <message>` answer.
///
/// The set is closed: a peer that sends another code is not speaking FERRY/1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Unknown command, wrong tokens, bad number or escape, bad path bytes,
    /// empty line.
    BadRequest,
    /// No such file or directory under the root.
    NotFound,
    /// A `..` component, a path resolving outside the root, or permission
    /// denied.
    Forbidden,
    /// GET or SUM of something that is not a regular file.
    NotAFile,
    /// LIST of something that is not a directory.
    NotADirectory,
    /// An offset past the end of the file.
    Range,
    /// An I/O error before the answer's header was sent.
    Internal,
    /// A TREE past what the server lists in one answer (entries or depth).
    TooLarge,
    /// A request line over [`crate::MAX_LINE`] bytes.
    TooLong,
    /// The server is at its connection limit (sent instead of the greeting).
    Busy,
    /// No complete request line within the idle timeout.
    Timeout,
    /// The server requires an access token, and the connection's first
    /// request was not `AUTH` with it.
    Unauthorized,
}

impl ErrorCode {
    /// Every code, in SPEC.md's order.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::BadRequest,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::NotAFile,
        ErrorCode::NotADirectory,
        ErrorCode::Range,
        ErrorCode::Internal,
        ErrorCode::TooLarge,
        ErrorCode::TooLong,
        ErrorCode::Busy,
        ErrorCode::Timeout,
        ErrorCode::Unauthorized,
    ];

    /// The code's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotAFile => "NOT_A_FILE",
            ErrorCode::NotADirectory => "NOT_A_DIRECTORY",
            ErrorCode::Range => "RANGE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::TooLarge => "TOO_LARGE",
            ErrorCode::TooLong => "TOO_LONG",
            ErrorCode::Busy => "BUSY",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
        }
    }

    /// Parses a wire name; `None` for anything not in SPEC.md.
    pub fn from_wire(name: &[u8]) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str().as_bytes() == name)
    }

    /// Whether the server closes the connection after sending this code.
    ///
    /// After the request-level codes the connection stays usable; after
    /// these four the server can no longer trust where the next line starts
    /// (TOO_LONG), or never began a session (BUSY), or gave up (TIMEOUT),
    /// or will not serve this client (UNAUTHORIZED).
    pub fn closes_connection(self) -> bool {
        matches!(self, ErrorCode::TooLong | ErrorCode::Busy | ErrorCode::Timeout | ErrorCode::Unauthorized)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the server turns down: the code and the message for people.
///
/// This is the value of an `ERR` answer before it is encoded. Messages name
/// the path or token they are about, e.g. `docs/x.pdf does not exist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people; one line.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str().as_bytes()), Some(code));
        }
        assert_eq!(ErrorCode::from_wire(b"not_found"), None);
        assert_eq!(ErrorCode::from_wire(b""), None);
    }

    #[test]
    fn exactly_four_codes_close() {
        let closing: Vec<_> = ErrorCode::ALL.into_iter().filter(|c| c.closes_connection()).collect();
        assert_eq!(closing, [ErrorCode::TooLong, ErrorCode::Busy, ErrorCode::Timeout, ErrorCode::Unauthorized]);
    }
}
