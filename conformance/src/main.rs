//! `ferry-conformance`: runs the FERRY/1 conformance cases against this
//! repository's implementations (with no arguments: every server, and
//! every client against every server), or against any implementation
//! described by command templates or a running address.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use ferry_conformance::cases::{self, Case};
use ferry_conformance::fixture::Fixture;
use ferry_conformance::implementation::{ClientLaunch, Implementation, Launch};
use ferry_conformance::process::Server;
use ferry_conformance::report;
use ferry_conformance::runner::{Outcome, Verdict, client_cases, server_cases};

/// Conformance cases for FERRY/1 servers and clients.
#[derive(Debug, Parser)]
#[command(
    name = "ferry-conformance",
    version,
    after_help = "Examples:\n  \
        ferry-conformance                                  # every implementation in this repository\n  \
        ferry-conformance --case 'path.*' --case 'get.*'   # some cases\n  \
        ferry-conformance --server-cmd './my-server --root {root} --port {port}'\n  \
        ferry-conformance --addr 127.0.0.1:9000 --root /srv/empty-folder\n  \
        ferry-conformance --client-cmd './my-client {addr} {path} {dest}'\n  \
        ferry-conformance --server-cmd './my-server {root} {port}' --fuzz 20000\n\n\
        Exit status: 0 when no case failed, 1 when any did, 2 for usage errors."
)]
struct Args {
    /// A server to test, as a shell command with {root} and {port} (and
    /// {options}, which receives ferry-style flags such as `--idle-timeout 1`,
    /// for the cases that need them). Ready when it prints
    /// `listening on <addr>` or accepts connections.
    #[arg(long, value_name = "CMD", conflicts_with = "addr")]
    server_cmd: Option<String>,
    /// A server already running on this address; it must share --root.
    #[arg(long, value_name = "HOST:PORT", requires = "root")]
    addr: Option<SocketAddr>,
    /// The empty folder the server at --addr shares; the cases' files are
    /// written into it.
    #[arg(long, value_name = "DIR", requires = "addr")]
    root: Option<PathBuf>,
    /// A client to test, as a shell command with {addr}, {path} and {dest}
    /// that saves one file and exits 0 on success. It is run against this
    /// repository's servers (or the one given).
    #[arg(long, value_name = "CMD")]
    client_cmd: Option<String>,
    /// The name to report an implementation given by command or address.
    #[arg(long, default_value = "external")]
    name: String,
    /// Run only the cases whose id matches this glob (repeatable).
    #[arg(long = "case", value_name = "GLOB")]
    cases: Vec<glob::Pattern>,
    /// List the cases (id, role, SPEC.md section, description) and exit.
    #[arg(long)]
    list: bool,
    /// Also write every outcome as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the report as Markdown to FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Also write every outcome as JUnit XML to FILE, for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Instead of the cases, send N generated and mutated request lines to
    /// each server and check every answer (see conformance/README.md).
    #[arg(long, value_name = "N", conflicts_with_all = ["cases", "list", "client_cmd"])]
    fuzz: Option<usize>,
    /// The fuzzer's seed, to repeat a run (default: from the clock, printed).
    #[arg(long, value_name = "S", requires = "fuzz")]
    seed: Option<u64>,
}

/// Why a run did not get to its cases.
enum Failure {
    /// The arguments do not make sense (exit status 2).
    Usage(String),
    /// Something else failed (exit status 1).
    Run(String),
}

