//! The client: a driver for [`ferry_cli::Session`] on smol.
//!
//! The session decides every step of the conversation and what each result
//! means; this file only does the steps: connect, write, read with a
//! deadline on each wait, and open and commit files. Files are written
//! through `smol::Unblock`, which streams the writes to a thread of its
//! own; opening and committing go to `smol::unblock` whole.

use std::fs::File;
use std::time::{Duration, Instant};

use ferry_cli::{
    ClientConfig, ClientError, Dest, Item, NotReceived, Plan, Received, Report, SaveError, Session, Step, Tally,
};
use ferry_proto::{Entry, WirePath};
use smol::io::AsyncWriteExt;
use smol::{Unblock, unblock};

use crate::connection::Connection;

/// Fetches every item of `plan` over one connection.
pub async fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
    run(config, Session::get(plan, config), report).await.map(drop)
}

/// Lists a directory on the server.
pub async fn list(config: &ClientConfig, path: &WirePath) -> Result<Vec<Entry>, ClientError> {
    run(config, Session::list(path, config), &mut Report::new(0)).await.map(Session::into_entries)
}

/// Connects and does what `session` says until it is done.
async fn run<'p>(
    config: &ClientConfig,
    mut session: Session<'p, Unblock<File>>,
    report: &mut Report,
) -> Result<Session<'p, Unblock<File>>, ClientError> {
    let timeout = config.timeout;
    let mut connection = Connection::connect(&config.addr, timeout).await?;
    loop {
        match session.step() {
            Step::ReadGreeting => session.on_greeting(connection.read_greeting(Instant::now() + timeout).await)?,
            Step::Send(requests) => session.on_sent(connection.write_all(&requests, timeout).await)?,
            Step::ReadAnswer => session.on_answer(connection.read_answer(Instant::now() + timeout).await)?,
            Step::Receive { item, len, hash } => {
                session.on_received(receive(&mut connection, item, len, hash, timeout).await)?;
            }
            Step::ReadSmall(len) => session.on_small(connection.read_small(len, timeout).await)?,
            Step::Discard(len) => {
                session.on_discarded(connection.read_body(len, &mut smol::io::sink(), |_| {}, timeout).await)?;
            }
            Step::Commit { dest, file, digest } => session.on_committed(commit(dest, file, digest).await),
            Step::Report { item, outcome } => report.record(item, outcome),
            Step::Done => return Ok(session),
        }
    }
}

/// Receives `item`'s body of `len` bytes into its destination.
async fn receive(
    connection: &mut Connection,
    item: &Item,
    len: u64,
    hash: bool,
    timeout: Duration,
) -> Result<Received<Unblock<File>>, NotReceived> {
    let (dest, offset) = (item.dest.clone(), item.offset);
    let opened = unblock(move || dest.open(offset)).await;
    let mut sink = Unblock::new(opened.map_err(NotReceived::Unopened)?);
    let mut tally = Tally::new(item, len, hash);
    let read = connection.read_body(len, &mut sink, |chunk| tally.chunk(chunk), timeout).await;
    // Waits for writes still in flight on the blocking pool, even when the
    // body was cut short: every byte that arrived belongs in the .part,
    // which `--continue` resumes from its length. (`Unblock` does not flush
    // when dropped.)
    let flushed = sink.flush().await;
    tally.finish(read, flushed, sink)
}

/// Commits a received `.part` on the blocking pool (a sync and a rename).
async fn commit(dest: &Dest, file: Unblock<File>, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
    let (committing, file) = (dest.clone(), file.into_inner().await);
    unblock(move || committing.commit(file, digest.as_ref())).await
}
