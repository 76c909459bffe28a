//! The binary on each of compio's drivers, black-box: io_uring where the
//! kernel allows it (its ring shows among the process's descriptors), the
//! polling driver when `FERRY_COMPIO_DRIVER=poll` forces it (as on a
//! machine that forbids io_uring), and no descriptor left behind by
//! hundreds of connections whose operations were cancelled in flight.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferry_compio::Driver;
use ferry_compio::pool::PIPES_PER_THREAD;

const BINARY: &str = env!("CARGO_BIN_EXE_ferry-compio");

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// What it logged before it listened.
    log: String,
}

impl Server {
    /// Serves `root` on the driver `driver` names (`None`: unset).
    fn start(root: &Path, driver: Option<&str>, options: &[&str]) -> Server {
        let mut command = Command::new(BINARY);
        command.args(["serve"]).arg(root).args(["--listen", "127.0.0.1:0"]).args(options);
        command.env_remove("RUST_LOG").env_remove(Driver::VARIABLE);
        if let Some(driver) = driver {
            command.env(Driver::VARIABLE, driver);
        }
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).spawn().expect("start");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the first line");
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("said {line:?}"));
        let addr = addr.parse().expect("an address");
        // The log's lines up to the one that names the driver, which comes
        // before `listening on`.
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut log = String::new();
        while !log.contains("driver=") {
            if stderr.read_line(&mut log).expect("the log") == 0 {
                break;
            }
        }
        // Keep draining the log so the server never blocks on it.
        thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Server { child, addr, log }
    }

    /// The targets of the server's open descriptors.
    fn descriptors(&self) -> Vec<String> {
        let dir = format!("/proc/{}/fd", self.child.id());
        std::fs::read_dir(dir)
            .expect("/proc/PID/fd")
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .map(|target| target.to_string_lossy().into_owned())
            .collect()
    }

    /// Sends SIGTERM and waits for the exit, at most `limit`.
    fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            // Polling a child's exit status: a bounded wait for a condition.
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn rings(&self) -> usize {
        self.descriptors().iter().filter(|target| target.contains("io_uring")).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The driver the `_on_io_uring` tests use: io_uring, or where this
/// machine does not allow it the polling driver, which they then check
/// again (and say so, rather than pass in silence).
fn io_uring_where_allowed() -> &'static str {
    if Driver::IoUring.runtime().is_ok() {
        "io_uring"
    } else {
        eprintln!("io_uring is not allowed here: checked on the polling driver only");
        "poll"
    }
}

/// A folder with a small file and a large one.
fn share() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("small.txt"), b"small\n").expect("small");
    let large: Vec<u8> = (0..6 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("large.bin"), large).expect("large");
    dir
}

/// Fetches both files with this binary's client on `driver`, into a new
/// folder, verified, and checks the bytes.
fn fetch(server: &Server, root: &Path, driver: Option<&str>) {
    let into = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(BINARY);
    command.args(["get", &server.addr.to_string(), "small.txt", "large.bin", "--verify", "-o"]).arg(into.path());
    command.env_remove(Driver::VARIABLE);
    if let Some(driver) = driver {
        command.env(Driver::VARIABLE, driver);
    }
    let status = command.stderr(Stdio::null()).status().expect("the client");
    assert!(status.success(), "the client on {driver:?} failed: {status}");
    for name in ["small.txt", "large.bin"] {
        let (got, want) = (std::fs::read(into.path().join(name)), std::fs::read(root.join(name)));
        assert!(got.expect("downloaded") == want.expect("shared"), "{name} differs");
    }
}

#[test]
fn auto_uses_io_uring_where_the_kernel_allows_it() {
    // What this kernel allows, asked the way compio asks.
    let allowed = Driver::IoUring.runtime().is_ok();
    let root = share();
    let server = Server::start(root.path(), None, &[]);
    let expected = if allowed { "driver=\"io_uring\"" } else { "driver=\"poll\"" };
    assert!(server.log.contains(expected), "expected {expected} in the log: {:?}", server.log);
    // One ring a thread, visible as the process's descriptors.
    assert_eq!(server.rings() > 0, allowed, "io_uring descriptors: {:?}", server.descriptors());
    fetch(&server, root.path(), None);
}

#[test]
fn the_polling_driver_serves_and_fetches() {
    let root = share();
    let server = Server::start(root.path(), Some("poll"), &[]);
    assert!(server.log.contains("driver=\"poll\""), "the log: {:?}", server.log);
    assert_eq!(server.rings(), 0, "no ring on the polling driver: {:?}", server.descriptors());
    fetch(&server, root.path(), Some("poll"));
    // The body through a pipe to standard output, which has no offsets.
    let piped = Command::new(BINARY)
        .args(["get", &server.addr.to_string(), "large.bin", "-o", "-"])
        .env(Driver::VARIABLE, "poll")
        .output()
        .expect("the client");
    assert!(piped.status.success());
    assert!(piped.stdout == std::fs::read(root.path().join("large.bin")).expect("large"), "stdout differs");
}

#[test]
fn an_unknown_driver_is_refused_by_name() {
    let output =
        Command::new(BINARY).args(["serve", ".", "--listen", "127.0.0.1:0"]).env(Driver::VARIABLE, "kqueue").output();
    let output = output.expect("run");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("FERRY_COMPIO_DRIVER=\"kqueue\"") && said.contains("io_uring, poll"), "said {said:?}");
}