impl From<String> for Failure {
    fn from(error: String) -> Self {
        Failure::Run(error)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        print!("{}", cases::catalogue());
        return ExitCode::SUCCESS;
    }
    if let Some(count) = args.fuzz {
        return fuzz(&args, count);
    }
    match run(&args) {
        Ok(outcomes) => {
            let (_, failed, _) = report::counts(&outcomes);
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(Failure::Usage(error)) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
        Err(Failure::Run(error)) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<Vec<Outcome>, Failure> {
    let select = |case: &Case| args.cases.is_empty() || args.cases.iter().any(|p| p.matches(case.id));
    if !cases::all().iter().any(select) {
        return Err(Failure::Usage("no case matches --case; see --list".into()));
    }
    let external_server = match (&args.server_cmd, args.addr) {
        (Some(command), _) => Some(Launch::Template(command.clone())),
        (None, Some(addr)) => Some(Launch::Running(addr)),
        (None, None) => None,
    };
    let external_client = args.client_cmd.clone().map(ClientLaunch::Template);
    // This repository's implementations are built when they take part:
    // as the servers, or as the clients of client cases.
    let any_client_case = cases::all().iter().any(|case| select(case) && matches!(case.run, cases::Run::Client(_)));
    let (workspace, built) = if external_server.is_none() || (external_client.is_none() && any_client_case) {
        eprintln!("building this repository's implementations (cargo build --release)...");
        let (workspace, built) = Implementation::release_build()?;
        (workspace, Some(built))
    } else {
        (Vec::new(), None)
    };
    let started = Instant::now();
    let servers: Vec<Implementation> = match external_server {
        Some(launch) => {
            vec![Implementation { name: args.name.clone(), greets_as: None, server: Some(launch), client: None }]
        }
        None => workspace.clone(),
    };
    let clients: Vec<Implementation> = match external_client {
        Some(launch) => {
            vec![Implementation { name: args.name.clone(), greets_as: None, server: None, client: Some(launch) }]
        }
        None => workspace,
    };
    let fixture = match &args.root {
        Some(root) => Fixture::build_at(root),
        None => Fixture::build(),
    }
    .map_err(|e| format!("cannot build the cases' files: {e}"))?;

    let progress = Progress::new(rerun_command());
    let report = |outcome: &Outcome| progress.record(outcome);
    let mut outcomes = Vec::new();
    if args.client_cmd.is_none() || args.server_cmd.is_some() || args.addr.is_some() {
        for server in &servers {
            outcomes.extend(server_cases(server, &fixture, &select, &report)?);
        }
    }
    for client in &clients {
        for server in &servers {
            outcomes.extend(client_cases(client, server, &fixture, &select, &report)?);
        }
    }
    progress.done();

    let markdown = report::markdown(&outcomes);
    println!("{markdown}");
    let ran = format!("ran {} outcomes in {:.1} s", outcomes.len(), started.elapsed().as_secs_f64());
    match built {
        Some(built) => println!("Built in {:.1} s; {ran}.", built.as_secs_f64()),
        None => println!("{}{}.", ran[..1].to_uppercase(), &ran[1..]),
    }
    let write = |path: &PathBuf, text: &str| std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()));
    if let Some(path) = &args.json {
        write(path, &report::json(&outcomes))?;
    }
    if let Some(path) = &args.markdown {
        write(path, &markdown)?;
    }
    if let Some(path) = &args.junit {
        write(path, &report::junit(&outcomes, &rerun_command()))?;
    }
    Ok(outcomes)
}

/// `--fuzz`: every server in turn, fuzzed with the same seed.
fn fuzz(args: &Args, count: usize) -> ExitCode {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    let servers = match (&args.server_cmd, args.addr) {
        (Some(command), _) => Ok(vec![(args.name.clone(), Launch::Template(command.clone()))]),
        (None, Some(addr)) => Ok(vec![(args.name.clone(), Launch::Running(addr))]),
        (None, None) => Implementation::release_build()
            .map(|(all, _)| all.into_iter().filter_map(|i| i.server.map(|launch| (i.name, launch))).collect()),
    };
    let fixture = match &args.root {
        Some(root) => Fixture::build_at(root),
        None => Fixture::build(),
    };
    let (servers, fixture) = match (servers, fixture) {
        (Ok(servers), Ok(fixture)) => (servers, fixture),
        (Err(error), _) => return fail(&error),
        (_, Err(error)) => return fail(&format!("cannot build the fixture: {error}")),
    };
    let mut failed = false;
    for (name, launch) in servers {
        let server = match Server::start(&launch, fixture.root(), &[]) {
            Ok(server) => server,
            Err(error) => return fail(&error),
        };
        match ferry_conformance::fuzz::fuzz(server.addr, &fixture, count, seed) {
            Ok(done) => println!(
                "fuzz {name}: pass, {} requests over {} connections in {:.1} s (seed {seed})",
                done.requests,
                done.connections,
                done.elapsed.as_secs_f64()
            ),
            Err(failure) => {
                failed = true;
                println!("fuzz {name}: FAIL, {failure}");
                println!("  rerun: {} --seed {seed}", rerun_command().replace(&format!(" --seed {seed}"), ""));
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn fail(error: &str) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(1)
}

/// This run's command line without its `--case` selections: with
/// `--case ID` added, the command that reruns one case alone.
fn rerun_command() -> String {
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--case" {
            args.next();
        } else if !arg.starts_with("--case=") {
            let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
            words.push(if plain { arg } else { ferry_conformance::process::shell_quote(&arg) });
        }
    }
    let mut command = String::from("ferry-conformance");
    for word in words {
        command.push(' ');
        command.push_str(&word);
    }
    command
}

/// A live progress line on stderr when it is a terminal; otherwise each
/// failure as it happens.
struct Progress {
    live: bool,
    seen: Mutex<(usize, usize, usize)>,
    rerun: String,
}

impl Progress {
    fn new(rerun: String) -> Progress {
        Progress { live: std::io::stderr().is_terminal(), seen: Mutex::new((0, 0, 0)), rerun }
    }

    fn record(&self, outcome: &Outcome) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match &outcome.verdict {
            Verdict::Pass => seen.0 += 1,
            Verdict::Fail(why) => {
                seen.1 += 1;
                let clear = if self.live { "\r\x1b[2K" } else { "" };
                eprintln!(
                    "{clear}FAIL {} (SPEC.md {}) [{}]: {why}",
                    outcome.case.id,
                    outcome.case.spec,
                    outcome.subject()
                );
                eprintln!("  rerun: {} --case {}", self.rerun, outcome.case.id);
                if let Some(line) = &outcome.by_hand {
                    eprintln!("  by hand (against a server on that address): {line}");
                }
            }
            Verdict::NotApplicable(_) => seen.2 += 1,
        }
        if self.live {
            let (passed, failed, na) = *seen;
            eprint!(
                "\r\x1b[2K{} done: {passed} passed, {failed} failed, {na} n/a — {} [{}]",
                passed + failed + na,
                outcome.case.id,
                outcome.subject()
            );
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&self) {
        if self.live {
            eprintln!();
        }
    }
}
