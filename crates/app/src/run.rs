//! The program every binary runs: the command line parsed, the command run
//! on the implementation's [`Runtime`], and the result turned into words and
//! an exit code.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use ferry_engine::client::{ClientConfig, ClientError, Outcomes, SaveError};
use ferry_engine::show;
use ferry_engine::{Entry, Kind, Request, Token, WirePath};
use ferry_share::Root;

use crate::args::{self, Cli, Command, GetArgs, LsArgs, Secure, ServeArgs};
use crate::dial::Remote;
use crate::runtime::{Runtime, ServeConfig};
use crate::save::{Item, Plan, PlanError, Report, Resume};
use crate::tls::identity::{Identity, config_dir};
use crate::tls::{Check, ClientTls, ServerTls};
use crate::{hint, progress, say, signals};

/// The whole program: parse the command line, run it on `R`, and turn the
/// result into an exit code (0 done, 1 failed, 2 usage error).
pub fn main<R: Runtime>() -> ExitCode {
    let command = Cli::command()
        .name(R::BINARY)
        .bin_name(R::BINARY)
        .long_about(format!(
            "{}\n\nEvery implementation (ferry-std, ferry-tokio, ferry-smol, ferry-async-std, ferry-compio) takes \
             exactly this command line and speaks the same protocol, so any client works with any server. This one runs on {}.\n\n\
             Exit status: 0 done, 1 failed, 2 usage error; each command's --help says more.",
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
        Command::Get(args) => get::<R>(args, cli.quiet),
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
    let tls = args.tls || args.cert.is_some();
    let beyond_loopback = !args.listen.ip().is_loopback();
    if beyond_loopback && !tls && !args.plaintext {
        return Err(Failure::Usage(format!(
            "--listen {}: other machines could reach this server, and without --tls nothing is encrypted: \
             anyone on the path could read every file sent. Add --tls (and --token-file, so that only those \
             you give the token can fetch), or listen on loopback (the default, 127.0.0.1:{}); --plaintext \
             shares unencrypted, on a network you trust",
            args.listen,
            crate::args::DEFAULT_PORT
        )));
    }
    let token = read_token(args.token_file.as_deref())?;
    if token.is_some() && beyond_loopback && !tls {
        return Err(Failure::Usage(format!(
            "--listen {}: without --tls the access token would cross the network in clear, for anyone on \
             the path to read and use; add --tls",
            args.listen
        )));
    }
    let tls = match (tls, &args.cert, &args.key) {
        (false, ..) => None,
        (true, Some(cert), Some(key)) => Some(Identity::from_pem(cert, key)?),
        (true, ..) => Some(Identity::own(&config_dir()?)?),
    };
    let tls = tls.map(ServerTls::new).transpose()?;
    let root = Root::open(&args.root)?;
    tracing::info!(root = %root.path().display(), implementation = R::NAME, "sharing");
    if token.is_some() {
        // Said, since FERRY_TOKEN alone (set for a client, say) requires it.
        let from = args.token_file.as_ref().map_or_else(|| "FERRY_TOKEN".to_owned(), |f| f.display().to_string());
        tracing::info!(from = %from, "clients must give the access token");
    }
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
        tls,
        token: token.map(std::sync::Arc::new),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The access token in the first line of `file`, or else in FERRY_TOKEN;
/// `None` when neither is given.
fn read_token(file: Option<&std::path::Path>) -> Result<Option<Token>, Failure> {
    let (text, from) = match file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::Usage(format!("--token-file {}: {e}", file.display())))?;
            (text.lines().next().unwrap_or("").trim().to_owned(), format!("the first line of {}", file.display()))
        }
        None => match std::env::var("FERRY_TOKEN") {
            Ok(text) => (text.trim().to_owned(), "FERRY_TOKEN".to_owned()),
            Err(_) => return Ok(None),
        },
    };
    Token::new(text.as_bytes()).map(Some).map_err(|e| Failure::Usage(format!("{from}: {e}")))
}

/// How `get` and `ls` reach `addr`: TLS when any TLS flag asks for it,
/// checked by a pin, a CA, or `known_servers`; the token from its file or
/// the environment.
fn remote(config: ClientConfig, secure: &Secure) -> Result<Remote, Failure> {
    let config = ClientConfig { token: read_token(secure.token_file.as_deref())?, ..config };
    let check = match (&secure.pin, &secure.ca) {
        (Some(pin), _) => Some(Check::Pin(pin.clone())),
        (None, Some(ca)) => Some(Check::Ca(ca.clone())),
        (None, None) if secure.tls => Some(Check::KnownServers),
        (None, None) => None,
    };
    let tls = check.map(|check| ClientTls::new(&config.addr, check)).transpose()?;
    Ok(Remote { config, tls })
}

