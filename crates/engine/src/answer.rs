//! The server's side of the conversation (SPEC.md §1 "Greeting" and §3
//! "Answers"): encoding on the server, parsing on the client.

use thiserror::Error;

use crate::code::{ErrorCode, Refusal};
use crate::line::{Line, MAX_LINE, Parsed, next_line, parse_u64};
use crate::path::escape;

/// What ends an error message that was cut to keep its line within
/// [`MAX_LINE`] bytes.
pub const CUT: &str = "...";

/// An answer's header line. An `OK` header is followed by exactly `len` body
/// bytes, which the driver moves itself: the core never sees file contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `OK <n>`: `n` body bytes follow.
    Ok {
        /// The body's length.
        len: u64,
    },
    /// `ERR <CODE> <message>`: no body.
    Err(Refusal),
    /// `BYE`: the answer to `QUIT`; the server closes next.
    Bye,
}

impl Answer {
    /// Appends the header line to `out`: never more than [`MAX_LINE`]
    /// bytes, LF included, since clients hold answer lines to the same
    /// bound as requests (SPEC.md §3).
    ///
    /// An error message is sanitised to stay on one line, whatever path it
    /// quotes, and cut (at a character, never inside a `%XX` escape, marked
    /// with [`CUT`]) when the line would be longer: a message that quotes an
    /// 8 KiB path, or one whose control characters each became a
    /// three-byte escape, must not turn a legal request into an answer that
    /// breaks the client.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Answer::Ok { len } => out.extend_from_slice(format!("OK {len}\n").as_bytes()),
            Answer::Err(refusal) => {
                let head = format!("ERR {} ", refusal.code);
                let mut message = escape(&refusal.message);
                let room = MAX_LINE - head.len() - 1;
                if message.len() > room {
                    let mut cut = room - CUT.len();
                    while !message.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    if let Some(percent) = message[..cut].rfind('%').filter(|&at| cut - at < 3) {
                        cut = percent;
                    }
                    message.truncate(cut);
                    message.push_str(CUT);
                }
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(message.as_bytes());
                out.push(b'\n');
            }
            Answer::Bye => out.extend_from_slice(b"BYE\n"),
        }
    }
}

impl From<Refusal> for Answer {
    fn from(refusal: Refusal) -> Self {
        Answer::Err(refusal)
    }
}

/// A header line that is not FERRY/1.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AnswerError {
    /// No LF within [`MAX_LINE`] bytes.
    #[error("answer header longer than {MAX_LINE} bytes")]
    TooLong,
    /// A line that is not `OK <n>`, `ERR <CODE> <message>` or `BYE`.
    #[error("malformed answer header {0:?}")]
    Malformed(String),
}

/// Parses the first answer header in `buf`.
pub fn parse_answer(buf: &[u8]) -> Result<Parsed<Answer>, AnswerError> {
    let (line, consumed) = match next_line(buf) {
        Line::Incomplete => return Ok(Parsed::Incomplete),
        Line::TooLong => return Err(AnswerError::TooLong),
        Line::Complete(line, consumed) => (line, consumed),
    };
    let malformed = || AnswerError::Malformed(shown(line));
    let value = if line == b"BYE" {
        Answer::Bye
    } else if let Some(len) = line.strip_prefix(b"OK ") {
        Answer::Ok { len: parse_u64(len).ok_or_else(malformed)? }
    } else if let Some(rest) = line.strip_prefix(b"ERR ") {
        Answer::Err(parse_err(rest).ok_or_else(malformed)?)
    } else {
        return Err(malformed());
    };
    Ok(Parsed::Complete { value, consumed })
}

/// Parses `<CODE> <message>` (the message may be empty).
fn parse_err(rest: &[u8]) -> Option<Refusal> {
    let (code, message) = match rest.iter().position(|&b| b == b' ') {
        Some(space) => (&rest[..space], &rest[space + 1..]),
        None => (rest, &b""[..]),
    };
    let code = ErrorCode::from_wire(code)?;
    Some(Refusal::new(code, String::from_utf8_lossy(message).into_owned()))
}

/// What the server's first line said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// `FERRY/1 <impl>`: a FERRY/1 server, ready for requests.
    Ferry {
        /// The implementation's name, e.g. `std`, `tokio`, `smol`.
        implementation: String,
    },
    /// `ERR BUSY <message>`: the server is at its connection limit and
    /// closes.
    Busy {
        /// The server's explanation.
        message: String,
    },
}

/// The peer's first bytes are not a FERRY/1 greeting.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a FERRY/1 server (it said {said:?})")]
pub struct GreetingError {
    /// The start of what the peer sent, escaped for display.
    pub said: String,
}

const GREETING: &[u8] = b"FERRY/1 ";
const BUSY: &[u8] = b"ERR BUSY";

