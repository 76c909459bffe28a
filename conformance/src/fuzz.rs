//! `--fuzz N`: generated and mutated request lines against a server, the
//! way Autobahn fuzzes WebSocket servers.
//!
//! Each connection gets a burst of one to eight lines, written whole, split
//! at random places, or a byte at a time: valid requests for the fixture's
//! files, and the same mangled (random bytes, NUL, CR and high bytes,
//! percent-escapes that are overlong, invalid or encode `..`, huge numbers,
//! extra spaces, lower-case verbs, junk tokens, traversal, links out of the
//! root, lines longer than 8192 bytes). The server passes when every answer
//! is a well-formed FERRY/1 answer line of at most 8192 bytes, one per
//! request, with the connection closing exactly after a closing answer; when
//! no answer, body or message ever holds the fixture's secret (a file beside
//! the root, reachable only by a confinement bug); and when it still answers
//! a plain GET correctly at the end. A failure names the seed and the
//! smallest input found that still fails alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::fixture::{Fixture, SECRET};
use crate::wire::shown;

/// How long one answer may take before the server is said to hang.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Bodies larger than this are not read: the connection is dropped after
/// the header, which a server must survive as well.
const BODY_CAP: u64 = 1 << 20;

/// The longest line either side may send, LF included (SPEC.md §1).
const MAX_LINE: usize = 8192;

/// Every error code of SPEC.md §4.
const CODES: [&str; 10] = [
    "BAD_REQUEST",
    "NOT_FOUND",
    "FORBIDDEN",
    "NOT_A_FILE",
    "NOT_A_DIRECTORY",
    "RANGE",
    "INTERNAL",
    "TOO_LONG",
    "BUSY",
    "TIMEOUT",
];

/// Paths the generator starts from: the fixture's files, folders and links,
/// and ways out of the root. (Never `big/`, whose 1 TiB file is for the
/// cases that bound SUM.)
const PATHS: [&str; 24] = [
    "empty",
    "one-byte",
    "eight-k.bin",
    "one-m.bin",
    "sixty-four-m.bin",
    "a/b/c/nested.txt",
    "with%20space/na%C3%AFve%20caf%C3%A9.txt",
    "sub/%C3%A9.txt",
    "sub/x.txt",
    "sub",
    "sub/dir",
    "sub/link-in",
    "sub/link-out",
    "sub/abs-in",
    "out-file",
    "out-dir/secret.txt",
    "/",
    "..",
    "../outside/secret.txt",
    "%2e%2e/outside/secret.txt",
    "%2E%2E%2Foutside%2Fsecret.txt",
    "a/../../outside/secret.txt",
    "/etc/passwd",
    "%C0%AE%C0%AE/outside/secret.txt",
];

/// What a fuzzing run did.
#[derive(Debug)]
pub struct Fuzzed {
    /// Request lines sent.
    pub requests: usize,
    /// Connections made.
    pub connections: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// A fuzzing failure: why, and the smallest input found that fails alone.
#[derive(Debug)]
pub struct FuzzFailure {
    /// The seed that reproduces the run.
    pub seed: u64,
    /// What was wrong.
    pub why: String,
    /// The bytes that, sent alone on a fresh connection, still fail.
    pub input: Vec<u8>,
}

impl std::fmt::Display for FuzzFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {}: {}; smallest input that fails: {}", self.seed, self.why, shown(&self.input))
    }
}

/// Sends `count` generated request lines from `seed` to the server at
/// `addr`, which shares `fixture`.
pub fn fuzz(addr: SocketAddr, fixture: &Fixture, count: usize, seed: u64) -> Result<Fuzzed, FuzzFailure> {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut requests, mut connections) = (0, 0);
    while requests < count {
        let lines: Vec<Vec<u8>> = (0..rng.usize(1..=8).min(count - requests)).map(|_| line(&mut rng)).collect();
        let delivery = Delivery::pick(&mut rng, &lines);
        if let Err(why) = exchange(addr, &lines, delivery, &mut rng) {
            let input = smallest(addr, &lines, &why, &mut rng);
            return Err(FuzzFailure { seed, why, input });
        }
        requests += lines.len();
        connections += 1;
    }
    still_serving(addr, fixture).map_err(|why| FuzzFailure { seed, why, input: b"GET one-byte\n".to_vec() })?;
    Ok(Fuzzed { requests, connections, elapsed: started.elapsed() })
}

