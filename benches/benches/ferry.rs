//! Criterion benches: the same work against every runtime, side by side.
//!
//! The servers are the real release binaries, started once over a folder
//! of fixed files before any timing starts. Groups:
//!
//! - `download`: one connection, one file per iteration, each runtime's own
//!   client code (its `Connection`) against its own server;
//! - `server`: one fixed client (std) against every server, so that the
//!   difference between columns is the server's alone;
//! - `concurrent`: 64 connections each fetching a 64 KiB file at once;
//! - `pipelined`: 1,000 requests of 4 KiB on one connection, depth 1 and 32;
//! - `proto`: the sans-IO parser and encoder alone.
//!
//! `cargo bench -p ferry-benches` runs them all; criterion's report is in
//! `target/criterion/report/index.html`.

use std::hint::black_box;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ferry_app::link::{Link, Save};
use ferry_conformance::implementation::{Implementation, Launch, WORKSPACE};
use ferry_conformance::process::Server;
use ferry_engine::{Answer, Parsed, Request, parse_request};

/// How long any read in a bench may wait before it is a failure.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The files every server shares.
const FILES: [(&str, u64); 6] = [
    ("four-k.bin", 4 << 10),
    ("sixty-four-k.bin", 64 << 10),
    ("one-m.bin", 1 << 20),
    ("sixty-four-m.bin", 64 << 20),
    ("one-g.bin", 1 << 30),
    ("empty", 0),
];

/// The shared folder and one running server per implementation.
struct Bed {
    _root: tempfile::TempDir,
    servers: Vec<(String, Server)>,
}

impl Bed {
    fn new() -> Bed {
        let root = tempfile::Builder::new().prefix("ferry-bench-").tempdir().expect("temp dir");
        write_files(root.path()).expect("bench files");
        let servers = WORKSPACE
            .iter()
            .map(|(name, package)| {
                let implementation = Implementation::workspace(name, package).expect("builds");
                let Some(launch @ Launch::Ferry(_)) = &implementation.server else { unreachable!() };
                (name.to_string(), Server::start(launch, root.path(), &[]).expect("server starts"))
            })
            .collect();
        Bed { _root: root, servers }
    }
}

/// Writes the files: a random MiB repeated (the page cache holds them
/// after the first read, and the content does not matter to a copy).
fn write_files(root: &Path) -> io::Result<()> {
    let mut block = vec![0u8; 1 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for byte in &mut block {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    for (name, size) in FILES {
        let mut file = io::BufWriter::new(std::fs::File::create(root.join(name))?);
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n])?;
            left -= n as u64;
        }
        file.flush()?;
    }
    Ok(())
}

/// One file over one connection, with each runtime's own `Connection`,
/// through the link traits every driver implements.
mod clients {
    use ferry_app::dial::Remote;
    use ferry_app::link::AsyncSave;
    use ferry_engine::client::ClientConfig;

    use super::*;

    /// How each runtime's `Connection::connect` is told where to go.
    pub(crate) fn config(addr: SocketAddr) -> Remote {
        Remote::plain(ClientConfig { addr: addr.to_string(), timeout: TIMEOUT, max_size: None, token: None })
    }

    pub(crate) fn greeted<L: Save>(mut connection: L) -> L {
        connection.read_line(std::time::Instant::now() + TIMEOUT, ferry_engine::parse_greeting).expect("greeting");
        connection
    }

    pub(crate) fn get<L: Save>(connection: &mut L, request: &[u8]) -> u64 {
        connection.write_all(request.to_vec(), TIMEOUT).expect("request");
        answer(connection)
    }

    pub(crate) fn answer<L: Save>(connection: &mut L) -> u64 {
        let deadline = std::time::Instant::now() + TIMEOUT;
        let Answer::Ok { len } = connection.read_line(deadline, ferry_engine::parse_answer).expect("answer") else {
            panic!("not OK")
        };
        connection.read_body(len, TIMEOUT, |_: &[u8]| {}).expect("body");
        len
    }

    pub(crate) async fn greeted_async<L: AsyncSave>(mut connection: L) -> L {
        let deadline = std::time::Instant::now() + TIMEOUT;
        connection.read_line(deadline, ferry_engine::parse_greeting).await.expect("greeting");
        connection
    }

