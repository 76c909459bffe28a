//! What ferry's own binaries do for a user, beyond FERRY/1 (which the
//! conformance cases hold every implementation to): the server's access
//! log, and the client's words when a download is cut. Every workspace
//! implementation, on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_conformance::implementation::{ClientLaunch, Implementation, Launch, WORKSPACE};

/// Every workspace implementation's binary.
fn binaries() -> Vec<(&'static str, PathBuf)> {
    WORKSPACE
        .iter()
        .map(|(name, package)| {
            let implementation = Implementation::workspace(name, package).unwrap_or_else(|e| panic!("{e}"));
            match (implementation.server, implementation.client) {
                (Some(Launch::Ferry(binary)), Some(ClientLaunch::Ferry(_))) => (*name, binary),
                _ => panic!("{name}: a workspace implementation is one binary"),
            }
        })
        .collect()
}

/// A server sharing `root`, its log going to `log`.
struct Served {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Served {
    fn start(binary: &Path, root: &Path, log: PathBuf) -> Served {
        Served::start_with(binary, root, log, &[])
    }

    /// [`Served::start`] with `options`; over TLS, its identity kept in a
    /// folder of the test's (beside the log).
    fn start_with(binary: &Path, root: &Path, log: PathBuf, options: &[&str]) -> Served {
        let config = log.with_extension("config");
        let mut child = Command::new(binary)
            .arg("serve")
            .arg(root)
            .args(["--listen", "127.0.0.1:0"])
            .args(options)
            .env("XDG_CONFIG_HOME", &config)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the ready line");
        let addr = line.trim().strip_prefix("listening on ").expect("listening on ADDR").to_owned();
        Served { child, addr, log }
    }