/// Appends the greeting for `implementation` (one token) to `out`.
pub fn encode_greeting(implementation: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(GREETING);
    out.extend_from_slice(implementation.as_bytes());
    out.push(b'\n');
}

/// Parses the greeting at the front of `buf`.
///
/// Fails as soon as the bytes so far cannot begin a greeting, so a client
/// connected to, say, an SSH server reports it at once rather than waiting
/// for a line that may never end.
pub fn parse_greeting(buf: &[u8]) -> Result<Parsed<Greeting>, GreetingError> {
    let not_ferry = || GreetingError { said: shown(&buf[..buf.len().min(64)]) };
    let head = &buf[..buf.len().min(GREETING.len())];
    let could_be = |prefix: &[u8]| prefix.starts_with(&head[..head.len().min(prefix.len())]);
    if !could_be(GREETING) && !could_be(BUSY) {
        return Err(not_ferry());
    }
    let (line, consumed) = match next_line(buf) {
        Line::Incomplete => return Ok(Parsed::Incomplete),
        Line::TooLong => return Err(not_ferry()),
        Line::Complete(line, consumed) => (line, consumed),
    };
    let value = if let Some(name) = line.strip_prefix(GREETING) {
        let valid = !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(not_ferry());
        }
        Greeting::Ferry { implementation: String::from_utf8_lossy(name).into_owned() }
    } else {
        match parse_answer(buf) {
            Ok(Parsed::Complete { value: Answer::Err(Refusal { code: ErrorCode::Busy, message }), .. }) => {
                Greeting::Busy { message }
            }
            _ => return Err(not_ferry()),
        }
    };
    Ok(Parsed::Complete { value, consumed })
}

/// Parses a `SUM` body: 64 lower-case hex digits.
pub fn parse_digest(body: &[u8]) -> Option<[u8; 32]> {
    if body.len() != 64 || !body.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut digest = [0; 32];
    for (byte, pair) in digest.iter_mut().zip(body.chunks_exact(2)) {
        let hex = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(digest)
}

fn shown(bytes: &[u8]) -> String {
    escape(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(buf: &[u8]) -> Answer {
        match parse_answer(buf) {
            Ok(Parsed::Complete { value, consumed }) => {
                assert_eq!(consumed, buf.len());
                value
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn golden_answers() {
        assert_eq!(answer(b"OK 0\n"), Answer::Ok { len: 0 });
        assert_eq!(answer(b"OK 18446744073709551615\r\n"), Answer::Ok { len: u64::MAX });
        assert_eq!(answer(b"BYE\n"), Answer::Bye);
        assert_eq!(
            answer(b"ERR NOT_FOUND docs/x.pdf does not exist\n"),
            Answer::Err(Refusal::new(ErrorCode::NotFound, "docs/x.pdf does not exist"))
        );
        assert_eq!(answer(b"ERR RANGE\n"), Answer::Err(Refusal::new(ErrorCode::Range, "")));
    }

    #[test]
    fn malformed_answers() {
        for bad in [&b"OK\n"[..], b"OK -1\n", b"OK 1 2\n", b"ERR NOPE x\n", b"HTTP/1.1 200 OK\n", b"\n"] {
            assert!(matches!(parse_answer(bad), Err(AnswerError::Malformed(_))), "{bad:?}");
        }
        assert_eq!(parse_answer(&[b'O'; MAX_LINE]), Err(AnswerError::TooLong));
        assert_eq!(parse_answer(b"OK 12"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn encoded_messages_stay_on_one_line() {
        let mut out = Vec::new();
        Answer::Err(Refusal::new(ErrorCode::NotFound, "a\nb does not exist")).encode(&mut out);
        assert_eq!(out, b"ERR NOT_FOUND a%0Ab does not exist\n");
    }

    #[test]
    fn greetings() {
        let mut out = Vec::new();
        encode_greeting("std", &mut out);
        assert_eq!(
            parse_greeting(&out),
            Ok(Parsed::Complete { value: Greeting::Ferry { implementation: "std".into() }, consumed: 12 })
        );
        assert_eq!(
            parse_greeting(b"ERR BUSY too many connections\n"),
            Ok(Parsed::Complete { value: Greeting::Busy { message: "too many connections".into() }, consumed: 30 })
        );
        assert_eq!(parse_greeting(b"FERR"), Ok(Parsed::Incomplete));
        for bad in [&b"SSH-2.0-OpenSSH_9.2\r\n"[..], b"HTTP", b"FERRY/2 std\n", b"FERRY/1 \n", b"ERR NOT_FOUND x\n"] {
            assert!(parse_greeting(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn digests() {
        let hex = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
        let digest = parse_digest(hex.as_bytes()).expect("valid");
        assert_eq!(digest[0], 0xaf);
        assert_eq!(digest[31], 0x62);
        assert_eq!(parse_digest(hex.to_uppercase().as_bytes()), None);
        assert_eq!(parse_digest(&hex.as_bytes()[..63]), None);
    }
}
