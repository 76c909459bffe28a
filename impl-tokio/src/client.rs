//! The client: [`ferry_cli::Session`]'s steps on tokio.
//!
//! The session decides every step of the conversation and what each result
//! means; `Session::run_async` (called from `runtime.rs`) asks for the steps
//! and hands back the results. This file only does the steps: write, read
//! with a deadline on each wait, open and commit files.
//! Files are written through `tokio::fs`, one blocking-pool trip per
//! write, hence `SINK_BUFFER`; opening and committing go to
//! `spawn_blocking` whole.

use std::io;
use std::time::Duration;

use ferry_cli::Tally;
use ferry_cli::conn::{BodyError, LineError, ParseLine};
use ferry_cli::{AsyncSteps, Dest, Item, NotReceived, Received, SaveError};
use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::task::spawn_blocking;
use tokio::time::Instant;

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
    type File = File;

    async fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.connection.read_line(Instant::now() + self.timeout, parse).await
    }

    async fn send(&mut self, requests: &[u8]) -> io::Result<()> {
        self.connection.write_all(requests, self.timeout).await
    }

    async fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<File>, NotReceived> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let opened = spawn_blocking(move || dest.open(offset)).await.unwrap_or_else(|e| Err(lost(&item.dest, e)));
        let sink = File::from_std(opened.map_err(NotReceived::Unopened)?);
        let mut sink = BufWriter::with_capacity(SINK_BUFFER, sink);
        let mut tally = Tally::new(item, len, hash);
        let read = self.connection.read_body(len, &mut sink, |chunk| tally.chunk(chunk), self.timeout).await;
        // Waits for writes still in flight on the blocking pool, even when
        // the body was cut short: every byte that arrived belongs in the
        // .part, which `--continue` resumes from its length.
        let flushed = sink.flush().await;
        tally.finish(read, flushed, sink.into_inner())
    }

    async fn small(&mut self, len: usize) -> Result<Vec<u8>, BodyError> {
        self.connection.read_small(len, self.timeout).await
    }

    async fn discard(&mut self, len: u64) -> Result<(), BodyError> {
        self.connection.read_body(len, &mut tokio::io::sink(), |_| {}, self.timeout).await
    }

    async fn commit(&mut self, dest: &Dest, file: File, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let (committing, file) = (dest.clone(), file.into_std().await);
        let committed = spawn_blocking(move || committing.commit(file, digest.as_ref())).await;
        committed.unwrap_or_else(|e| Err(lost(dest, e)))
    }
}

/// A blocking-pool task that panicked or was cancelled.
fn lost(dest: &Dest, error: tokio::task::JoinError) -> SaveError {
    SaveError::io(dest.name(), io::Error::other(error))
}

/// How many received bytes are gathered before they go to stdout, a device
/// or the `.part`: each write is a blocking-pool trip (see README, concept
/// index, "writing what arrives").
const SINK_BUFFER: usize = 1024 * 1024;
