//! What the three ferry binaries share.
//!
//! `ferry-std`, `ferry-tokio` and `ferry-smol` have exactly one command line,
//! one set of messages and one way of saving files. Everything here is
//! independent of the runtime, so each implementation only supplies a
//! [`Runtime`]: how to serve, how to fetch, how to list. Its `main` is then a
//! single call to [`main`].
//!
//! - [`access`]: the server's access log.
//! - [`args`]: the command line (clap derive).
//! - [`session`]: the client's side of FERRY/1 as steps, without I/O; each
//!   driver's `client.rs` does them.
//! - [`serving`]: the server's side of one connection as steps, without
//!   I/O; each driver's `server.rs` does them.
//! - [`save`]: where downloads go, `.part` files, atomic commits, `--verify`.
//! - [`progress`]: progress bars on a terminal, nothing elsewhere.
//! - [`error`]: the client's error type, whose messages name the path or
//!   address they are about.
//! - [`show`]: server-supplied text made safe to print on a terminal.
//! - [`conn`]: the errors of reading a connection, and buffer sizes, shared
//!   by every driver's `connection.rs`.
//! - [`signals`]: Ctrl-C and SIGTERM, the same for every runtime.
//! - [`say`]: messages on stderr that cannot fail the program.
//! - [`spool`]: received bytes on their way to a file through a blocking
//!   pool, 1 MiB at a time (the tokio and smol clients).

pub mod access;
pub mod args;
pub mod chat;
pub mod conn;
pub mod error;
pub mod progress;
pub mod save;
pub mod say;
pub mod serving;
pub mod session;
pub mod show;
pub mod signals;
pub mod spool;
#[cfg(feature = "testing")]
pub mod testing;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use ferry_fs::Root;
use ferry_proto::{Entry, Kind, WirePath};

pub use args::{Cli, Command, GetArgs, LsArgs, ServeArgs};
pub use error::{ClientError, SaveError};
pub use progress::Progress;
pub use save::{Dest, Item, Plan, PlanError, Report, Stream, Target};
pub use session::{AsyncSteps, NotReceived, Received, Session, Step, Steps, Tally};

/// Everything a server needs, decided from the command line.
#[derive(Debug)]
pub struct ServeConfig {
    /// The shared folder, already opened.
    pub root: Root,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Connections served at once; further ones are answered `ERR BUSY`.
    pub max_connections: usize,
    /// How long a connection may take to send a whole request line, and how
    /// long a client may stop reading before it is dropped.
    pub idle_timeout: Duration,
    /// How long transfers in flight may continue after a shutdown signal.
    pub grace: Duration,
}

/// Everything a client needs to reach a server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's address as the user wrote it (`host:port`).
    pub addr: String,
    /// How long to wait for a connection, and for each read.
    pub timeout: Duration,
}

/// One implementation of ferry: how its runtime serves and fetches.
pub trait Runtime {
    /// The implementation's name: the token in its greeting (`std`, ...).
    const NAME: &'static str;

    /// The binary's name (`ferry-std`, ...), for `--help` and messages.
    const BINARY: &'static str;

    /// How many descriptors a connection may hold at once: its socket and
    /// the file it sends, on most runtimes. The server lowers
    /// `--max-connections` to what the open-file limit allows at this rate.
    const DESCRIPTORS_PER_CONNECTION: u64 = 2;

    /// Descriptors the runtime keeps besides its connections' (a pool of
    /// pipes, say), set aside before connections are fitted under the
    /// open-file limit.
    fn reserved_descriptors() -> u64 {
        0
    }

    /// Serves `config.root` until Ctrl-C or SIGTERM. Calls [`announce`] once
    /// it listens.
    fn serve(config: ServeConfig) -> anyhow::Result<()>;

    /// Fetches every item of `plan` over one connection, pipelined.
    /// Refusals of single items go to `report`; an error that ends the
    /// connection is returned.
    fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError>;

    /// Lists a directory.
    fn ls(config: &ClientConfig, path: &WirePath) -> Result<Vec<Entry>, ClientError>;
}

