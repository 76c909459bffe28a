//! Requests (SPEC.md §2 "Requests"): parsing on the server, encoding on the
//! client.

use std::collections::VecDeque;

use crate::code::{ErrorCode, Refusal};
use crate::line::{Line, MAX_LINE, Parsed, next_line, parse_u64};
use crate::path::{WirePath, escape};
use crate::token::Token;

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET <path> [<offset> [<length>]]`: file bytes from `offset`, at most
    /// `length` of them (to the end when `None`).
    Get {
        /// The file.
        path: WirePath,
        /// The first byte to send; 0 for the whole file.
        offset: u64,
        /// The most bytes to send; `None` for "to the end".
        length: Option<u64>,
    },
    /// `LIST <path>`: the entries of a directory.
    List {
        /// The directory.
        path: WirePath,
    },
    /// `TREE <path>`: every entry under a directory, at any depth, with
    /// modification times.
    Tree {
        /// The directory.
        path: WirePath,
    },
    /// `SUM <path>`: the file's BLAKE3 digest.
    Sum {
        /// The file.
        path: WirePath,
    },
    /// `QUIT`: the server answers `BYE` and closes.
    Quit,
    /// `AUTH <token>`: the access token, first on a connection to a server
    /// that requires one; answered `OK 0`.
    Auth {
        /// The token.
        token: Token,
    },
}

impl Request {
    /// Whether answering this is **heavy** work: SUM, LIST and TREE cost
    /// time that grows with the file or folder, not with the request, so a
    /// server bounds how many run at once and how long each may take
    /// (SPEC.md §4).
    pub fn is_heavy(&self) -> bool {
        matches!(self, Request::Sum { .. } | Request::List { .. } | Request::Tree { .. })
    }

    /// The path the request is about, if any.
    pub fn path(&self) -> Option<&WirePath> {
        match self {
            Request::Get { path, .. } | Request::List { path } | Request::Tree { path } | Request::Sum { path } => {
                Some(path)
            }
            Request::Quit | Request::Auth { .. } => None,
        }
    }

    /// Appends the request line, LF included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let line = match self {
            Request::Get { path, offset: 0, length: None } => format!("GET {}\n", path.encoded()),
            Request::Get { path, offset, length: None } => format!("GET {} {offset}\n", path.encoded()),
            Request::Get { path, offset, length: Some(length) } => {
                format!("GET {} {offset} {length}\n", path.encoded())
            }
            Request::List { path } => format!("LIST {}\n", path.encoded()),
            Request::Tree { path } => format!("TREE {}\n", path.encoded()),
            Request::Sum { path } => format!("SUM {}\n", path.encoded()),
            Request::Quit => "QUIT\n".to_owned(),
            Request::Auth { token } => {
                out.extend_from_slice(b"AUTH ");
                out.extend_from_slice(token.expose());
                out.push(b'\n');
                return;
            }
        };
        out.extend_from_slice(line.as_bytes());
    }

    /// The request as a log line shows it: as it would be sent, but with
    /// an access token left out, so that no log holds a secret.
    pub fn shown(&self) -> String {
        if let Request::Auth { .. } = self {
            return "AUTH -".to_owned();
        }
        let mut line = Vec::new();
        self.encode(&mut line);
        String::from_utf8_lossy(line.trim_ascii_end()).into_owned()
    }
}

/// Parses the first request line in `buf`.
///
/// A complete line yields either a request or the refusal to send for it;
/// either way the line is consumed and the connection goes on, unless the
/// refusal's code [closes it](ErrorCode::closes_connection). A line longer
/// than [`MAX_LINE`] is refused with `TOO_LONG` as soon as that many bytes
/// have arrived without an LF, so the server never buffers more.
pub fn parse_request(buf: &[u8]) -> Parsed<Result<Request, Refusal>> {
    match next_line(buf) {
        Line::Incomplete => Parsed::Incomplete,
        Line::TooLong => Parsed::Complete {
            value: Err(Refusal::new(ErrorCode::TooLong, format!("request line longer than {MAX_LINE} bytes"))),
            consumed: buf.len().min(MAX_LINE),
        },
        Line::Complete(line, consumed) => Parsed::Complete { value: parse_line(line), consumed },
    }
}

/// Parses the whole request lines at the front of `buf` into `pending`,
/// until it holds `max`: [`Parsed::Complete`] with how many were queued and
/// the bytes they took, or [`Parsed::Incomplete`] when not one line is whole.
///
/// A client that pipelines sends many requests in one segment; taking all
/// of them at once lets a server answer them together (one trip to a
/// blocking pool, one write). Parsing stops after a line whose refusal
/// closes the connection: nothing after it will be answered.
pub fn parse_pipelined(buf: &[u8], pending: &mut VecDeque<Result<Request, Refusal>>, max: usize) -> Parsed<usize> {
    let (mut queued, mut consumed) = (0, 0);
    while pending.len() < max {
        let Parsed::Complete { value, consumed: line } = parse_request(&buf[consumed..]) else { break };
        consumed += line;
        queued += 1;
        let closes = value.as_ref().is_err_and(|refusal| refusal.code.closes_connection());
        pending.push_back(value);
        if closes {
            break;
        }
    }
    if queued == 0 { Parsed::Incomplete } else { Parsed::Complete { value: queued, consumed } }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::BadRequest, message)
}

/// Parses one request line, terminator already removed.
fn parse_line(line: &[u8]) -> Result<Request, Refusal> {
    if line.is_empty() {
        return Err(bad("empty request line"));
    }
    let tokens: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return Err(bad("tokens must be separated by exactly one space"));
    }
    let (command, args) = (tokens[0], &tokens[1..]);
    let usage = |form: &str| bad(format!("wrong number of arguments; usage: {form}"));
    match command {
        b"GET" => {
            let [path, rest @ ..] = args else {
                return Err(usage("GET <path> [<offset> [<length>]]"));
            };
            let (offset, length) = match rest {
                [] => (0, None),
                [offset] => (number(offset, "offset")?, None),
                [offset, length] => (number(offset, "offset")?, Some(number(length, "length")?)),
                _ => return Err(usage("GET <path> [<offset> [<length>]]")),
            };
            Ok(Request::Get { path: WirePath::decode(path)?, offset, length })
        }
        b"LIST" => match args {
            [path] => Ok(Request::List { path: WirePath::decode(path)? }),
            _ => Err(usage("LIST <path>")),
        },
        b"TREE" => match args {
            [path] => Ok(Request::Tree { path: WirePath::decode(path)? }),
            _ => Err(usage("TREE <path>")),
        },
        b"SUM" => match args {
            [path] => Ok(Request::Sum { path: WirePath::decode(path)? }),
            _ => Err(usage("SUM <path>")),
        },
        b"QUIT" => match args {
            [] => Ok(Request::Quit),
            _ => Err(usage("QUIT")),
        },
        b"AUTH" => match args {
            [token] => Token::new(token).map(|token| Request::Auth { token }).map_err(|e| bad(e.to_string())),
            _ => Err(usage("AUTH <token>")),
        },
        other => {
            let shown = escape(&String::from_utf8_lossy(&other[..other.len().min(32)]));
            Err(bad(format!("unknown command {shown:?}; commands are GET, LIST, TREE, SUM, QUIT, AUTH")))
        }
    }
}

fn number(token: &[u8], what: &str) -> Result<u64, Refusal> {
    parse_u64(token).ok_or_else(|| {
        let shown = escape(&String::from_utf8_lossy(&token[..token.len().min(32)]));
        bad(format!("{what} {shown:?} is not a decimal number that fits in 64 bits"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> WirePath {
        WirePath::new(text).expect("valid path")
    }

    fn parse_one(line: &[u8]) -> Result<Request, Refusal> {
        match parse_request(line) {
            Parsed::Complete { value, consumed } => {
                assert_eq!(consumed, line.len());
                value
            }
            Parsed::Incomplete => panic!("{line:?} is incomplete"),
        }
    }

    fn refusal(line: &[u8]) -> ErrorCode {
        parse_one(line).expect_err("should be refused").code
    }

    #[test]
    fn golden_requests() {
        let cases: Vec<(&[u8], Request)> = vec![
            (b"GET a.txt\n", Request::Get { path: path("a.txt"), offset: 0, length: None }),
            (b"GET a.txt 10\r\n", Request::Get { path: path("a.txt"), offset: 10, length: None }),
            (b"GET a.txt 10 5\n", Request::Get { path: path("a.txt"), offset: 10, length: Some(5) }),
            (b"GET my%20file.txt\n", Request::Get { path: path("my file.txt"), offset: 0, length: None }),
            (b"LIST /\n", Request::List { path: path("/") }),
            (b"TREE docs\n", Request::Tree { path: path("docs") }),
            (b"SUM docs/x.pdf\n", Request::Sum { path: path("docs/x.pdf") }),
            (b"QUIT\n", Request::Quit),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_one(line), Ok(expected), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn golden_encodings() {
        let mut out = Vec::new();
        Request::Get { path: path("my file.txt"), offset: 0, length: None }.encode(&mut out);
        Request::Get { path: path("a"), offset: 3, length: None }.encode(&mut out);
        Request::Get { path: path("a"), offset: 0, length: Some(9) }.encode(&mut out);
        Request::List { path: path("/") }.encode(&mut out);
        Request::Sum { path: path("é") }.encode(&mut out);
        Request::Quit.encode(&mut out);
        assert_eq!(out, b"GET my%20file.txt\nGET a 3\nGET a 0 9\nLIST /\nSUM %C3%A9\nQUIT\n");
    }

    #[test]
    fn bad_requests() {
        for line in [
            &b"\n"[..],
            b"\r\n",
            b"get a\n",
            b"FETCH a\n",
            b"GET\n",
            b"GET a 1 2 3\n",
            b"GET  a\n",
            b"GET a \n",
            b" GET a\n",
            b"GET a x\n",
            b"GET a -1\n",
            b"GET a 1 99999999999999999999\n",
            b"LIST\n",
            b"LIST a b\n",
            b"SUM\n",
            b"QUIT now\n",
            b"GET %zz\n",
            b"GET %00\n",
            b"\x00\xff\xfe junk\n",
        ] {
            assert_eq!(refusal(line), ErrorCode::BadRequest, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(refusal(b"GET ../etc/passwd\n"), ErrorCode::Forbidden);
    }

    #[test]
    fn too_long_is_refused_without_waiting_for_the_lf() {
        let long = vec![b'a'; 9000];
        match parse_request(&long) {
            Parsed::Complete { value: Err(refusal), consumed } => {
                assert_eq!(refusal.code, ErrorCode::TooLong);
                assert_eq!(consumed, MAX_LINE);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(parse_request(&long[..MAX_LINE - 1]), Parsed::Incomplete);
    }

    #[test]
    fn pipelined_lines_parse_one_at_a_time() {
        let buf = b"GET a\nLIST /\r\nQUIT\nGET";
        let mut rest = &buf[..];
        let mut seen = Vec::new();
        while let Parsed::Complete { value, consumed } = parse_request(rest) {
            seen.push(value.expect("valid"));
            rest = &rest[consumed..];
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], Request::Quit);
        assert_eq!(rest, b"GET");
    }

    #[test]
    fn every_split_point_gives_the_same_requests() {
        let buf = b"GET a%20b 1 2\r\nLIST /\nSUM x\nQUIT\n";
        let whole = collect(buf);
        for split in 0..buf.len() {
            // Feed the first `split` bytes, then the rest, as two reads.
            let mut received = buf[..split].to_vec();
            let mut seen = drain(&mut received);
            received.extend_from_slice(&buf[split..]);
            seen.extend(drain(&mut received));
            assert_eq!(seen, whole, "split at {split}");
        }
    }

    fn drain(received: &mut Vec<u8>) -> Vec<Result<Request, Refusal>> {
        let mut out = Vec::new();
        while let Parsed::Complete { value, consumed } = parse_request(received) {
            out.push(value);
            received.drain(..consumed);
        }
        out
    }

    fn collect(buf: &[u8]) -> Vec<Result<Request, Refusal>> {
        drain(&mut buf.to_vec())
    }

    fn pipelined(buf: &[u8], pending: &mut VecDeque<Result<Request, Refusal>>, max: usize) -> (usize, usize) {
        match parse_pipelined(buf, pending, max) {
            Parsed::Complete { value, consumed } => (value, consumed),
            Parsed::Incomplete => (0, 0),
        }
    }

    #[test]
    fn pipelined_lines_are_taken_whole_up_to_max() {
        let buf = b"GET a\nGET b 1\nLIST /\nGET c";
        let mut pending = VecDeque::new();
        let (queued, taken) = pipelined(buf, &mut pending, 2);
        assert_eq!((queued, taken), (2, b"GET a\nGET b 1\n".len()));
        assert_eq!(
            Vec::from(pending.clone()),
            [
                Ok(Request::Get { path: path("a"), offset: 0, length: None }),
                Ok(Request::Get { path: path("b"), offset: 1, length: None }),
            ]
        );
        // The max counts what is already pending; the partial line waits.
        assert_eq!(pipelined(&buf[taken..], &mut pending, 4), (1, b"LIST /\n".len()));
        assert_eq!(pending.len(), 3);
        assert!(matches!(parse_pipelined(b"GET c", &mut VecDeque::new(), 4), Parsed::Incomplete));
        assert!(matches!(parse_pipelined(b"GET c\n", &mut pending, 3), Parsed::Incomplete));
    }

    #[test]
    fn pipelined_parsing_stops_after_a_line_that_closes() {
        let mut buf = vec![b'x'; MAX_LINE + 10];
        buf.extend_from_slice(b"\nGET a\n");
        let mut pending = VecDeque::new();
        assert_eq!(pipelined(&buf, &mut pending, 64), (1, MAX_LINE));
        assert_eq!(pending[0].as_ref().expect_err("too long").code, ErrorCode::TooLong);
        // A refusal that keeps the connection does not stop it.
        let mut pending = VecDeque::new();
        assert_eq!(pipelined(b"FETCH a\nGET a\n", &mut pending, 64), (2, 14));
    }
}