/// One generated request line, LF included (unless it is one of the lines
/// longer than the limit, which end past it).
fn line(rng: &mut fastrand::Rng) -> Vec<u8> {
    let path = PATHS[rng.usize(..PATHS.len())];
    let mut line = match rng.u8(..10) {
        0..=3 => format!("GET {path}").into_bytes(),
        4 => format!("GET {path} {} {}", rng.u64(..20), rng.u64(..20)).into_bytes(),
        5 => format!("LIST {path}").into_bytes(),
        6 => format!("SUM {path}").into_bytes(),
        7 => b"QUIT".to_vec(),
        8 => format!("GET {path} {}{}", rng.u64(..), "9".repeat(rng.usize(..30))).into_bytes(),
        _ => (0..rng.usize(..40)).map(|_| rng.u8(..)).filter(|&b| b != b'\n').collect(),
    };
    for _ in 0..rng.usize(..3) {
        mutate(rng, &mut line);
    }
    if rng.u8(..40) == 0 {
        // Long: up to, at, or past the limit, in ASCII or in escapes.
        let unit: &[u8] = if rng.bool() { b"a" } else { b"%C2%80" };
        let target = rng.usize(MAX_LINE - 200..MAX_LINE + 800);
        while line.len() < target {
            line.extend_from_slice(unit);
        }
        line.truncate(target);
    }
    line.push(b'\n');
    line
}

/// One mutation of a line.
fn mutate(rng: &mut fastrand::Rng, line: &mut Vec<u8>) {
    let at = rng.usize(..=line.len());
    match rng.u8(..9) {
        0 => line.insert(at, [0, b'\r', 0x80, 0xff, 0xc0, b' ', b'%', b'\t'][rng.usize(..8)]),
        1 if !line.is_empty() => {
            line.remove(at.min(line.len() - 1));
        }
        2 => line.make_ascii_lowercase(),
        3 => line.splice(at..at, b"  ".iter().copied()).for_each(drop),
        4 => line.extend_from_slice(b" junk"),
        5 => {
            let escape = ["%2e%2e", "%00", "%zz", "%C0%AE", "%FF", "%", "%2", "%2F", "%5C"][rng.usize(..9)];
            line.splice(at..at, escape.bytes()).for_each(drop);
        }
        6 => line.splice(at..at, b"/..".iter().copied()).for_each(drop),
        7 => line.truncate(at),
        _ => line.splice(at..at, (0..rng.usize(1..6)).map(|_| rng.u8(1..))).for_each(drop),
    }
    line.retain(|&b| b != b'\n');
}

/// How a burst of lines is written.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    /// In one write.
    Whole,
    /// In writes split at random places.
    Split,
    /// A byte a write.
    Bytes,
}

impl Delivery {
    fn pick(rng: &mut fastrand::Rng, lines: &[Vec<u8>]) -> Delivery {
        let total: usize = lines.iter().map(Vec::len).sum();
        match rng.u8(..8) {
            0 if total <= 512 => Delivery::Bytes,
            1 | 2 => Delivery::Split,
            _ => Delivery::Whole,
        }
    }
}

