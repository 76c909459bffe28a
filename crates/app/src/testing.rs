//! A round trip through one implementation, in process, for each
//! implementation's own tests (`cargo test -p ferry-smol` in seconds,
//! without building the others). Behind the `testing` feature.
//!
//! The client side is the same for every runtime, since it goes through
//! [`Runtime::get`] and [`Runtime::ls`]; each implementation's test only
//! starts its `server::run` on port 0 its own way, calls
//! [`Share::round_trip`], and stops the server.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use ferry_engine::{Kind, WirePath};
use ferry_share::Root;

use crate::args::{Cli, Command};
use ferry_engine::client::ClientConfig;

use crate::dial::Remote;
use crate::{Plan, Report, Runtime, ServeConfig};

/// A shared folder with files of known bytes, and a folder to save into.
#[derive(Debug)]
pub struct Share {
    dir: tempfile::TempDir,
}

/// The files in a [`Share`]: a small one, one of several reads, one with a
/// name to encode, one in a subfolder.
///
/// The large one is written back and dropped from the page cache, so a
/// server meets it as a file on a cold disk: the async drivers send its
/// first windows through their blocking pool
/// ([`ferry_share::FileBody::read_cold`]), and the round trip checks those
/// bytes. (On a tmpfs the kernel keeps the pages, and it is sent as a warm
/// file.)
const FILES: [(&str, usize); 4] =
    [("hello.txt", 13), ("two-m.bin", 2 << 20), ("with space/naïve café.txt", 100), ("sub/x.txt", 1)];

impl Share {
    /// Makes the folders.
    pub fn new() -> Share {
        let dir = tempfile::Builder::new().prefix("ferry-roundtrip-").tempdir().expect("temp dir");
        for (name, len) in FILES {
            let path = dir.path().join("share").join(name);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, Share::bytes(name, len)).expect("write");
            if len > 1 << 20 {
                let file = std::fs::File::open(&path).expect("open");
                file.sync_all().expect("sync");
                rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
            }
        }
        std::fs::create_dir(dir.path().join("saved")).expect("mkdir");
        Share { dir }
    }

    fn bytes(name: &str, len: usize) -> Vec<u8> {
        name.bytes().cycle().zip((0u8..=250).cycle()).map(|(a, b)| a ^ b).take(len).collect()
    }

    /// A server configuration sharing the folder on `listen`, with short
    /// timeouts so that nothing in a test waits long.
    pub fn config(&self, listen: SocketAddr) -> ServeConfig {
        ServeConfig {
            root: Root::open(&self.dir.path().join("share")).expect("root"),
            listen,
            max_connections: 16,
            idle_timeout: Duration::from_secs(5),
            grace: Duration::from_secs(1),
            tls: None,
            token: None,
        }
    }

    /// [`Share::config`] over TLS, with an identity made in the share's
    /// folder, requiring the token [`TOKEN`].
    pub fn secured(&self, listen: SocketAddr) -> ServeConfig {
        let identity = crate::tls::identity::Identity::own(&self.dir.path().join("config")).expect("identity");
        let tls = crate::tls::ServerTls::new(identity).expect("TLS");
        let token = ferry_engine::Token::new(TOKEN.as_bytes()).expect("token");
        ServeConfig { tls: Some(tls), token: Some(std::sync::Arc::new(token)), ..self.config(listen) }
    }

    /// What every driver's in-process test does, plain and then over TLS
    /// (the client pinning the server's fingerprint, with the token the
    /// server requires): a share, a listener on a free loopback port, the
    /// server started on it by `serve` with a switch made by `shutdown`,
    /// the runtime's own client fetching from it ([`Share::round_trip`]),
    /// then the switch turned and the server waited for with what `serve`
    /// returned. Only starting and waiting are the runtime's own.
    pub fn round_trips<R: Runtime, T: crate::switch::Trigger>(
        shutdown: impl Fn() -> T,
        serve: impl Fn(std::net::TcpListener, ServeConfig, T) -> Box<dyn FnOnce()>,
    ) {
        for secured in [false, true] {
            let share = Share::new();
            let listener = crate::net::listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
            let addr = listener.local_addr().expect("addr");
            let config = if secured { share.secured(addr) } else { share.config(addr) };
            let pin = config.tls.as_ref().map(|tls| tls.fingerprint().to_owned());
            let switch = shutdown();
            let ended = serve(listener, config, switch.clone());
            share.round_trip_either::<R>(addr, pin.as_deref());
            switch.trigger();
            ended();
        }
    }

    /// [`Share::round_trip_secured`] when `fingerprint` is the server's
    /// (a server of [`Share::secured`]), else [`Share::round_trip`].
    pub fn round_trip_either<R: Runtime>(&self, addr: SocketAddr, fingerprint: Option<&str>) {
        match fingerprint {
            Some(fingerprint) => self.round_trip_secured::<R>(addr, fingerprint),
            None => self.round_trip::<R>(addr),
        }
    }

    /// [`Share::round_trip`] over TLS, the server pinned to `fingerprint`,
    /// with the token.
    pub fn round_trip_secured<R: Runtime>(&self, addr: SocketAddr, fingerprint: &str) {
        let token = ferry_engine::Token::new(TOKEN.as_bytes()).expect("token");
        let config = ClientConfig { token: Some(token), ..client_config(addr) };
        let tls = crate::tls::ClientTls::new(&config.addr, crate::tls::Check::Pin(fingerprint.to_owned()));
        self.round_trip_with::<R>(&Remote { tls: Some(tls.expect("TLS")), config });
    }

    /// Fetches every file with `R`'s client from the server at `addr`, with
    /// `--verify`, and lists the folder; panics unless every byte is right.
    pub fn round_trip<R: Runtime>(&self, addr: SocketAddr) {
        self.round_trip_with::<R>(&Remote::plain(client_config(addr)));
    }

    fn round_trip_with<R: Runtime>(&self, remote: &Remote) {
        let config = &remote.config;
        let saved = self.dir.path().join("saved");
        std::fs::remove_dir_all(&saved).and_then(|()| std::fs::create_dir(&saved)).expect("an empty folder to save in");
        let mut args = vec!["ferry".to_owned(), "get".to_owned(), config.addr.clone()];
        args.extend(FILES.iter().map(|(name, _)| (*name).to_owned()));
        args.extend(["-o".to_owned(), saved.display().to_string(), "--verify".to_owned()]);
        let Command::Get(get) = Cli::try_parse_from(&args).expect("arguments").command else { panic!("not get") };
        let plan = Plan::new(&get).unwrap_or_else(|_| panic!("no plan"));
        let mut report = Report::new(plan.items.len());
        R::get(remote, &plan, &mut report).expect("the connection");
        assert_eq!(report.exit_code(), ExitCode::SUCCESS, "{}: not every file was saved", R::NAME);
        for (name, len) in FILES {
            let file = Path::new(name).file_name().expect("a name");
            let got = std::fs::read(saved.join(file)).expect("saved");
            assert!(got == Share::bytes(name, len), "{}: {name} was saved with other bytes", R::NAME);
        }
        let mut entries = Listed(Vec::new());
        let root = ferry_engine::Request::List { path: WirePath::new("/").expect("valid") };
        R::ls(remote, &root, &mut entries).expect("ls");
        let entries = entries.0;
        let names: Vec<(Kind, &str)> = entries.iter().map(|entry| (entry.kind, entry.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (Kind::File, "hello.txt"),
                (Kind::Directory, "sub"),
                (Kind::File, "two-m.bin"),
                (Kind::Directory, "with space")
            ],
            "{}: LIST /",
            R::NAME
        );
    }
}