    pub(crate) async fn get_async<L: AsyncSave>(connection: &mut L, request: &[u8]) -> u64 {
        // The write owns its buffer (compio hands it to the kernel).
        connection.write_all(request.to_vec(), TIMEOUT).await.expect("request");
        let deadline = std::time::Instant::now() + TIMEOUT;
        let Answer::Ok { len } = connection.read_line(deadline, ferry_engine::parse_answer).await.expect("answer")
        else {
            panic!("not OK")
        };
        connection.read_body(len, TIMEOUT, |_: &[u8]| {}).await.expect("body");
        len
    }

    pub(crate) fn std_connect(addr: SocketAddr) -> ferry_std::connection::Connection {
        greeted(ferry_std::connection::Connection::connect(&config(addr)).expect("connect"))
    }

    pub(crate) async fn tokio_connect(addr: SocketAddr) -> ferry_tokio::connection::Connection {
        greeted_async(ferry_tokio::connection::Connection::connect(&config(addr)).await.expect("connect")).await
    }

    pub(crate) async fn smol_connect(addr: SocketAddr) -> ferry_smol::connection::Connection {
        greeted_async(ferry_smol::connection::Connection::connect(&config(addr)).await.expect("connect")).await
    }

    pub(crate) async fn async_std_connect(addr: SocketAddr) -> ferry_async_std::connection::Connection {
        greeted_async(ferry_async_std::connection::Connection::connect(&config(addr)).await.expect("connect")).await
    }

    pub(crate) async fn compio_connect(addr: SocketAddr) -> ferry_compio::connection::Connection {
        greeted_async(ferry_compio::connection::Connection::connect(&config(addr)).await.expect("connect")).await
    }
}

fn request(name: &str) -> Vec<u8> {
    format!("GET {name}\n").into_bytes()
}

/// Each runtime's client against its own server.
fn download(c: &mut Criterion, bed: &Bed) {
    for (group_name, sizes) in [("download", &FILES[..3]), ("download-large", &FILES[3..5])] {
        let mut group = c.benchmark_group(group_name);
        if group_name == "download-large" {
            group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
        } else {
            group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
        }
        for &(name, size) in sizes {
            group.throughput(Throughput::Bytes(size));
            let line = request(name);
            for (runtime, server) in &bed.servers {
                let addr = server.addr;
                let id = BenchmarkId::new(runtime.as_str(), name);
                match runtime.as_str() {
                    "std" => {
                        let mut connection = clients::std_connect(addr);
                        group.bench_function(id, |b| b.iter(|| clients::get(&mut connection, &line)));
                    }
                    "tokio" => {
                        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
                        let mut connection = rt.block_on(clients::tokio_connect(addr));
                        group
                            .bench_function(id, |b| b.iter(|| rt.block_on(clients::get_async(&mut connection, &line))));
                    }
                    "smol" => {
                        let mut connection = smol::block_on(clients::smol_connect(addr));
                        group.bench_function(id, |b| {
                            b.iter(|| smol::block_on(clients::get_async(&mut connection, &line)))
                        });
                    }
                    "async-std" => {
                        let mut connection = async_std::task::block_on(clients::async_std_connect(addr));
                        group.bench_function(id, |b| {
                            b.iter(|| async_std::task::block_on(clients::get_async(&mut connection, &line)))
                        });
                    }
                    "compio" => {
                        let rt = compio::runtime::Runtime::new().expect("rt");
                        let mut connection = rt.block_on(clients::compio_connect(addr));
                        group
                            .bench_function(id, |b| b.iter(|| rt.block_on(clients::get_async(&mut connection, &line))));
                    }
                    other => unreachable!("no bench client for {other}"),
                }
            }
        }
        group.finish();
    }
}

/// One fixed client (std) against every server: the server's cost alone.
fn server(c: &mut Criterion, bed: &Bed) {
    let mut group = c.benchmark_group("server");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (name, size) in [FILES[0], FILES[2], FILES[3]] {
        group.throughput(Throughput::Bytes(size));
        let line = request(name);
        for (runtime, server) in &bed.servers {
            let mut connection = clients::std_connect(server.addr);
            group.bench_function(BenchmarkId::new(runtime.as_str(), name), |b| {
                b.iter(|| clients::get(&mut connection, &line))
            });
        }
    }
    group.finish();
}

