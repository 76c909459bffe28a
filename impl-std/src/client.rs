//! The client: a driver for [`ferry_cli::Session`] on blocking std I/O.
//!
//! The session decides every step of the conversation and what each result
//! means; this file only does the steps: connect, write, read with a
//! deadline on each wait, and open and commit files. Everything runs on the
//! calling thread: one connection has nothing to overlap with.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use ferry_cli::{ClientConfig, ClientError, Item, NotReceived, Plan, Received, Report, Session, Step, Tally};
use ferry_proto::{Entry, WirePath};

use crate::connection::Connection;

/// Fetches every item of `plan` over one connection.
pub fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
    run(config, Session::get(plan, config), report).map(drop)
}

/// Lists a directory on the server.
pub fn list(config: &ClientConfig, path: &WirePath) -> Result<Vec<Entry>, ClientError> {
    run(config, Session::list(path, config), &mut Report::new(0)).map(Session::into_entries)
}

/// Connects and does what `session` says until it is done.
fn run<'p>(
    config: &ClientConfig,
    mut session: Session<'p, File>,
    report: &mut Report,
) -> Result<Session<'p, File>, ClientError> {
    let timeout = config.timeout;
    let mut connection = Connection::connect(&config.addr, timeout)?;
    loop {
        match session.step() {
            Step::ReadGreeting => session.on_greeting(connection.read_greeting(Instant::now() + timeout))?,
            Step::Send(requests) => session.on_sent(connection.write_all(&requests, timeout))?,
            Step::ReadAnswer => session.on_answer(connection.read_answer(Instant::now() + timeout))?,
            Step::Receive { item, len, hash } => {
                session.on_received(receive(&mut connection, item, len, hash, timeout))?;
            }
            Step::ReadSmall(len) => session.on_small(connection.read_small(len, timeout))?,
            Step::Discard(len) => session.on_discarded(connection.read_body(len, &mut io::sink(), |_| {}, timeout))?,
            Step::Commit { dest, file, digest } => session.on_committed(dest.commit(file, digest.as_ref())),
            Step::Report { item, outcome } => report.record(item, outcome),
            Step::Done => return Ok(session),
        }
    }
}

/// Receives `item`'s body of `len` bytes into its destination.
fn receive(
    connection: &mut Connection,
    item: &Item,
    len: u64,
    hash: bool,
    timeout: Duration,
) -> Result<Received<File>, NotReceived> {
    let mut sink = item.dest.open(item.offset).map_err(NotReceived::Unopened)?;
    let mut tally = Tally::new(item, len, hash);
    let read = connection.read_body(len, &mut sink, |chunk| tally.chunk(chunk), timeout);
    // Written straight to the file: there is nothing to flush.
    tally.finish(read, Ok(()), sink)
}
