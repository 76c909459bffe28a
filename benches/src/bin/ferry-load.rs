//! `ferry-load`: a load generator for FERRY/1, in the spirit of wrk, and
//! for HTTP/1.1 (`--http`), so that one program with the same threads and
//! the same cost per request drives ferry's servers and nginx alike.
//!
//! Opens CONNECTIONS connections, keeps DEPTH requests in flight on each
//! (pipelining), for DURATION, and reports requests/s, bytes/s, latency
//! percentiles (from a request's write to the last byte of its answer,
//! recorded in an HDR histogram) and errors. Bodies are parsed and dropped
//! as they arrive, through one reused buffer per connection, so the
//! generator costs little beside the server it drives. Errors are counted
//! by cause (the `ERR` code, or what failed on the connection), so a run
//! with errors says what they were.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// A connection: plain TCP, or TLS over it.
type Conn = Either<TcpStream, TlsStream<TcpStream>>;

/// Load a FERRY/1 server with GET requests and report throughput and latency.
#[derive(Debug, Parser)]
#[command(
    name = "ferry-load",
    version,
    after_help = "Example:\n  ferry-load 127.0.0.1:7878 four-k.bin -c 64 -d 10 --depth 32\n\n\
        Exit status: 0 when every request was answered OK, 1 otherwise."
)]
struct Args {
    /// The server, as HOST[:PORT] like ferry's clients take it (the port
    /// defaults to 7878).
    #[arg(value_parser = server)]
    addr: SocketAddr,
    /// The path to GET, as it goes on the wire (percent-encoded).
    path: String,
    /// Connections kept open at once.
    #[arg(short, long, default_value_t = 1)]
    connections: usize,
    /// Seconds to run (fractions allowed).
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    /// Instead of running for a duration, make exactly this many requests
    /// on each connection, then leave (e.g. `-c 8000 -n 1`: 8,000
    /// concurrent downloads).
    #[arg(short = 'n', long, value_name = "N")]
    requests: Option<u64>,
    /// Requests in flight on each connection (1: wait for each answer).
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Ask for a range: OFFSET or OFFSET:LENGTH.
    #[arg(long, value_name = "OFFSET[:LENGTH]")]
    range: Option<String>,
    /// Worker threads (default: one a core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Print the results as one JSON object instead of for people.
    #[arg(long)]
    json: bool,
    /// Speak HTTP/1.1 instead of FERRY/1: keep-alive `GET /PATH`,
    /// pipelined to --depth, bodies by `Content-Length` (nginx, for a
    /// comparison through the same client).
    #[arg(long, conflicts_with = "range")]
    http: bool,
    /// Over TLS 1.3 (ALPN ferry/1, or http/1.1 with --http), with the one
    /// cipher suite TLS_AES_256_GCM_SHA384 and X25519, and no session
    /// resumption: every connection a full handshake. The certificate is
    /// not checked: a load generator on loopback, not a client.
    #[arg(long)]
    tls: bool,
    /// Make each request on a new connection (connect, handshake, one
    /// request, close), for the duration: connections per second.
    #[arg(long, conflicts_with_all = ["requests", "depth"])]
    reconnect: bool,
}

/// The one cipher suite and key exchange a TLS run uses (nginx is
/// configured to the same).
pub const CIPHER_SUITE: &str = "TLS_AES_256_GCM_SHA384";

/// The TLS configuration of every connection of a run: no check of the
/// certificate, no resumption.
#[allow(deprecated)] // rustls' ring provider, as ferry's own
fn tls_config(protocol: Protocol) -> Arc<rustls::ClientConfig> {
    use rustls::crypto::ring;
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![ring::cipher_suite::TLS13_AES_256_GCM_SHA384],
        kx_groups: vec![ring::kx_group::X25519],
        ..ring::default_provider()
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 with ring")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![match protocol {
        Protocol::Ferry => b"ferry/1".to_vec(),
        Protocol::Http => b"http/1.1".to_vec(),
    }];
    Arc::new(config)
}

/// Takes any certificate (the signature over the handshake is still
/// checked, as a client's would be, so the work is the same).
#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        algorithms().supported_schemes()
    }
}

#[allow(deprecated)]
fn algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Where and how every connection of a run connects.
#[derive(Clone)]
struct Dial {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
}

impl Dial {
    async fn connect(&self) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Either::Left(stream)),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
                Ok(Either::Right(tls.connect(name, stream).await?))
            }
        }
    }
}

/// The protocol a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Ferry,
    Http,
}

impl Protocol {
    /// Where an answer's header ends.
    fn header_end(self) -> &'static [u8] {
        match self {
            Protocol::Ferry => b"\n",
            Protocol::Http => b"\r\n\r\n",
        }
    }
}

