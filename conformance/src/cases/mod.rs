//! The named cases. Each has a stable id, the SPEC.md section it checks,
//! and a one-line description; ids never change meaning once published.

use std::net::SocketAddr;

use crate::Check;
use crate::fixture::Fixture;
use crate::implementation::Implementation;
use crate::process::{Log, Server};
use crate::wire::Wire;

pub mod client;
mod outcome;
pub mod server;
mod tls;
mod tree;

/// One conformance case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Stable id, e.g. `get.missing`.
    pub id: &'static str,
    /// The SPEC.md section it checks.
    pub spec: &'static str,
    /// What it checks, in one line.
    pub description: &'static str,
    /// What the case needs beyond a running server or a client that saves
    /// one file.
    pub needs: Needs,
    /// The check.
    pub run: Run,
}

/// What a case needs of the implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing more.
    Nothing,
    /// A server started with options of the case's own (an idle timeout, a
    /// connection limit), or signalled.
    ServerOptions,
    /// A client with ferry's command line (`--force`, `--continue`, ...).
    FerryClient,
    /// A client with ferry's command line, and a server started with
    /// `--tls` and `--token-file` (SPEC.md §8).
    Tls,
    /// `python3` on this machine, to write to a shared file through a
    /// memory mapping (the suite itself denies `unsafe`), and the shared
    /// folder on this machine.
    Python,
}

/// What a case drives.
#[derive(Debug, Clone, Copy)]
pub enum Run {
    /// A server, with raw bytes.
    Server(fn(&ServerContext<'_>) -> Check),
    /// A client binary, against a real or a scripted server.
    Client(fn(&ClientContext<'_>) -> Check),
}

/// What a server case gets.
#[derive(Debug)]
pub struct ServerContext<'a> {
    /// The implementation under test.
    pub implementation: &'a Implementation,
    /// The folder it shares.
    pub fixture: &'a Fixture,
    /// A server with default options, shared by the cases that need no
    /// options of their own.
    pub server: &'a Server,
}

impl ServerContext<'_> {
    /// A greeted connection to the shared server.
    pub fn connect(&self) -> Result<Wire, String> {
        self.connect_to(self.server.addr)
    }

    /// A greeted connection to `addr`, whose greeting must name this
    /// implementation when its name is known.
    pub fn connect_to(&self, addr: SocketAddr) -> Result<Wire, String> {
        let (wire, name) = Wire::greeted(addr)?;
        match &self.implementation.greets_as {
            Some(expected) if name != *expected => Err(format!("greeting names {name:?}, expected {expected:?}")),
            _ => Ok(wire),
        }
    }

    /// A server of this implementation of its own, with `options`.
    pub fn start(&self, options: &[&str]) -> Result<Server, String> {
        self.start_logging(options, Log::Discarded)
    }

    /// [`ServerContext::start`], with the server's log going to `log`.
    pub fn start_logging(&self, options: &[&str], log: Log) -> Result<Server, String> {
        let launch = self.implementation.server.as_ref().ok_or("the implementation has no server")?;
        Server::start_logging(launch, self.fixture.root(), options, log)
    }
}

/// What a client case gets.
#[derive(Debug)]
pub struct ClientContext<'a> {
    /// The client under test.
    pub client: &'a Implementation,
    /// A real server (any implementation) over the fixture.
    pub server: &'a Server,
    /// The same implementation's server over TLS, requiring the suite's
    /// token ([`crate::tls::TOKEN`]), when it takes ferry's options.
    pub secured: Option<&'a Server>,
    /// The folder the server shares.
    pub fixture: &'a Fixture,
}

/// The catalogue of cases as a Markdown table, for `conformance/README.md`
/// and `ferry-conformance --list`.
pub fn catalogue() -> String {
    let mut out = String::from("| id | role | SPEC.md | checks |\n|---|---|---|---|\n");
    for case in all() {
        let role = match case.run {
            Run::Server(_) => "server",
            Run::Client(_) => "client",
        };
        out.push_str(&format!("| `{}` | {role} | {} | {} |\n", case.id, case.spec, case.description));
    }
    out
}

/// Every case, server cases first.
pub fn all() -> Vec<Case> {
    server::CASES.iter().chain(client::CASES.iter()).copied().collect()
}

/// Percent-encodes a path the way SPEC.md §2 tells clients to.
pub fn encode(path: &str) -> String {
    let mut out = String::new();
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Fails with `message` unless `condition` holds.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Check {
    if condition { Ok(()) } else { Err(message()) }
}