/// Prints the one line on stdout that says the server is ready, with the
/// real port, and flushes it: scripts and tests wait for this line.
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    // If stdout is gone there is no one to tell; serving goes on.
    let _ = writeln!(out, "listening on {addr}").and_then(|()| out.flush());
}

/// How many connections the kernel may hold ready before the server
/// accepts them (Linux caps it at `net.core.somaxconn`). The runtimes'
/// `bind` asks for 128: a burst of a few thousand connects then overflows the
/// queue, and the kernel drops handshakes that it retries only after seconds
/// (`benches/scale`: 227 of 8,000 downloads heard nothing for 30 s).
pub const BACKLOG: i32 = 4096;

/// A listening socket on `addr` with a [`BACKLOG`]-deep accept queue, for
/// each runtime to adopt. `SO_REUSEADDR` is set, as the runtimes' own `bind`
/// does on Unix, so a restarted server need not wait out `TIME_WAIT`.
pub fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// `count` listening sockets on one address, for a server with a thread
/// per core that gives each thread its own accept queue: `SO_REUSEPORT`
/// makes the kernel spread new connections over them. The first binds
/// `addr` (port 0 picks a free port); the others bind the address it got.
/// Only sockets of the same user can join such a group.
pub fn listen_group(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut bound = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&bound.into())?;
        socket.listen(BACKLOG)?;
        let listener = std::net::TcpListener::from(socket);
        bound = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Names the calling thread `name` (what `top -H`, `strace -f` and
/// `/proc/PID/task/*/comm` show; at most 15 bytes), once: later calls on the
/// same thread do nothing, so a runtime hook that runs often may call it.
pub fn name_this_thread(name: &'static str) {
    thread_local! {
        static NAMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !NAMED.replace(true) {
        let name = std::ffi::CString::new(name).unwrap_or_default();
        // A thread without a new name works the same; nothing to report.
        let _ = rustix::thread::set_name(&name);
    }
}

/// The whole program: parse the command line, run it on `R`, and turn the
/// result into an exit code (0 done, 1 failed, 2 usage error).
pub fn main<R: Runtime>() -> ExitCode {
    let command = Cli::command()
        .name(R::BINARY)
        .bin_name(R::BINARY)
        .long_about(format!(
            "{}\n\nEvery implementation (ferry-std, ferry-tokio, ferry-smol, ferry-async-std, ferry-compio) takes \
             exactly this command line and speaks the same protocol, so any client works with any server. This one runs on {}.",
            args::ABOUT,
            R::NAME
        ))
        .after_help(examples(R::BINARY));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    init_logging(cli.verbose, cli.quiet, matches!(cli.command, Command::Serve(_)));
    let result = match cli.command {
        Command::Serve(args) => serve::<R>(args),
        Command::Get(args) => get::<R>(args),
        Command::Ls(args) => ls::<R>(args),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            say!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(error)) => {
            say!("error: {}", message(&error));
            ExitCode::FAILURE
        }
    }
}

/// The examples at the end of `--help`, naming the binary that prints them.
fn examples(binary: &str) -> String {
    let lines = [
        ("serve ~/shared", "share a folder on 127.0.0.1:7878"),
        ("ls 127.0.0.1:7878", "list what it shares"),
        ("get 127.0.0.1:7878 docs/a.pdf", "fetch a file (asks where to save it)"),
        ("get HOST a b c -o dl/", "fetch several files into a folder (port 7878)"),
        ("get HOST big.iso -o /dev/null", "fetch and discard (devices are written directly)"),
    ];
    let width = lines.iter().map(|(command, _)| command.len()).max().unwrap_or(0) + binary.len() + 3;
    let mut out = String::from("Examples:");
    for (command, what) in lines {
        out.push_str(&format!("\n  {:<width$}{what}", format!("{binary} {command}")));
    }
    out
}

/// An error and its causes on one line, each cause once: most of ferry's
/// errors already name their cause, and `anyhow`'s `{:#}` would repeat it.
fn message(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Why a command failed: the user's words, or the run.
enum Failure {
    Usage(String),
    Run(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Run(error.into())
    }
}

fn serve<R: Runtime>(args: ServeArgs) -> Result<ExitCode, Failure> {
    let root = Root::open(&args.root)?;
    tracing::info!(root = %root.path().display(), implementation = R::NAME, "sharing");
    warn_if_too_much(root.path());
    R::serve(ServeConfig {
        root,
        listen: args.listen,
        max_connections: fit_descriptors(
            args.max_connections,
            R::DESCRIPTORS_PER_CONNECTION,
            R::reserved_descriptors(),
        ),
        idle_timeout: args.idle_timeout.0,
        grace: args.grace.0,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// FERRY/1 has no authentication: sharing `/` or a home folder hands every
/// file in it to anyone who can connect. Allowed, but said.
fn warn_if_too_much(root: &std::path::Path) {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).and_then(|home| home.canonicalize().ok());
    if root == std::path::Path::new("/") || home.as_deref() == Some(root) {
        tracing::warn!(
            root = %root.display(),
            "sharing a whole system or home folder: anyone who can connect can fetch every file in it"
        );
    }
}

/// Descriptors a server keeps for itself besides its connections: the
/// listener, the event loop's, standard streams, a `BUSY` answer being
/// written, libraries' own.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft limit on open descriptors to the hard one, and lowers
/// `max_connections` if it still cannot fit: each connection may hold two
/// (its socket and a file it sends). Past the limit clients are answered
/// `ERR BUSY`, which is better than `ERR INTERNAL Too many open files` for
/// the clients already admitted, or silence for the ones in the queue.
fn fit_descriptors(max_connections: usize, per_connection: u64, runtime_reserved: u64) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let Some(available) = limit.current else { return max_connections };
    let reserved = RESERVED_DESCRIPTORS + runtime_reserved;
    let fits = usize::try_from(available.saturating_sub(reserved) / per_connection).unwrap_or(usize::MAX).max(1);
    if fits < max_connections {
        tracing::warn!(
            max_connections,
            fits,
            open_files = available,
            per_connection,
            reserved,
            "--max-connections lowered: descriptors for each connection, plus those reserved, must fit under the \
             open-file limit (raise it with ulimit -n)"
        );
        return fits;
    }
    max_connections
}

fn get<R: Runtime>(args: GetArgs) -> Result<ExitCode, Failure> {
    let mut plan = Plan::new(&args).map_err(|error| match error {
        PlanError::Usage(message) => Failure::Usage(message),
        PlanError::Save(error) => Failure::Run(error.into()),
    })?;
    let config = ClientConfig { addr: args.addr.clone(), timeout: args.timeout.0 };
    let mut report = Report::new(plan.items.len() + plan.refused.len());
    // Files whose destination is in the way fail alone, each named, before
    // the others are fetched.
    for refused in std::mem::take(&mut plan.refused) {
        report.failed(&ClientError::Save(refused));
    }
    if !plan.items.is_empty()
        && let Err(error) = R::get(&config, &plan, &mut report)
    {
        report.connection_failed(&error);
    }
    Ok(report.exit_code())
}

fn ls<R: Runtime>(args: LsArgs) -> Result<ExitCode, Failure> {
    let path = WirePath::new(&args.path).map_err(|refusal| Failure::Usage(format!("{}: {refusal}", args.path)))?;
    let config = ClientConfig { addr: args.addr, timeout: args.timeout.0 };
    let entries = R::ls(&config, &path)?;
    let mut out = std::io::stdout().lock();
    for entry in entries {
        let (kind, size) = match entry.kind {
            Kind::File if args.bytes => ("file", entry.size.to_string()),
            Kind::File => ("file", progress::human_bytes(entry.size)),
            Kind::Directory => ("dir", "-".to_owned()),
        };
        let name = show::escaped(&entry.name);
        let slash = if entry.kind == Kind::Directory { "/" } else { "" };
        writeln!(out, "{kind:<4} {size:>14}  {name}{slash}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Logs go to stderr, so stdout stays clean for `listening on` and for
/// `get -o -`. `RUST_LOG` wins over `-v` and `-q`.
fn init_logging(verbose: u8, quiet: bool, serving: bool) {
    let level = match (verbose, serving) {
        _ if quiet => "warn",
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(say::LogWriter)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
