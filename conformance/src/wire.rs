//! A deliberately small FERRY/1 client written from SPEC.md alone, for
//! speaking raw bytes to a server under test, on plain TCP or inside TLS
//! (§8). Every read has a timeout, so a server that hangs fails a case
//! instead of hanging the suite.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::Check;

/// How long any single wait for a server may take before the case fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// An answer header as SPEC.md §3 defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// `OK <n>`.
    Ok(u64),
    /// `ERR <CODE> <message>`.
    Err {
        /// The code.
        code: String,
        /// The message.
        message: String,
    },
    /// `BYE`.
    Bye,
}

/// A header as it stood on the wire: `"OK 13\n"`, `"ERR NOT_FOUND x\n"`.
impl std::fmt::Display for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = match self {
            Header::Ok(len) => format!("OK {len}\n"),
            Header::Err { code, message } => format!("ERR {code} {message}\n"),
            Header::Bye => "BYE\n".to_owned(),
        };
        f.write_str(&shown(line.as_bytes()))
    }
}

/// Bytes as FERRY/1 text for a failure message: in quotes, with LF, CR,
/// TAB and every other byte that is not printable ASCII escaped (`\n`,
/// `\x1b`), cut after 120 bytes.
pub fn shown(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &byte in bytes.iter().take(120) {
        match byte {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    if bytes.len() > 120 {
        out.push_str(&format!(" (and {} more bytes)", bytes.len() - 120));
    }
    out
}

/// A raw connection.
#[derive(Debug)]
pub struct Wire {
    stream: TcpStream,
    /// TLS over the stream, once a handshake made it.
    tls: Option<Box<rustls::ClientConnection>>,
    buffer: Vec<u8>,
    /// Its place in this thread's [`Transcript`], when one is kept.
    recorded: Option<usize>,
}

/// What the connections a case opened on this thread sent, kept while the
/// runner records (see [`Transcript::record`]): for a failure that was a
/// plain exchange, the runner prints a `printf … | nc` line that replays it.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    /// Per connection: where to, and every byte sent.
    pub connections: Vec<(SocketAddr, Vec<u8>)>,
}

thread_local! {
    static TRANSCRIPT: std::cell::RefCell<Option<Transcript>> = const { std::cell::RefCell::new(None) };
}

impl Transcript {
    /// Runs `work`, recording what connections opened by it (on this
    /// thread) send.
    pub fn record<T>(work: impl FnOnce() -> T) -> (T, Transcript) {
        TRANSCRIPT.with(|t| *t.borrow_mut() = Some(Transcript::default()));
        let result = work();
        let transcript = TRANSCRIPT.with(|t| t.borrow_mut().take()).unwrap_or_default();
        (result, transcript)
    }

    /// A shell line that replays a one-connection exchange of at most 512
    /// bytes with `printf` and `nc`, or `None` for anything else.
    pub fn by_hand(&self) -> Option<String> {
        let [(addr, bytes)] = self.connections.as_slice() else { return None };
        if bytes.is_empty() || bytes.len() > 512 {
            return None;
        }
        let mut format = String::new();
        for &byte in bytes {
            match byte {
                b'\n' => format.push_str("\\n"),
                b'\\' => format.push_str("\\\\"),
                b'%' => format.push_str("%%"),
                b'\'' => format.push_str("\\047"),
                0x20..=0x7e => format.push(byte as char),
                _ => format.push_str(&format!("\\{byte:03o}")),
            }
        }
        Some(format!("printf '{format}' | nc -q 2 {} {}", addr.ip(), addr.port()))
    }
}

impl Wire {
    /// Connects without reading anything.
    pub fn connect(addr: SocketAddr) -> Result<Wire, String> {
        let stream = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
        let recorded = TRANSCRIPT.with(|t| {
            t.borrow_mut().as_mut().map(|transcript| {
                transcript.connections.push((addr, Vec::new()));
                transcript.connections.len() - 1
            })
        });
        Ok(Wire { stream, tls: None, buffer: Vec::new(), recorded })
    }

    /// Connects and makes a TLS session with `config`, as `name`: the
    /// handshake done, nothing read after it.
    pub fn tls(addr: SocketAddr, config: std::sync::Arc<rustls::ClientConfig>) -> Result<Wire, String> {
        let mut wire = Wire::connect(addr)?;
        let mut conn = rustls::ClientConnection::new(config, crate::tls::loopback()).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut wire.stream).map_err(|e| format!("TLS handshake: {e}"))?;
        }
        wire.tls = Some(Box::new(conn));
        Ok(wire)
    }

    /// [`Wire::tls`], then the greeting read; returns the implementation
    /// token.
    pub fn tls_greeted(
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<(Wire, String), String> {
        let mut wire = Wire::tls(addr, config)?;
        let name = wire.greeting()?;
        Ok((wire, name))
    }

    /// Shrinks this side's receive buffer to about `bytes`, so that what
    /// the kernel holds for a reader that is slow is small, as across a real
    /// network, and not the megabytes loopback grows to.
    pub fn small_receive_buffer(&self, bytes: usize) -> Check {
        rustix::net::sockopt::set_socket_recv_buffer_size(&self.stream, bytes).map_err(|e| format!("SO_RCVBUF: {e}"))
    }

    /// Wraps a connection a scripted server accepted.
    pub fn accepted(stream: TcpStream) -> Result<Wire, String> {
        stream.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
        Ok(Wire { stream, tls: None, buffer: Vec::new(), recorded: None })
    }

    /// Connects and checks the greeting; returns the implementation token.
    pub fn greeted(addr: SocketAddr) -> Result<(Wire, String), String> {
        let mut wire = Wire::connect(addr)?;
        let name = wire.greeting()?;
        Ok((wire, name))
    }

    /// Reads and checks the greeting; returns the implementation token.
    fn greeting(&mut self) -> Result<String, String> {
        let wire = self;
        let line = wire.line()?;
        let text = String::from_utf8(line).map_err(|_| "greeting is not UTF-8".to_owned())?;
        let Some(name) = text.strip_prefix("FERRY/1 ") else {
            return Err(format!("greeting {text:?} does not start with \"FERRY/1 \""));
        };
        if name.is_empty() || name.contains(' ') {
            return Err(format!("greeting {text:?} does not name the implementation in one token"));
        }
        Ok(name.to_owned())
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Check {
        if let Some(index) = self.recorded {
            TRANSCRIPT.with(|t| {
                if let Some(transcript) = t.borrow_mut().as_mut() {
                    transcript.connections[index].1.extend_from_slice(bytes);
                }
            });
        }
        match &mut self.tls {
            Some(tls) => rustls::Stream::new(&mut **tls, &mut self.stream).write_all(bytes).and_then(|()| {
                while tls.wants_write() {
                    tls.write_tls(&mut self.stream)?;
                }
                Ok(())
            }),
            None => self.stream.write_all(bytes),
        }
        .map_err(|e| format!("send: {e}"))
    }

    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = vec![0; 256 * 1024];
        loop {
            let read = match &mut self.tls {
                Some(tls) => rustls::Stream::new(&mut **tls, &mut self.stream).read(&mut chunk),
                None => self.stream.read(&mut chunk),
            };
            return match read {
                Ok(0) => Ok(false),
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    Ok(true)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    Err(format!("no data from the server for {WAIT:?}"))
                }
                Err(e) => Err(format!("read: {e}")),
            };
        }
    }

    /// Reads one line, without its LF (or CR LF).
    pub fn line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(lf) = self.buffer.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=lf).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if !self.fill()? {
                return Err(format!(
                    "the server closed the connection; a line was due, and it had sent {}",
                    shown(&self.buffer)
                ));
            }
        }
    }

    /// Reads an answer header.
    pub fn header(&mut self) -> Result<Header, String> {
        let line = self.line()?;
        let text = String::from_utf8(line.clone())
            .map_err(|_| format!("an answer line that is not UTF-8: {}", shown(&line)))?;
        if text == "BYE" {
            return Ok(Header::Bye);
        }
        if let Some(n) = text.strip_prefix("OK ") {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("not a FERRY/1 answer line: {}", shown(text.as_bytes())));
            }
            return n
                .parse()
                .map(Header::Ok)
                .map_err(|_| format!("not a FERRY/1 answer line: {}", shown(text.as_bytes())));
        }
        if let Some(rest) = text.strip_prefix("ERR ") {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            return Ok(Header::Err { code: code.to_owned(), message: message.to_owned() });
        }
        Err(format!("not a FERRY/1 answer line: {}", shown(text.as_bytes())))
    }

    /// Reads exactly `n` body bytes.
    pub fn body(&mut self, n: u64) -> Result<Vec<u8>, String> {
        let n = usize::try_from(n).map_err(|_| "body too large".to_owned())?;
        while self.buffer.len() < n {
            if !self.fill()? {
                return Err(format!("connection closed after {} of {n} body bytes", self.buffer.len()));
            }
        }
        Ok(self.buffer.drain(..n).collect())
    }

    /// Reads an `OK` answer and its body.
    pub fn ok_body(&mut self) -> Result<Vec<u8>, String> {
        match self.header()? {
            Header::Ok(n) => self.body(n),
            other => Err(format!("expected \"OK <n>\\n\" and a body; got {other}")),
        }
    }

    /// Reads an `ERR` answer with `code`; returns its message.
    pub fn expect_err(&mut self, code: &str) -> Result<String, String> {
        match self.header()? {
            Header::Err { code: got, message } if got == code => Ok(message),
            other => Err(format!("expected \"ERR {code} ...\\n\"; got {other}")),
        }
    }

    /// Checks that the server closes the connection (after what is
    /// buffered): end of stream or a reset, within [`WAIT`].
    pub fn expect_closed(&mut self) -> Check {
        let started = Instant::now();
        loop {
            if !self.buffer.is_empty() {
                return Err(format!(
                    "expected the connection to close, got {:?}",
                    String::from_utf8_lossy(&self.buffer)
                ));
            }
            match self.fill() {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) if e.starts_with("read:") => return Ok(()),
                Err(e) => return Err(format!("expected the connection to close after {:?}: {e}", started.elapsed())),
            }
        }
    }

    /// Reads until the server closes or `limit` bytes arrived; returns how
    /// many bytes came. For cases where the server is expected to give up.
    pub fn drain(&mut self, limit: u64) -> Result<u64, String> {
        let mut total = self.buffer.len() as u64;
        self.buffer.clear();
        while total < limit {
            match self.fill() {
                Ok(false) => break,
                Ok(true) => {
                    total += self.buffer.len() as u64;
                    self.buffer.clear();
                }
                Err(e) if e.starts_with("read:") => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// The socket, for options a case needs.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// Compares bytes without printing megabytes when they differ.
pub fn same_bytes(what: &str, got: &[u8], expected: &[u8]) -> Check {
    if got == expected {
        return Ok(());
    }
    let first = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
    Err(format!("{what}: {} bytes received, {} expected, first difference at byte {first}", got.len(), expected.len()))
}