/// Sends `lines` on a fresh connection and checks every answer.
fn exchange(addr: SocketAddr, lines: &[Vec<u8>], delivery: Delivery, rng: &mut fastrand::Rng) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, ANSWER_WAIT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(ANSWER_WAIT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(ANSWER_WAIT)).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut reader = Reader { stream: stream.try_clone().map_err(|e| e.to_string())?, buffer: Vec::new() };
    let greeting = reader.line()?;
    if !greeting.starts_with(b"FERRY/1 ") {
        return Err(format!("expected a greeting \"FERRY/1 <impl>\\n\"; got {}", shown(&greeting)));
    }
    let bytes: Vec<u8> = lines.concat();
    // A server may close after a closing answer while we still write: that
    // is its right, so write errors are not failures; answers decide.
    let _ = match delivery {
        Delivery::Whole => stream.write_all(&bytes),
        Delivery::Bytes => bytes.iter().try_for_each(|b| stream.write_all(std::slice::from_ref(b))),
        Delivery::Split => {
            let mut rest = &bytes[..];
            let mut written = Ok(());
            while !rest.is_empty() && written.is_ok() {
                let (now, later) = rest.split_at(rng.usize(1..=rest.len()));
                written = stream.write_all(now);
                rest = later;
            }
            written
        }
    };
    for (index, line) in lines.iter().enumerate() {
        let answer = reader.line().map_err(|e| format!("request {} {}: {e}", index + 1, shown(line)))?;
        let closes = check_answer(&answer, &mut reader).map_err(|e| format!("request {}: {e}", shown(line)))?;
        match closes {
            Next::Continue => {}
            Next::Closes => return reader.closes(&answer),
            Next::Dropped => return Ok(()),
        }
        // A line past the limit: the server answers TOO_LONG and closes,
        // or (if the LF came within the limit) answers it like any other.
        if line.len() > MAX_LINE && !answer.starts_with(b"ERR TOO_LONG") {
            return Err(format!("a {}-byte line was answered {}, not ERR TOO_LONG", line.len(), shown(&answer)));
        }
    }
    Ok(())
}

/// What comes after an answer.
enum Next {
    /// The next answer.
    Continue,
    /// The end of the connection (BYE, TOO_LONG, BUSY, TIMEOUT).
    Closes,
    /// Nothing: a body too large to read was left unread.
    Dropped,
}

/// Checks one answer line (and reads its body).
fn check_answer(answer: &[u8], reader: &mut Reader) -> Result<Next, String> {
    if answer.windows(SECRET.len().min(24)).any(|w| SECRET.starts_with(w)) {
        return Err(format!("an answer line quotes the secret outside the root: {}", shown(answer)));
    }
    let text =
        std::str::from_utf8(answer).map_err(|_| format!("an answer line that is not UTF-8: {}", shown(answer)))?;
    if text == "BYE" {
        return Ok(Next::Closes);
    }
    if let Some(len) = text.strip_prefix("OK ") {
        let len: u64 = (!len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()))
            .then(|| len.parse().ok())
            .flatten()
            .ok_or_else(|| format!("not a FERRY/1 answer line: {}", shown(answer)))?;
        if len > BODY_CAP {
            return Ok(Next::Dropped);
        }
        let body = reader.body(len as usize)?;
        if body.windows(SECRET.len()).any(|w| w == SECRET) {
            return Err("a body holds the secret file that lies outside the root".to_owned());
        }
        return Ok(Next::Continue);
    }
    if let Some(rest) = text.strip_prefix("ERR ") {
        let code = rest.split(' ').next().unwrap_or_default();
        if !CODES.contains(&code) {
            return Err(format!("an error code SPEC.md §4 does not have: {}", shown(answer)));
        }
        return Ok(if matches!(code, "TOO_LONG" | "BUSY" | "TIMEOUT") { Next::Closes } else { Next::Continue });
    }
    Err(format!("not a FERRY/1 answer line: {}", shown(answer)))
}