/// Hundreds of connections whose operations are in flight when they end:
/// reads of a request line cut by the idle timeout, bodies that the client
/// stops reading (a splice cancelled at the window's deadline), bodies
/// whose client disconnects. Afterwards the server holds exactly the
/// descriptors it held before.
fn no_descriptor_outlives_its_connection(driver: &str) {
    let root = share();
    let server = Server::start(root.path(), Some(driver), &["--idle-timeout", "0.5"]);
    // Warm up first, so that what is opened once (the blocking pool's
    // wake-up, the digest cache) is in the baseline.
    fetch(&server, root.path(), Some(driver));
    let baseline = server.descriptors().len();

    let connect = || {
        let stream = TcpStream::connect(server.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        stream
    };
    let mut open = Vec::new();
    for n in 0..300 {
        let mut stream = connect();
        match n % 3 {
            // Says nothing: cut at the idle timeout while reading.
            0 => {}
            // Half a request line.
            1 => stream.write_all(b"GET lar").expect("write"),
            // A body it never reads: cut while the body is in flight.
            _ => stream.write_all(b"GET large.bin\n").expect("write"),
        }
        open.push(stream);
    }
    // Twenty more leave in the middle of a body.
    for _ in 0..20 {
        let mut stream = connect();
        stream.write_all(b"GET large.bin\n").expect("write");
        let mut some = [0; 4096];
        stream.read_exact(&mut some).expect("a first part of the body");
        drop(stream);
    }
    // Each of the 300 is closed by the server: read to the end.
    for (n, mut stream) in open.into_iter().enumerate() {
        let drained = std::io::copy(&mut stream, &mut std::io::sink());
        assert!(
            drained.is_ok() || drained.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "connection {n} was not closed by the server: {drained:?}"
        );
    }
    // The server lets go of a connection's descriptors as its operations
    // end; wait for that, boundedly.
    // (The baseline may hold the warm-up's own socket still, in its
    // close's brief drain: fewer afterwards is no leak.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = server.descriptors();
    while now.len() > baseline && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        now = server.descriptors();
    }
    assert!(
        now.len() <= baseline,
        "{driver}: {} descriptors after 320 connections, {baseline} before: {now:?}",
        now.len()
    );
}

#[test]
fn no_descriptor_outlives_its_connection_on_io_uring() {
    no_descriptor_outlives_its_connection(io_uring_where_allowed());
}

#[test]
fn no_descriptor_outlives_its_connection_on_poll() {
    no_descriptor_outlives_its_connection("poll");
}

/// SIGTERM with hundreds of idle connections, spread over the threads:
/// every connection's wait is woken at once, and the server exits within
/// its grace period (here, at once: nothing is in flight).
fn sigterm_ends_many_idle_connections(driver: &str) {
    let root = share();
    let mut server = Server::start(root.path(), Some(driver), &["--grace", "5"]);
    let idle: Vec<TcpStream> = (0..600)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).expect("connect");
            let mut greeting = [0; 15];
            stream.read_exact(&mut greeting).expect("the greeting");
            stream
        })
        .collect();
    let status = server.terminate(Duration::from_secs(4));
    assert!(status.is_some_and(|s| s.success()), "{driver}: no clean exit within 4 s of SIGTERM: {status:?}");
    drop(idle);
}

#[test]
fn sigterm_ends_many_idle_connections_on_io_uring() {
    sigterm_ends_many_idle_connections(io_uring_where_allowed());
}

#[test]
fn sigterm_ends_many_idle_connections_on_poll() {
    sigterm_ends_many_idle_connections("poll");
}

/// SIGTERM while a client has stopped reading a large body: the splice
/// into its socket waits in the kernel, and the server still exits when
/// the grace period is over.
fn sigterm_with_a_stalled_download(driver: &str) {
    let root = share();
    let mut server = Server::start(root.path(), Some(driver), &["--grace", "1"]);
    let mut stalled = TcpStream::connect(server.addr).expect("connect");
    let mut greeting = [0; 15];
    stalled.read_exact(&mut greeting).expect("the greeting");
    stalled.write_all(b"GET large.bin\n").expect("write");
    let mut first = [0; 1024];
    stalled.read_exact(&mut first).expect("the start of the answer");
    let status = server.terminate(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{driver}: no clean exit within 5 s of SIGTERM: {status:?}");
    drop(stalled);
}

#[test]
fn sigterm_with_a_stalled_download_on_io_uring() {
    sigterm_with_a_stalled_download(io_uring_where_allowed());
}

#[test]
fn sigterm_with_a_stalled_download_on_poll() {
    sigterm_with_a_stalled_download("poll");
}

/// More clients that stop reading a body than there are pipes in the
/// server's pools (`PIPES_PER_THREAD` a thread): each holds its pipe until
/// its idle timeout, and meanwhile other bodies are copied through a
/// buffer instead of waiting for one; a verified download still succeeds.
fn bodies_flow_while_every_pipe_is_held(driver: &str) {
    let root = share();
    let server = Server::start(root.path(), Some(driver), &["--idle-timeout", "20"]);
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let stalled: Vec<TcpStream> = (0..PIPES_PER_THREAD * threads + 40)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).expect("connect");
            stream.write_all(b"GET large.bin\n").expect("write");
            let mut first = [0; 1024];
            stream.read_exact(&mut first).expect("the start of the answer");
            stream
        })
        .collect();
    let started = Instant::now();
    fetch(&server, root.path(), Some(driver));
    assert!(started.elapsed() < Duration::from_secs(15), "{driver}: the download waited for a pipe");
    drop(stalled);
}

#[test]
fn bodies_flow_while_every_pipe_is_held_on_io_uring() {
    bodies_flow_while_every_pipe_is_held(io_uring_where_allowed());
}

#[test]
fn bodies_flow_while_every_pipe_is_held_on_poll() {
    bodies_flow_while_every_pipe_is_held("poll");
}
