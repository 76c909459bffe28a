//! Runs cases concurrently and collects their outcomes by case id and
//! implementation. Cases do not interfere: each opens its own connections,
//! and those that need special server options start a server of their own.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::Check;
use crate::cases::{Case, ClientContext, Needs, Run, ServerContext};
use crate::fixture::Fixture;
use crate::implementation::{ClientLaunch, Implementation};
use crate::process::Server;
use crate::wire::Transcript;

/// Cases run at once. Most cases wait on the network or on a timeout, so
/// a few more than the cores keeps a 2-core machine busy without starving
/// the servers under test.
pub const CONCURRENCY: usize = 4;

/// What became of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It passed.
    Pass,
    /// It failed, for this reason.
    Fail(String),
    /// It could not run against this implementation, for this reason (a
    /// server that is already running cannot be given options).
    NotApplicable(String),
}

impl Verdict {
    /// A word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "FAIL",
            Verdict::NotApplicable(_) => "n/a",
        }
    }
}

/// One case's result against one implementation (or client/server pair).
#[derive(Debug)]
pub struct Outcome {
    /// The case.
    pub case: Case,
    /// The server implementation (or the scripted server, for client cases
    /// that do not use a real one: still the pair's server).
    pub server: String,
    /// The client implementation, for client cases.
    pub client: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// How long it took.
    pub elapsed: Duration,
    /// For a failure that was one plain exchange: a shell line that
    /// replays it by hand.
    pub by_hand: Option<String>,
}

impl Outcome {
    /// `std`, or `client std → server tokio`.
    pub fn subject(&self) -> String {
        match &self.client {
            Some(client) => format!("client {client} → server {}", self.server),
            None => format!("server {}", self.server),
        }
    }
}

/// Called with each outcome as it is known, for live progress.
pub type Report<'a> = &'a (dyn Fn(&Outcome) + Sync);

/// Picks cases.
pub type Select<'a> = &'a (dyn Fn(&Case) -> bool + Sync);

/// Runs the server cases `select` picks against `implementation`.
pub fn server_cases(
    implementation: &Implementation,
    fixture: &Fixture,
    select: Select<'_>,
    report: Report<'_>,
) -> Result<Vec<Outcome>, String> {
    let cases: Vec<Case> = crate::cases::server::CASES.iter().copied().filter(|c| select(c)).collect();
    let launch = implementation.server.as_ref().ok_or_else(|| format!("{} has no server", implementation.name))?;
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let server = Server::start(launch, fixture.root(), &[])?;
    let context = ServerContext { implementation, fixture, server: &server };
    Ok(concurrently(&cases, |case| {
        let Run::Server(check) = case.run else { unreachable!("only server cases were selected") };
        let unmet = match case.needs {
            Needs::ServerOptions if !launch.takes_options() => {
                Some("needs a server started with options: give --server-cmd with {options}".to_owned())
            }
            Needs::Python if !python() => Some("needs python3 on this machine, to write through a mapping".to_owned()),
            _ => None,
        };
        let outcome = outcome(*case, &implementation.name, None, unmet, || check(&context));
        report(&outcome);
        outcome
    }))
}

/// Whether `python3` runs here.
fn python() -> bool {
    std::process::Command::new("python3")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs the client cases `select` picks with `client` as the client and a
/// real `server` where a case needs one.
pub fn client_cases(
    client: &Implementation,
    server: &Implementation,
    fixture: &Fixture,
    select: Select<'_>,
    report: Report<'_>,
) -> Result<Vec<Outcome>, String> {
    let cases: Vec<Case> = crate::cases::client::CASES.iter().copied().filter(|c| select(c)).collect();
    let launch = server.server.as_ref().ok_or_else(|| format!("{} has no server", server.name))?;
    let ferry_client = matches!(client.client, Some(ClientLaunch::Ferry(_)));
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let running = Server::start(launch, fixture.root(), &[])?;
    let needs_tls = cases.iter().any(|case| case.needs == Needs::Tls);
    let secured = match needs_tls && launch.takes_options() {
        true => {
            let token = crate::process::token_file()?.display().to_string();
            Some(Server::start(launch, fixture.root(), &["--tls", "--token-file", &token])?)
        }
        false => None,
    };
    let context = ClientContext { client, server: &running, secured: secured.as_ref(), fixture };
    Ok(concurrently(&cases, |case| {
        let Run::Client(check) = case.run else { unreachable!("only client cases were selected") };
        let unmet = match case.needs {
            Needs::FerryClient | Needs::Tls if !ferry_client => {
                Some("needs a client with ferry's command line (-o, --force, --continue, --verify)".to_owned())
            }
            Needs::Tls if secured.is_none() => Some("needs a server that takes --tls and --token-file".to_owned()),
            _ => None,
        };
        let outcome = outcome(*case, &server.name, Some(&client.name), unmet, || check(&context));
        report(&outcome);
        outcome
    }))
}

/// Runs one check, turning a panic into a failure rather than a lost case.
fn outcome(
    case: Case,
    server: &str,
    client: Option<&str>,
    unmet: Option<String>,
    check: impl FnOnce() -> Check,
) -> Outcome {
    let started = Instant::now();
    let (caught, transcript) = match unmet {
        Some(_) => (None, Transcript::default()),
        None => {
            let (caught, transcript) = Transcript::record(|| catch_unwind(AssertUnwindSafe(check)));
            (Some(caught), transcript)
        }
    };
    let verdict = match (unmet, caught) {
        (Some(why), _) => Verdict::NotApplicable(why),
        (None, None) => Verdict::Pass,
        (None, Some(caught)) => match caught {
            Ok(Ok(())) => Verdict::Pass,
            Ok(Err(why)) => Verdict::Fail(why),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Verdict::Fail(format!("panicked: {text}"))
            }
        },
    };
    let by_hand = matches!(verdict, Verdict::Fail(_)).then(|| transcript.by_hand()).flatten();
    Outcome {
        case,
        by_hand,
        server: server.to_owned(),
        client: client.map(str::to_owned),
        verdict,
        elapsed: started.elapsed(),
    }
}

/// Runs `run` over `items` on [`CONCURRENCY`] threads; results in order.
fn concurrently<T: Sync, R: Send>(items: &[T], run: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    thread::scope(|scope| {
        for _ in 0..CONCURRENCY.min(items.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = run(item);
                    results.lock().unwrap_or_else(|e| e.into_inner()).push((index, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Panics with every failure, naming case and implementation, if any
/// outcome did not pass; for `cargo test`, where every case applies.
pub fn assert_passed(outcomes: &[Outcome]) {
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match &o.verdict {
            Verdict::Pass => None,
            Verdict::Fail(why) | Verdict::NotApplicable(why) => {
                Some(format!("  {} [{}]: {why}", o.case.id, o.subject()))
            }
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), outcomes.len(), failures.join("\n"));
}
