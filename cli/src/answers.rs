//! What a client makes of each answer header: the same on every runtime.
//!
//! The drivers' `client.rs` read headers and bodies; these functions decide
//! what they mean. Each returns a result inside a result where it matters:
//! the outer error ends the connection (the server broke FERRY/1), the
//! inner one fails a single file and leaves the connection in step.

use ferry_proto::{Answer, Entry, WirePath, parse_digest, parse_listing};

use crate::conn::MAX_SMALL_BODY;
use crate::error::ClientError;

/// The length of a SUM body: 64 hex digits.
pub const DIGEST_HEX: u64 = 64;

/// The answer to `GET path`: the length of the body to receive, or the
/// server's refusal of that file.
pub fn get_body(answer: Answer, path: &WirePath, addr: &str) -> Result<Result<u64, ClientError>, ClientError> {
    match answer {
        Answer::Ok { len } => Ok(Ok(len)),
        Answer::Err(refusal) => Ok(Err(ClientError::Refused { path: path.to_string(), refusal })),
        Answer::Bye => Err(protocol(addr, "BYE instead of the answer to GET")),
    }
}

/// The answer to `SUM path`: the length of the digest to read (always
/// [`DIGEST_HEX`]), or the server's refusal.
pub fn sum_body(answer: Answer, path: &WirePath, addr: &str) -> Result<Result<u64, ClientError>, ClientError> {
    match answer {
        Answer::Ok { len: DIGEST_HEX } => Ok(Ok(DIGEST_HEX)),
        Answer::Ok { len } => Err(protocol(addr, &format!("SUM body of {len} bytes, not {DIGEST_HEX}"))),
        Answer::Err(refusal) => Ok(Err(ClientError::Refused { path: path.to_string(), refusal })),
        Answer::Bye => Err(protocol(addr, "BYE instead of the answer to SUM")),
    }
}

/// The answer to `LIST path`: the length of the listing. A refusal fails
/// the command: there is nothing else to do on the connection.
pub fn list_body(answer: Answer, path: &WirePath, addr: &str) -> Result<u64, ClientError> {
    match answer {
        Answer::Ok { len } => Ok(len),
        Answer::Err(refusal) => Err(ClientError::Refused { path: path.to_string(), refusal }),
        Answer::Bye => Err(protocol(addr, "BYE instead of the answer to LIST")),
    }
}

/// The length of an answer whose body is to be read and dropped (the SUM
/// after a refused GET), or 0 when it has none.
pub fn skipped_body(answer: &Answer) -> u64 {
    match answer {
        Answer::Ok { len } => *len,
        Answer::Err(_) | Answer::Bye => 0,
    }
}

/// Checks that a body meant for memory (LIST, SUM) is of a sane size.
pub fn small_body(len: u64, addr: &str) -> Result<usize, ClientError> {
    usize::try_from(len)
        .ok()
        .filter(|_| len <= MAX_SMALL_BODY)
        .ok_or_else(|| protocol(addr, &format!("a body of {len} bytes where at most {MAX_SMALL_BODY} fit")))
}

/// The digest in a SUM body.
pub fn digest(body: &[u8], addr: &str) -> Result<[u8; 32], ClientError> {
    parse_digest(body).ok_or_else(|| protocol(addr, "SUM body is not 64 lower-case hex digits"))
}

/// The entries in a LIST body.
pub fn listing(body: &[u8], addr: &str) -> Result<Vec<Entry>, ClientError> {
    parse_listing(body).map_err(|e| protocol(addr, &e.to_string()))
}

/// The server at `addr` sent something FERRY/1 does not allow.
pub fn protocol(addr: &str, detail: &str) -> ClientError {
    ClientError::Protocol { addr: addr.to_owned(), detail: detail.to_owned() }
}

#[cfg(test)]
mod tests {
    use ferry_proto::{ErrorCode, Refusal};

    use super::*;

    fn path() -> WirePath {
        WirePath::new("docs/x.pdf").expect("valid")
    }

    #[test]
    fn a_refused_get_fails_the_file_not_the_connection() {
        let refusal = Refusal::new(ErrorCode::NotFound, "docs/x.pdf does not exist");
        let decided = get_body(Answer::Err(refusal), &path(), "h:1").expect("connection goes on");
        let message = decided.expect_err("the file fails").to_string();
        assert!(message.contains("docs/x.pdf") && message.contains("NOT_FOUND"), "{message}");
        assert!(get_body(Answer::Bye, &path(), "h:1").is_err());
    }

    #[test]
    fn a_sum_of_the_wrong_length_breaks_the_protocol() {
        assert_eq!(sum_body(Answer::Ok { len: 64 }, &path(), "h:1").expect("ok").expect("ok"), 64);
        assert!(sum_body(Answer::Ok { len: 65 }, &path(), "h:1").is_err());
        assert!(small_body(MAX_SMALL_BODY + 1, "h:1").is_err());
        assert!(digest(&[b'A'; 64], "h:1").is_err());
    }
}