/// What an answer's header says.
enum Header {
    /// A body of this many bytes follows.
    Ok(u64),
    /// A refusal (its cause), and the bytes of its body to skip.
    Refused(String, u64),
}

/// Reads an answer's header (without its end).
fn header(protocol: Protocol, header: &[u8]) -> Result<Header, String> {
    let text = String::from_utf8_lossy(header);
    match protocol {
        Protocol::Ferry => {
            if let Some(len) = text.strip_prefix("OK ").and_then(|n| n.parse().ok()) {
                Ok(Header::Ok(len))
            } else if text.starts_with("ERR ") {
                let code = text.split(' ').nth(1).unwrap_or_default();
                Ok(Header::Refused(format!("ERR {code}"), 0))
            } else {
                Err(format!("not a FERRY/1 answer: {text:?}"))
            }
        }
        Protocol::Http => {
            let mut lines = text.split("\r\n");
            let status = lines.next().unwrap_or_default();
            let code: u16 = match status.split(' ').collect::<Vec<_>>()[..] {
                [version, code, ..] if version.starts_with("HTTP/1.") => code.parse().map_err(|_| status.to_owned())?,
                _ => return Err(format!("not an HTTP/1.1 status line: {status:?}")),
            };
            let len = lines
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse().ok())
                .ok_or_else(|| format!("HTTP {code} without Content-Length"))?;
            if (200..300).contains(&code) {
                Ok(Header::Ok(len))
            } else {
                Ok(Header::Refused(format!("HTTP {code}"), len))
            }
        }
    }
}

/// What one connection saw.
struct Tally {
    requests: u64,
    bytes: u64,
    refused: u64,
    failed: u64,
    /// Each error's cause, and how often it happened.
    causes: BTreeMap<String, u64>,
    latency: Histogram<u64>,
}

impl Tally {
    fn new() -> Tally {
        // Microseconds, up to an hour, 3 significant figures.
        let latency = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Tally { requests: 0, bytes: 0, refused: 0, failed: 0, causes: BTreeMap::new(), latency }
    }

    /// Counts a connection that failed, and why.
    fn fail(&mut self, cause: impl Into<String>) {
        self.failed += 1;
        *self.causes.entry(cause.into()).or_default() += 1;
    }

    /// Counts an `ERR` answer, by its code.
    fn refuse(&mut self, header: &[u8]) {
        let code = header.split(|&b| b == b' ').nth(1).unwrap_or_default();
        self.refuse_because(format!("ERR {}", String::from_utf8_lossy(code)));
    }

    /// Counts a refusal (an `ERR` code, an HTTP status), by its cause.
    fn refuse_because(&mut self, cause: String) {
        self.refused += 1;
        *self.causes.entry(cause).or_default() += 1;
    }

    fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.refused += other.refused;
        self.failed += other.failed;
        for (cause, count) in &other.causes {
            *self.causes.entry(cause.clone()).or_default() += count;
        }
        let _ = self.latency.add(&other.latency);
    }
}