impl Default for Share {
    fn default() -> Self {
        Share::new()
    }
}

/// Runs the chat example `name` (`chat-smol`, ...) as two processes over
/// loopback, both sides scripted on stdin, and panics unless each side
/// showed the other's lines in turn (the escape sequence one side sends
/// shown escaped by the other), and both ended by themselves, successfully,
/// within 30 seconds. `cargo test` builds examples before it runs tests,
/// into `examples/` beside the folder of this test's own binary.
pub fn chat(name: &str) {
    let exe = std::env::current_exe()
        .expect("the test's own path")
        .parent()
        .and_then(Path::parent)
        .expect("a target folder")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "{} is not built: `cargo test` builds it (so does `cargo build --examples`), `cargo test --test chat` alone does not",
        exe.display()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut server = Talker::start(&exe, "server", "127.0.0.1:0", "hello client\nhow are you\n");
    let mut first = String::new();
    server.stdout.as_mut().expect("server stdout").read_line(&mut first).expect("server stdout");
    let addr = first.strip_prefix("listening on ").unwrap_or_else(|| panic!("server said {first:?}")).trim();
    let client = Talker::start(&exe, "client", addr, "hi server\n\x1b]0;owned\x07\nbye\n");
    let (client_said, server_said) = (client.finish(deadline), server.finish(deadline));
    assert_eq!(
        client_said,
        ["peer: welcome; take turns, one line each, and say bye to leave", "peer: hello client", "peer: how are you"]
    );
    assert!(server_said.first().is_some_and(|line| line.ends_with(" joined")), "server said {server_said:?}");
    assert_eq!(server_said[1..], ["peer: hi server", "peer: \\x1b]0;owned\\x07", "peer: bye"]);
}

/// One side of a chat: its process, with stdout still to read.
struct Talker {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Talker {
    fn start(exe: &Path, role: &str, addr: &str, script: &str) -> Talker {
        let mut child = std::process::Command::new(exe)
            .args([role, addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        // The whole script fits a pipe's buffer; closing stdin after it is
        // this side's "bye" should the script run out first.
        child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write the script");
        let stdout = child.stdout.take().map(BufReader::new);
        Talker { child, stdout }
    }

    /// Waits for the process to end (panicking at `deadline`, which kills
    /// it on the way out) and returns the lines it printed.
    fn finish(mut self, deadline: Instant) -> Vec<String> {
        let stdout = self.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || stdout.lines().map(|line| line.expect("utf-8 output")).collect());
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                panic!("the chat did not end within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "ended with {status}");
        reader.join().expect("reader")
    }
}

/// A side left running by a failed test is stopped, not orphaned: a panic
/// in one side's `finish` drops the other side too.
impl Drop for Talker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The entries of a listing, as they arrive.
struct Listed(Vec<ferry_engine::Entry>);

impl ferry_engine::client::Outcomes<crate::Item> for Listed {
    fn record(&mut self, _: &crate::Item, _: Result<Option<[u8; 32]>, ferry_engine::client::ClientError>) {}

    fn listed(&mut self, entry: ferry_engine::Entry) {
        self.0.push(entry);
    }
}

/// The token [`Share::secured`] requires.
pub const TOKEN: &str = "in-process-token";

fn client_config(addr: SocketAddr) -> ClientConfig {
    ClientConfig { addr: addr.to_string(), timeout: Duration::from_secs(10), max_size: None, token: None }
}
