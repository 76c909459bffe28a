//! Runs cases concurrently and collects their outcomes by case id and
//! implementation. Cases do not interfere: each opens its own connections,
//! and those that need special server options start a server of their own.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::Check;
use crate::cases::{Case, ClientContext, Run, ServerContext};
use crate::fixture::Fixture;
use crate::implementation::Implementation;
use crate::process::Server;

/// Cases run at once. Most cases wait on the network or on a timeout, so
/// a few more than the cores keeps a 2-core machine busy without starving
/// the servers under test.
pub const CONCURRENCY: usize = 4;

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
    pub verdict: Check,
    /// How long it took.
    pub elapsed: Duration,
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

/// Runs the server cases `select` picks against `implementation`.
pub fn server_cases(
    implementation: &Implementation,
    fixture: &Fixture,
    select: &(dyn Fn(&Case) -> bool + Sync),
) -> Result<Vec<Outcome>, String> {
    let cases: Vec<Case> = crate::cases::server::CASES.iter().copied().filter(|c| select(c)).collect();
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let server = Server::start(implementation, fixture.root(), &[])?;
    let context = ServerContext { implementation, fixture, server: &server };
    Ok(concurrently(&cases, |case| {
        let Run::Server(check) = case.run else { unreachable!("only server cases were selected") };
        outcome(*case, &implementation.name, None, || check(&context))
    }))
}

/// Runs the client cases `select` picks with `client` as the client and a
/// real `server` where a case needs one.
pub fn client_cases(
    client: &Implementation,
    server: &Implementation,
    fixture: &Fixture,
    select: &(dyn Fn(&Case) -> bool + Sync),
) -> Result<Vec<Outcome>, String> {
    let cases: Vec<Case> = crate::cases::client::CASES.iter().copied().filter(|c| select(c)).collect();
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let running = Server::start(server, fixture.root(), &[])?;
    let context = ClientContext { client, server: &running, fixture };
    Ok(concurrently(&cases, |case| {
        let Run::Client(check) = case.run else { unreachable!("only client cases were selected") };
        outcome(*case, &server.name, Some(&client.name), || check(&context))
    }))
}

/// Runs one check, turning a panic into a failure rather than a lost case.
fn outcome(case: Case, server: &str, client: Option<&str>, check: impl FnOnce() -> Check) -> Outcome {
    let started = Instant::now();
    let verdict = catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(format!("panicked: {text}"))
    });
    Outcome { case, server: server.to_owned(), client: client.map(str::to_owned), verdict, elapsed: started.elapsed() }
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
/// outcome failed; for `cargo test`.
pub fn assert_passed(outcomes: &[Outcome]) {
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.verdict.as_ref().err().map(|why| format!("  {} [{}]: {why}", o.case.id, o.subject())))
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), outcomes.len(), failures.join("\n"));
}