/// Without a token, anyone who can connect can fetch every file shared:
/// sharing `/` or a home folder hands every file in it to them. Allowed,
/// but said.
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

fn get<R: Runtime>(mut args: GetArgs, quiet: bool) -> Result<ExitCode, Failure> {
    args.no_progress |= quiet;
    let config = ClientConfig {
        addr: args.addr.clone(),
        timeout: args.timeout.0,
        max_size: args.max_size.map(|size| size.0),
        token: None,
    };
    let remote = remote(config, &args.secure)?;
    if args.recursive {
        return crate::copy::get_tree::<R>(&args, &remote, quiet).map_err(|refused| match refused {
            crate::copy::Refused::Usage(message) => Failure::Usage(message),
            crate::copy::Refused::Save(error) => Failure::Run(error.into()),
        });
    }
    let mut listings = Listings::new(&remote);
    // The server is asked first where the answer decides what to ask the
    // user: a missing file or a dead server is said before the prompt for
    // where to save it.
    if let [path] = &args.paths[..]
        && args.output.is_none()
        && std::io::stdin().is_terminal()
        && let Some(error) = remote_trouble::<R>(&mut listings, path)
    {
        let mut report = Report::new(1).quiet(quiet).with_hints(R::BINARY, &args.addr);
        report.failed(&error);
        suggest::<R>(&mut listings, &report.missing);
        return Ok(report.exit_code());
    }
    let mut plan = Plan::new(&args).map_err(|error| match error {
        PlanError::Usage(message) => Failure::Usage(message),
        PlanError::Save(error) => Failure::Run(error.into()),
    })?;
    let mut report = Report::new(plan.items.len() + plan.refused.len()).quiet(quiet).with_hints(R::BINARY, &args.addr);
    // Ctrl-C or SIGTERM mid-download: what is kept, and how to go on.
    let resume = Resume::new(R::BINARY, &plan);
    let last_words = resume.clone();
    signals::on_interrupt(move || last_words.tell())
        .map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    // Files whose destination is in the way fail alone, each named, before
    // the others are fetched; but a destination in the way is only worth
    // saying for a file the server has: otherwise what is wrong is the
    // path, a typo say.
    for (path, refused) in std::mem::take(&mut plan.refused) {
        let trouble =
            remote_trouble::<R>(&mut listings, path.as_str()).filter(|error| hint::not_found(error).is_some());
        report.failed(&trouble.unwrap_or(ClientError::Save(refused)));
    }
    if !plan.items.is_empty()
        && let Err(error) = R::get(&remote, &plan, &mut report)
    {
        // `get -o - | head`: the reader has all it wanted, as for `ls`.
        if stdout_closed(&error) {
            return Ok(ExitCode::SUCCESS);
        }
        report.connection_failed(&error);
        plan.abandon(&error);
        resume.tell();
    }
    suggest::<R>(&mut listings, &report.missing);
    Ok(report.exit_code())
}

/// The server's folders listed for hints, each listed once however many
/// paths in it need one.
struct Listings<'c> {
    remote: &'c Remote,
    made: HashMap<String, hint::Names>,
}

