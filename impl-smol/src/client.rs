//! The client: [`ferry_cli::Session`]'s steps on smol.
//!
//! The session decides every step of the conversation and what each result
//! means; `Session::run_async` (called from `runtime.rs`) asks for the steps
//! and hands back the results. This file only does the steps: write, read
//! with a deadline on each wait, open and commit files.
//! Files are written through `smol::Unblock`, which streams the writes to
//! a thread of its own, behind `SINK_BUFFER`; opening and committing go to
//! `smol::unblock` whole.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use ferry_cli::Tally;
use ferry_cli::conn::{BodyError, LineError, ParseLine};
use ferry_cli::{AsyncSteps, Dest, Item, NotReceived, Received, SaveError};
use smol::io::{AsyncWriteExt, BufWriter};
use smol::{Unblock, unblock};

use crate::connection::Connection;

/// A connection to a server, and how long each wait on it may take.
#[derive(Debug)]
pub struct Client {
    /// The connection, made by [`Connection::connect`].
    pub connection: Connection,
    /// The client's `--timeout`.
    pub timeout: Duration,
}

impl AsyncSteps for Client {
    type File = Unblock<File>;

    async fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.connection.read_line(Instant::now() + self.timeout, parse).await
    }

    async fn send(&mut self, requests: &[u8]) -> io::Result<()> {
        self.connection.write_all(requests, self.timeout).await
    }

    async fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<Unblock<File>>, NotReceived> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let opened = unblock(move || dest.open(offset)).await;
        let sink = Unblock::new(opened.map_err(NotReceived::Unopened)?);
        let mut sink = BufWriter::with_capacity(SINK_BUFFER, sink);
        let mut tally = Tally::new(item, len, hash);
        let read = self.connection.read_body(len, &mut sink, |chunk| tally.chunk(chunk), self.timeout).await;
        // Waits for writes still in flight on the blocking pool, even when
        // the body was cut short: every byte that arrived belongs in the
        // .part, which `--continue` resumes from its length. (Neither
        // `BufWriter` nor `Unblock` flushes when dropped.)
        let flushed = sink.flush().await;
        tally.finish(read, flushed, sink.into_inner())
    }

    async fn small(&mut self, len: usize) -> Result<Vec<u8>, BodyError> {
        self.connection.read_small(len, self.timeout).await
    }

    async fn discard(&mut self, len: u64) -> Result<(), BodyError> {
        self.connection.read_body(len, &mut smol::io::sink(), |_| {}, self.timeout).await
    }

    async fn commit(&mut self, dest: &Dest, file: Unblock<File>, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let (committing, file) = (dest.clone(), file.into_inner().await);
        unblock(move || committing.commit(file, digest.as_ref())).await
    }
}

/// How many received bytes are gathered before they go to `Unblock`: each
/// write into it is a handoff to its thread, and 64 KiB ones made a
/// download 1.2 × slower (README, "Measurements behind design choices").
const SINK_BUFFER: usize = 1024 * 1024;