/// The read side of a connection under test.
struct Reader {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Reader {
    /// One line, without its LF: at most [`MAX_LINE`] bytes with it.
    fn line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(lf) = self.buffer.iter().position(|&b| b == b'\n') {
                if lf + 1 > MAX_LINE {
                    return Err(format!("an answer line of {} bytes, over the {MAX_LINE} clients accept", lf + 1));
                }
                let mut line: Vec<u8> = self.buffer.drain(..=lf).collect();
                line.pop();
                return Ok(line);
            }
            if self.buffer.len() >= MAX_LINE {
                return Err(format!("no LF within {MAX_LINE} bytes of an answer: {}", shown(&self.buffer)));
            }
            if !self.fill()? {
                return Err(format!(
                    "the server closed the connection where an answer was due (had {})",
                    shown(&self.buffer)
                ));
            }
        }
    }

    fn body(&mut self, len: usize) -> Result<Vec<u8>, String> {
        while self.buffer.len() < len {
            if !self.fill()? {
                return Err(format!("a body cut short: {} of {len} bytes", self.buffer.len()));
            }
        }
        Ok(self.buffer.drain(..len).collect())
    }

    /// After a closing answer: nothing more, then the end of the stream.
    fn closes(&mut self, answer: &[u8]) -> Result<(), String> {
        if !self.buffer.is_empty() {
            return Err(format!("bytes after the closing answer {}: {}", shown(answer), shown(&self.buffer)));
        }
        match self.fill() {
            Ok(false) => Ok(()),
            Ok(true) => Err(format!("bytes after the closing answer {}: {}", shown(answer), shown(&self.buffer))),
            // A reset after a closing answer is a close too.
            Err(_) => Ok(()),
        }
    }

    /// Reads more; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err(format!("no answer within {} s", ANSWER_WAIT.as_secs()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(false),
            Err(e) => Err(format!("read: {e}")),
        }
    }
}

/// The smallest input found that still fails alone *the same way* as
/// `why` says: a single line of the burst if one does, cut down a byte
/// range at a time while it fails so. A smaller input that fails some other
/// way is another bug, and would hide this one.
fn smallest(addr: SocketAddr, lines: &[Vec<u8>], why: &str, rng: &mut fastrand::Rng) -> Vec<u8> {
    let fails = |input: &[u8], rng: &mut fastrand::Rng| {
        exchange(addr, &[input.to_vec()], Delivery::Whole, rng).err().is_some_and(|other| kind(&other) == kind(why))
    };
    let Some(mut input) = lines.iter().find(|line| fails(line, rng)).cloned() else { return lines.concat() };
    let mut chunk = input.len() / 2;
    let mut tries = 0;
    while chunk > 0 && tries < 200 {
        let mut at = 0;
        let mut cut = false;
        while at + chunk < input.len() && tries < 200 {
            tries += 1;
            let candidate = [&input[..at], &input[at + chunk..]].concat();
            if candidate.ends_with(b"\n") && fails(&candidate, rng) {
                input = candidate;
                cut = true;
            } else {
                at += chunk;
            }
        }
        if !cut {
            chunk /= 2;
        }
    }
    input
}

/// The kind of failure a message tells of, for [`smallest`]: its words
/// without the bytes it quotes.
fn kind(why: &str) -> &str {
    const KINDS: [&str; 13] = [
        "secret",
        "closed the connection",
        "no answer within",
        "not ERR TOO_LONG",
        "an error code",
        "not a FERRY/1 answer line",
        "over the",
        "no LF within",
        "a body cut short",
        "bytes after the closing answer",
        "read:",
        "expected a greeting",
        "after fuzzing",
    ];
    KINDS.iter().find(|kind| why.contains(*kind)).copied().unwrap_or(why)
}

/// After the fuzzing, a plain GET must still be answered right.
fn still_serving(addr: SocketAddr, fixture: &Fixture) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, ANSWER_WAIT).map_err(|e| format!("connect after fuzzing: {e}"))?;
    stream.set_read_timeout(Some(ANSWER_WAIT)).map_err(|e| e.to_string())?;
    let mut reader = Reader { stream: stream.try_clone().map_err(|e| e.to_string())?, buffer: Vec::new() };
    reader.line()?;
    stream.write_all(b"GET one-byte\n").map_err(|e| e.to_string())?;
    let header = reader.line()?;
    let expected = fixture.bytes("one-byte");
    if header != format!("OK {}", expected.len()).as_bytes() || reader.body(expected.len())? != expected {
        return Err(format!("after fuzzing, GET one-byte was answered {}", shown(&header)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_shrinks_only_to_inputs_that_leak() {
        let leak = kind("an answer line quotes the secret outside the root: \"OK 58\"");
        assert_eq!(leak, kind("a body holds the secret file that lies outside the root"));
        assert_ne!(leak, kind("the server closed the connection where an answer was due (had \"\")"));
    }
}