impl<'c> Listings<'c> {
    fn new(remote: &'c Remote) -> Listings<'c> {
        Listings { remote, made: HashMap::new() }
    }

    /// `folder`'s names, listed now or earlier.
    fn of<R: Runtime>(&mut self, folder: &WirePath) -> Result<&hint::Names, ClientError> {
        if !self.made.contains_key(folder.as_str()) {
            let mut names = hint::Names::default();
            R::ls(self.remote, &Request::List { path: folder.clone() }, &mut names)?;
            self.made.insert(folder.as_str().to_owned(), names);
        }
        Ok(&self.made[folder.as_str()])
    }
}

/// What is wrong on the server's side with fetching `path`, found from a
/// listing of its folder: it is not there (`NOT_FOUND`), it is a folder
/// (`NOT_A_FILE`), or the server cannot be reached. `None` when it is a
/// file the server has, or when the listing itself is refused (the GET
/// will say why).
fn remote_trouble<R: Runtime>(listings: &mut Listings<'_>, path: &str) -> Option<ClientError> {
    let wire = WirePath::new(path).ok()?;
    let parent = hint::parent(wire.as_str())?;
    let name = wire.file_name()?;
    let names = match listings.of::<R>(&parent) {
        // What stops every request is said before anything is asked.
        Err(
            error @ (ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Tls { .. }
            | ClientError::Unauthorized { .. }
            | ClientError::NotFerry { .. }),
        ) => return Some(error),
        Err(_) => return None,
        Ok(names) => names,
    };
    let refusal = |code, message: String| ClientError::Refused {
        path: wire.as_str().to_owned(),
        refusal: ferry_engine::Refusal::new(code, message),
    };
    match names.names.iter().find(|(listed, _)| listed == name) {
        Some((_, false)) => None,
        Some((_, true)) => Some(refusal(ferry_engine::ErrorCode::NotAFile, format!("{} is a folder", wire.as_str()))),
        // A listing cut at its bound proves nothing.
        None if names.names.len() >= hint::MOST_NAMES => None,
        None => Some(refusal(ferry_engine::ErrorCode::NotFound, format!("{} does not exist", wire.as_str()))),
    }
}

/// Whether `error` is standard output's reader having gone.
fn stdout_closed(error: &ClientError) -> bool {
    matches!(error, ClientError::Save(SaveError::Io { path, source })
        if path.as_os_str() == "stdout" && source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// For paths the server does not have: the name in the same folder that
/// was most likely meant, from a listing of it (the first three paths).
fn suggest<R: Runtime>(listings: &mut Listings<'_>, missing: &[String]) {
    for path in missing.iter().take(3) {
        let Some(parent) = hint::parent(path) else { continue };
        let Ok(names) = listings.of::<R>(&parent) else { continue };
        let wanted = path.trim_end_matches('/').rsplit('/').next().unwrap_or(path);
        if let Some(name) = hint::closest(wanted, &names.names) {
            let meant = match parent.as_str() {
                "/" => name.to_owned(),
                folder => format!("{folder}/{name}"),
            };
            say!("did you mean {}?", show::escaped(&meant));
        }
    }
}

fn ls<R: Runtime>(args: LsArgs) -> Result<ExitCode, Failure> {
    let path = WirePath::new(&args.path).map_err(|refusal| Failure::Usage(format!("{}: {refusal}", args.path)))?;
    let config = ClientConfig { addr: args.addr, timeout: args.timeout.0, max_size: None, token: None };
    let remote = remote(config, &args.secure)?;
    let mut printer = Printer { out: std::io::stdout().lock(), bytes: args.bytes, failed: None };
    if let Err(error) = R::ls(&remote, &Request::List { path }, &mut printer) {
        // Said as `get` says a refusal, with the same hints.
        let mut report = Report::new(1).with_hints(R::BINARY, &remote.config.addr);
        report.failed(&error);
        suggest::<R>(&mut Listings::new(&remote), &report.missing);
        return Ok(report.exit_code());
    }
    let written = match printer.failed.take() {
        Some(error) => Err(error),
        None => printer.out.flush(),
    };
    match written {
        // `ls | head`: the reader has all it wanted; nothing went wrong.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        written => written.map(|()| ExitCode::SUCCESS).map_err(Failure::from),
    }
}

/// Prints each entry of a listing as soon as it arrives: `ls` holds one
/// line, however long the listing. The first failed write is kept, and
/// nothing more is written.
struct Printer<W> {
    out: W,
    bytes: bool,
    failed: Option<std::io::Error>,
}

impl<W: Write> Outcomes<Item> for Printer<W> {
    fn record(&mut self, _: &Item, _: Result<Option<[u8; 32]>, ClientError>) {}

    fn listed(&mut self, entry: Entry) {
        if self.failed.is_none()
            && let Err(error) = writeln!(self.out, "{}", ls_line(&entry, self.bytes))
        {
            self.failed = Some(error);
        }
    }
}

/// One line of `ls`: kind, size (bytes, or human), and the name, escaped
/// for the terminal, with a `/` after a folder's.
fn ls_line(entry: &Entry, bytes: bool) -> String {
    let (kind, size) = match entry.kind {
        Kind::File if bytes => ("file", entry.size.to_string()),
        Kind::File => ("file", progress::human_bytes(entry.size)),
        Kind::Directory => ("dir", "-".to_owned()),
    };
    // A name holding `/` (which no file system's entry can) is a hostile
    // server's: shown encoded, so that it cannot pass for a path.
    let name = show::escaped(&entry.name.replace('/', "%2F")).into_owned();
    let slash = if entry.kind == Kind::Directory { "/" } else { "" };
    format!("{kind:<4} {size:>14}  {name}{slash}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_name_cannot_pass_for_a_path_or_move_the_terminal() {
        let entry = |name: &str| Entry { kind: Kind::File, size: 3, name: name.to_owned() };
        assert_eq!(ls_line(&entry("a.txt"), true), "file              3  a.txt");
        assert!(ls_line(&entry("../../etc/passwd"), true).ends_with("  ..%2F..%2Fetc%2Fpasswd"));
        assert!(ls_line(&entry("evil\u{202e}txt"), true).ends_with("  evil\\u{202e}txt"));
        let folder = Entry { kind: Kind::Directory, size: 0, name: "docs".to_owned() };
        assert_eq!(ls_line(&folder, false), "dir               -  docs/");
    }
}