/// `HOST[:PORT]` (a name, an IPv4 or a bracketed IPv6 address), resolved
/// to its first address: the load goes to one address, as it should.
fn server(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let with_port = match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() && !host.ends_with(':') => {
            text.to_owned()
        }
        _ if text.parse::<std::net::Ipv6Addr>().is_ok() => format!("[{text}]:7878"),
        _ => format!("{text}:7878"),
    };
    let mut resolved = with_port.to_socket_addrs().map_err(|e| format!("{text}: {e}"))?;
    resolved.next().ok_or_else(|| format!("{text}: the name resolved to no address"))
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    if args.connections == 0 || args.depth == 0 || args.duration.is_nan() || args.duration <= 0.0 {
        bail!("--connections, --depth and --duration must be more than 0");
    }
    let protocol = if args.http { Protocol::Http } else { Protocol::Ferry };
    let mut request = match protocol {
        Protocol::Ferry => format!("GET {}", args.path),
        Protocol::Http => format!("GET /{} HTTP/1.1\r\nHost: {}\r\n\r\n", args.path.trim_start_matches('/'), args.addr),
    };
    if let Some(range) = &args.range {
        let (offset, length) = range.split_once(':').map_or((range.as_str(), None), |(o, l)| (o, Some(l)));
        offset.parse::<u64>().with_context(|| format!("--range offset {offset:?}"))?;
        request.push_str(&format!(" {offset}"));
        if let Some(length) = length {
            length.parse::<u64>().with_context(|| format!("--range length {length:?}"))?;
            request.push_str(&format!(" {length}"));
        }
    }
    if protocol == Protocol::Ferry {
        request.push('\n');
    }
    let request: Arc<[u8]> = request.into_bytes().into();

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.enable_all().build().context("cannot start the runtime")?;
    // With a request count, the duration is only a bound on a hung run.
    let duration =
        if args.requests.is_some() { Duration::from_secs(3600) } else { Duration::from_secs_f64(args.duration) };
    let dial = Dial { addr: args.addr, tls: args.tls.then(|| TlsConnector::from(tls_config(protocol))) };
    let (total, elapsed, greeting) = runtime.block_on(async {
        let greeting = greeting_of(&dial, &request, protocol).await?;
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..args.connections {
            let (dial, request) = (dial.clone(), Arc::clone(&request));
            let (depth, count) = (args.depth, args.requests);
            if args.reconnect {
                // A request a connection, one connection after another.
                tasks.spawn(async move {
                    let mut tally = Tally::new();
                    while Instant::now() < deadline && tally.failed == 0 {
                        tally.add(&drive(&dial, Arc::clone(&request), protocol, 1, deadline, Some(1)).await);
                    }
                    tally
                });
            } else {
                tasks.spawn(async move { drive(&dial, request, protocol, depth, deadline, count).await });
            }
        }
        let mut total = Tally::new();
        while let Some(tally) = tasks.join_next().await {
            total.add(&tally.context("a connection task panicked")?);
        }
        anyhow::Ok((total, started.elapsed(), greeting))
    })?;
    print(&args, &total, elapsed, &greeting);
    let clean = total.refused == 0 && total.failed == 0;
    Ok(if clean { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}

/// Connects once to learn the server's implementation (and that it is
/// up), and makes `request` once: a load of refusals measures nothing, so
/// a refused request ends the run before it starts, saying why.
async fn greeting_of(dial: &Dial, request: &[u8], protocol: Protocol) -> anyhow::Result<String> {
    let addr = dial.addr;
    let mut stream = dial.connect().await.with_context(|| format!("cannot connect to {addr}"))?;
    let text = match protocol {
        Protocol::Ferry => line_of(&mut stream).await?,
        Protocol::Http => "HTTP/1.1".to_owned(),
    };
    if protocol == Protocol::Ferry && !text.starts_with("FERRY/1 ") {
        bail!("{addr} is not a FERRY/1 server (it said {text:?})");
    }
    stream.write_all(request).await.with_context(|| format!("{addr}: cannot send a request"))?;
    let answer = line_of(&mut stream).await?;
    let answered = match protocol {
        Protocol::Ferry => answer.starts_with("OK "),
        Protocol::Http => answer.split(' ').nth(1).is_some_and(|code| code.starts_with('2')),
    };
    if !answered {
        let asked = String::from_utf8_lossy(request.trim_ascii_end()).into_owned();
        bail!("{addr} answers {asked:?} with {answer:?}: every request would be refused; nothing to measure");
    }
    Ok(text)
}

/// One line from `stream`, a byte at a time (so nothing after it is read),
/// at most 256 bytes.
async fn line_of(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> anyhow::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 256 {
        if stream.read(&mut byte).await? == 0 || byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Where a connection is in the answer stream.
enum State {
    /// Reading a header line; the bytes so far.
    Header(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// Skipping this many bytes of a refusal's body (HTTP's error pages).
    Skip(u64),
}

/// One connection: keeps `depth` requests in flight until `deadline` (or
/// until `count` requests were sent), then reads the answers still due and
/// leaves.
async fn drive(
    dial: &Dial,
    request: Arc<[u8]>,
    protocol: Protocol,
    depth: usize,
    deadline: Instant,
    count: Option<u64>,
) -> Tally {
    let mut tally = Tally::new();
    let mut stream = match dial.connect().await {
        Ok(stream) => stream,
        Err(error) => {
            tally.fail(format!("connect: {error}"));
            return tally;
        }
    };
    // As ferry's clients: the kernel copies into it, so it should stay in cache.
    let mut buffer = vec![0u8; 64 * 1024];
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(depth);
    let mut state = State::Header(Vec::new());
    // HTTP has no greeting.
    let mut greeted = protocol == Protocol::Http;
    let mut batch = Vec::with_capacity(request.len() * depth);
    let mut sent = 0u64;
    loop {
        // Top up the pipeline while there is time (and requests to make).
        let more = |sent: u64| count.is_none_or(|count| sent < count);
        if greeted && Instant::now() < deadline && in_flight.len() < depth && more(sent) {
            batch.clear();
            let now = Instant::now();
            while in_flight.len() < depth && more(sent) {
                batch.extend_from_slice(&request);
                in_flight.push_back(now);
                sent += 1;
            }
            if let Err(error) = stream.write_all(&batch).await {
                tally.fail(format!("write: {error}"));
                return tally;
            }
        }
        if greeted && in_flight.is_empty() {
            return tally;
        }
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer)).await;
        let n = match read {
            Ok(Ok(0)) => {
                tally.fail("closed by the server before an answer ended");
                return tally;
            }
            Ok(Ok(n)) => n,
            Ok(Err(error)) => {
                tally.fail(format!("read: {error}"));
                return tally;
            }
            Err(_) => {
                tally.fail("read: nothing for 30 s");
                return tally;
            }
        };
        let mut chunk = &buffer[..n];
        while !chunk.is_empty() {
            match &mut state {
                State::Body(left) | State::Skip(left) => {
                    let take = (*left).min(chunk.len() as u64);
                    *left -= take;
                    chunk = &chunk[take as usize..];
                    if let State::Body(_) = state {
                        tally.bytes += take;
                    }
                    if let State::Body(0) = state {
                        finish(&mut tally, &mut in_flight);
                        state = State::Header(Vec::new());
                    } else if let State::Skip(0) = state {
                        state = State::Header(Vec::new());
                    }
                }
                State::Header(line) => {
                    // The end may straddle two reads: look from a little
                    // before what this read added.
                    let end = protocol.header_end();
                    let from = line.len().saturating_sub(end.len() - 1);
                    line.extend_from_slice(chunk);
                    let Some(at) = line[from..].windows(end.len()).position(|w| w == end).map(|at| from + at) else {
                        break;
                    };
                    let rest = line.len() - (at + end.len());
                    chunk = &chunk[chunk.len() - rest..];
                    line.truncate(at);
                    if !greeted {
                        // At its limit a server says ERR BUSY instead of
                        // the greeting, and closes: a refusal, not a fault.
                        if line.starts_with(b"ERR BUSY") {
                            tally.refuse(line);
                            return tally;
                        }
                        greeted = true;
                        line.clear();
                        continue;
                    }
                    let answer = std::mem::take(line);
                    match header(protocol, &answer) {
                        Ok(Header::Ok(0)) => finish(&mut tally, &mut in_flight),
                        Ok(Header::Ok(len)) => state = State::Body(len),
                        Ok(Header::Refused(cause, skip)) => {
                            tally.refuse_because(cause);
                            in_flight.pop_front();
                            if skip > 0 {
                                state = State::Skip(skip);
                            }
                        }
                        Err(why) => {
                            tally.fail(why);
                            return tally;
                        }
                    }
                }
            }
        }
    }
}

/// This process's CPU time so far (user and system, every thread), from
/// /proc/self/stat in the kernel's fixed 100 ticks a second: what the load
/// generator itself cost, so that a comparison of two servers can show it
/// was the same for both protocols.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Records an answer that arrived whole.
fn finish(tally: &mut Tally, in_flight: &mut VecDeque<Instant>) {
    if let Some(sent) = in_flight.pop_front() {
        tally.requests += 1;
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = tally.latency.record(micros);
    }
}

fn print(args: &Args, total: &Tally, elapsed: Duration, greeting: &str) {
    let secs = elapsed.as_secs_f64();
    let rps = total.requests as f64 / secs;
    let bps = total.bytes as f64 / secs;
    let p = |q: f64| total.latency.value_at_quantile(q);
    if args.json {
        let json = serde_json::json!({
            "server": greeting,
            "connections": args.connections,
            "depth": args.depth,
            "seconds": secs,
            "requests": total.requests,
            "bytes": total.bytes,
            "requests_per_sec": rps,
            "bytes_per_sec": bps,
            "p50_us": p(0.5),
            "p90_us": p(0.9),
            "p99_us": p(0.99),
            "p999_us": p(0.999),
            "max_us": total.latency.max(),
            "refused": total.refused,
            "failed": total.failed,
            "causes": total.causes,
            "protocol": if args.http { "HTTP/1.1" } else { "FERRY/1" },
            "tls": args.tls.then_some(CIPHER_SUITE),
            "reconnect": args.reconnect,
            "client_cpu_s": own_cpu_seconds(),
        });
        println!("{json}");
        return;
    }
    println!(
        "ferry-load: GET {} from {} ({greeting}), {} connection{}, depth {}, {secs:.1} s",
        args.path,
        args.addr,
        args.connections,
        if args.connections == 1 { "" } else { "s" },
        args.depth
    );
    println!("  requests  {:>12}  {:>12.0} /s", total.requests, rps);
    println!("  bytes     {:>12}  {:>12.1} MB/s", total.bytes, bps / 1e6);
    println!(
        "  latency   p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs  max {} µs",
        p(0.5),
        p(0.9),
        p(0.99),
        p(0.999),
        total.latency.max()
    );
    println!("  errors    {} refused (ERR), {} failed (connection or protocol)", total.refused, total.failed);
    for (cause, count) in &total.causes {
        println!("  {count:>10} × {cause}");
    }
}