    /// The first log line holding `needle`, waiting for it until `limit`.
    fn log_line(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = std::fs::read_to_string(&self.log).expect("the log");
            if let Some(line) = log.lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            assert!(Instant::now() < deadline, "no log line with {needle:?} in {limit:?}; the log:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `key=` in a log line.
fn field(line: &str, key: &str) -> u64 {
    let at = line.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key}= in {line:?}"));
    line[at + key.len() + 1..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a number")
}

#[test]
fn the_access_log_counts_the_bytes_that_went_out_not_the_ones_promised() {
    const SIZE: u64 = 64 << 20;
    let root = tempfile::tempdir().expect("root");
    std::fs::File::create(root.path().join("big")).and_then(|file| file.set_len(SIZE)).expect("a 64 MiB file");
    for (name, binary) in binaries() {
        let log = root.path().join(format!("{name}.log"));
        let server = Served::start(&binary, root.path(), log);
        let mut client = TcpStream::connect(&server.addr).expect("connect");
        let mut reader = BufReader::new(client.try_clone().expect("clone"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("greeting");
        client.write_all(b"GET big\n").expect("request");
        line.clear();
        reader.read_line(&mut line).expect("header");
        assert_eq!(line, format!("OK {SIZE}\n"), "{name}");
        // A client that takes 1 MiB of the body and leaves.
        let mut taken = vec![0; 1 << 20];
        reader.read_exact(&mut taken).expect("1 MiB of the body");
        drop((reader, client));
        let logged = server.log_line("request=\"GET big\"", Duration::from_secs(20));
        let bytes = field(&logged, "bytes");
        assert!(logged.contains("error="), "{name}: a cut body is logged with its error: {logged}");
        assert!(
            (1 << 20..SIZE).contains(&bytes),
            "{name}: {bytes} bytes logged for a body cut after the client took 1 MiB of {SIZE}: {logged}"
        );
    }
}

/// A server of one answer: greets, reads a request line, answers
/// `OK {promised}` and sends `sent` bytes of it; then closes, or with
/// `stall` keeps the connection open and silent until the client leaves.
fn one_answer(promised: u64, sent: usize, stall: bool) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.write_all(b"FERRY/1 scripted\n").expect("greeting");
        let mut line = String::new();
        BufReader::new(stream.try_clone().expect("clone")).read_line(&mut line).expect("request");
        stream.write_all(format!("OK {promised}\n").as_bytes()).expect("header");
        stream.write_all(&vec![7; sent]).expect("body");
        if stall {
            // Until the client is gone: its read end closes the socket.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
        }
    });
    (addr, thread)
}

/// Runs `binary` with `args` in `dir`, and returns its exit code and stderr.
fn run(binary: &Path, dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output =
        Command::new(binary).current_dir(dir).args(args).stdin(Stdio::null()).output().expect("run the client");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_cut_download_says_what_is_kept_and_the_command_that_resumes_it() {
    for (name, binary) in binaries() {
        let dir = tempfile::tempdir().expect("dir");
        let (addr, server) = one_answer(1_000_000, 300_000, false);
        let (code, stderr) = run(&binary, dir.path(), &["get", &addr, "f.bin", "-o", "got.bin"]);
        server.join().expect("the scripted server");
        assert_eq!(code, Some(1), "{name}: {stderr}");
        let part = std::fs::metadata(dir.path().join("got.bin.part")).expect("the .part is kept").len();
        assert_eq!(part, 300_000, "{name}");
        let binary_name = binary.file_name().expect("name").to_string_lossy().into_owned();
        let resume = format!("{binary_name} get {addr} f.bin -o got.bin --continue");
        assert!(
            stderr.contains("kept in got.bin.part") && stderr.contains(&format!("resume with: {resume}")),
            "{name}: no word of what is kept and how to resume: {stderr}"
        );
    }
}

#[test]
fn ctrl_c_mid_download_says_what_is_kept_and_exits_130() {
    for (name, binary) in binaries() {
        let dir = tempfile::tempdir().expect("dir");
        // More than the 1 MiB a spooling client holds before it writes.
        let (addr, server) = one_answer(8 << 20, 3 << 20, true);
        let client = Command::new(&binary)
            .current_dir(dir.path())
            .args(["get", &addr, "f.bin", "-o", "got.bin"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("client");
        // Interrupted once the first bytes are on disk.
        let part = dir.path().join("got.bin.part");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&part).map_or(0, |m| m.len()) < 1 << 20 {
            assert!(Instant::now() < deadline, "{name}: the first bytes never reached the .part");
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = rustix::process::Pid::from_raw(client.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
        let output = client.wait_with_output().expect("the client ends");
        server.join().expect("the scripted server");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(130), "{name}: {stderr}");
        assert!(stderr.contains("kept in got.bin.part") && stderr.contains("--continue"), "{name}: {stderr}");
    }
}

#[test]
fn continue_on_a_whole_file_is_success_and_a_typo_gets_a_suggestion() {
    let root = tempfile::tempdir().expect("root");
    std::fs::write(root.path().join("report.pdf"), b"the whole report").expect("file");
    let (_, server_binary) = &binaries()[0];
    let server = Served::start(server_binary, root.path(), root.path().join("server.log"));
    for (name, binary) in binaries() {
        let dir = tempfile::tempdir().expect("dir");
        let (code, stderr) = run(&binary, dir.path(), &["get", &server.addr, "report.pdf", "-o", "r.pdf"]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        let (code, stderr) =
            run(&binary, dir.path(), &["get", &server.addr, "report.pdf", "-o", "r.pdf", "--continue"]);
        assert_eq!(code, Some(0), "{name}: --continue on a whole file: {stderr}");
        assert!(stderr.contains("already complete") && stderr.contains("verified BLAKE3"), "{name}: {stderr}");
        let (code, stderr) = run(&binary, dir.path(), &["get", &server.addr, "report.pdf", "-o", "r.pdf", "-c", "-q"]);
        assert_eq!((code, stderr.as_str()), (Some(0), ""), "{name}: -q says nothing of a success");
        let (code, stderr) = run(&binary, dir.path(), &["get", &server.addr, "reprot.pdf", "-o", "x.pdf"]);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains("did you mean report.pdf?"), "{name}: {stderr}");
        // A typo is said as such, not hidden behind a local file in the way.
        let (code, stderr) = run(&binary, dir.path(), &["get", &server.addr, "reprot.pdf", "-o", "r.pdf"]);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains("NOT_FOUND") && !stderr.contains("already exists"), "{name}: {stderr}");
    }
}

#[test]
fn a_reader_that_stops_early_ends_get_and_ls_quietly() {
    let root = tempfile::tempdir().expect("root");
    std::fs::File::create(root.path().join("big")).and_then(|file| file.set_len(64 << 20)).expect("file");
    let (_, server_binary) = &binaries()[0];
    let server = Served::start(server_binary, root.path(), root.path().join("server.log"));
    for (name, binary) in binaries() {
        for args in [&["get", &server.addr, "big", "-o", "-"][..], &["ls", &server.addr][..]] {
            let mut client =
                Command::new(&binary).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("client");
            let mut first = [0; 1];
            client.stdout.take().expect("stdout").read_exact(&mut first).expect("a first byte");
            // The pipe's read end is closed here: the next write fails.
            let output = client.wait_with_output().expect("the client ends");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!((output.status.code(), stderr.as_ref()), (Some(0), ""), "{name} {args:?}");
        }
    }
}

#[test]
fn sharing_beyond_loopback_unencrypted_needs_plaintext_said() {
    // Refused before it binds: the test never listens beyond loopback.
    let root = tempfile::tempdir().expect("root");
    for (name, binary) in binaries() {
        let refused = Command::new(&binary)
            .args(["serve", &root.path().display().to_string(), "--listen", "0.0.0.0:0"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{name}: {stderr}");
        assert!(refused.stdout.is_empty(), "{name}: it never listened");
        assert!(
            stderr.contains("--tls") && stderr.contains("--plaintext") && stderr.contains("encrypted"),
            "{name}: {stderr}"
        );
        // A token would cross the network in clear: refused even with
        // --plaintext, before binding.
        let token = root.path().join("token");
        std::fs::write(&token, "s3cret\n").expect("token file");
        let refused = Command::new(&binary)
            .args(["serve", &root.path().display().to_string(), "--listen", "0.0.0.0:0", "--plaintext"])
            .arg("--token-file")
            .arg(&token)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{name}: {stderr}");
        assert!(refused.stdout.is_empty(), "{name}: it never listened");
        assert!(stderr.contains("token") && stderr.contains("add --tls"), "{name}: {stderr}");
    }
}

#[test]
fn a_failed_tls_handshake_is_one_access_log_line_and_the_server_goes_on() {
    let root = tempfile::tempdir().expect("root");
    std::fs::write(root.path().join("a"), b"a").expect("file");
    for (name, binary) in binaries() {
        let log = root.path().join(format!("{name}.log"));
        let server = Served::start_with(&binary, root.path(), log, &["--tls", "--idle-timeout", "0.5"]);
        // A plain request where a ClientHello belongs.
        let mut plain = TcpStream::connect(&server.addr).expect("connect");
        plain.write_all(b"GET a\n").expect("request");
        plain.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer);
        assert!(!answer.starts_with(b"FERRY/1"), "{name}: greeted a plain client in the clear");
        let logged = server.log_line("status=TLS_FAILED", Duration::from_secs(10));
        assert!(logged.contains("error="), "{name}: the reason is said: {logged}");
        // And the server serves the next client.
        let (code, stderr) = run(&binary, root.path(), &["ls", &server.addr, "--tls"]);
        assert_eq!(code, Some(1), "{name}: an unknown server is refused off a terminal: {stderr}");
        assert!(stderr.contains("--pin SHA256:"), "{name}: {stderr}");
    }
}