/// 64 connections fetching a 64 KiB file each, all at once, driven by one
/// fixed tokio client so the servers are compared.
fn concurrent(c: &mut Criterion, bed: &Bed) {
    const CONNECTIONS: usize = 64;
    let mut group = c.benchmark_group("concurrent");
    group.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let (name, size) = FILES[1];
    group.throughput(Throughput::Bytes(size * CONNECTIONS as u64));
    let line: Arc<[u8]> = request(name).into();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    for (runtime, server) in &bed.servers {
        let connections: Vec<_> =
            rt.block_on(async { futures_join(CONNECTIONS, |_| clients::tokio_connect(server.addr)).await });
        let mut slots: Vec<Option<ferry_tokio::connection::Connection>> = connections.into_iter().map(Some).collect();
        group.bench_function(BenchmarkId::new(runtime.as_str(), format!("{CONNECTIONS}x{name}")), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut tasks = tokio::task::JoinSet::new();
                    for slot in &mut slots {
                        let mut connection = slot.take().expect("connection");
                        let line = Arc::clone(&line);
                        tasks.spawn(async move {
                            clients::get_async(&mut connection, &line).await;
                            connection
                        });
                    }
                    let mut back = Vec::with_capacity(CONNECTIONS);
                    while let Some(connection) = tasks.join_next().await {
                        back.push(connection.expect("task"));
                    }
                    for (slot, connection) in slots.iter_mut().zip(back) {
                        *slot = Some(connection);
                    }
                })
            })
        });
    }
    group.finish();
}

/// Runs `make(i)` for `0..n` concurrently and collects the results.
async fn futures_join<T: Send + 'static, F>(n: usize, make: impl Fn(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(make(i));
    }
    let mut out = Vec::with_capacity(n);
    while let Some(value) = tasks.join_next().await {
        out.push(value.expect("task"));
    }
    out
}

/// 1,000 requests for 4 KiB on one connection, waiting for each answer
/// (depth 1) or keeping 32 in flight.
fn pipelined(c: &mut Criterion, bed: &Bed) {
    const REQUESTS: usize = 1000;
    let mut group = c.benchmark_group("pipelined");
    group.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(REQUESTS as u64));
    let line = request(FILES[0].0);
    for depth in [1usize, 32] {
        let window: Vec<u8> = line.repeat(depth);
        for (runtime, server) in &bed.servers {
            let mut connection = clients::std_connect(server.addr);
            group.bench_function(BenchmarkId::new(runtime.as_str(), format!("depth-{depth}")), |b| {
                b.iter(|| {
                    // Requests go out in windows of `depth`; the answers to
                    // one window are read before the next is sent.
                    for _ in 0..REQUESTS / depth {
                        connection.write_all(window.clone(), TIMEOUT).expect("requests");
                        for _ in 0..depth {
                            black_box(clients::answer(&mut connection));
                        }
                    }
                })
            });
        }
    }
    group.finish();
}

/// The sans-IO core alone: parsing pipelined request lines and encoding
/// answer headers.
fn proto(c: &mut Criterion) {
    let mut group = c.benchmark_group("proto");
    let lines: Vec<u8> = (0..1000)
        .flat_map(|i| format!("GET docs/reports/q{i}%20summary.pdf {} 4096\n", i * 4096).into_bytes())
        .collect();
    group.throughput(Throughput::Elements(1000));
    group.bench_function("parse-1000-requests", |b| {
        b.iter(|| {
            let mut buf = black_box(&lines[..]);
            let mut parsed = 0;
            while let Parsed::Complete { value, consumed } = parse_request(buf) {
                black_box(value.expect("valid"));
                buf = &buf[consumed..];
                parsed += 1;
            }
            assert_eq!(parsed, 1000);
        })
    });
    group.bench_function("encode-1000-headers", |b| {
        let mut out = Vec::with_capacity(16 * 1000);
        b.iter(|| {
            out.clear();
            for i in 0..1000u64 {
                Answer::Ok { len: black_box(i * 4096) }.encode(&mut out);
            }
            black_box(&out);
        })
    });
    group.throughput(Throughput::Bytes(lines.len() as u64));
    group.bench_function("parse-bytes", |b| {
        b.iter(|| {
            let mut buf = black_box(&lines[..]);
            while let Parsed::Complete { consumed, .. } = parse_request(buf) {
                buf = &buf[consumed..];
            }
        })
    });
    let request = Request::Quit;
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode-request", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            black_box(&request).encode(&mut out);
        })
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    proto(c);
    let bed = Bed::new();
    download(c, &bed);
    server(c, &bed);
    concurrent(c, &bed);
    pipelined(c, &bed);
}

criterion_group!(benches, all);
criterion_main!(benches);
