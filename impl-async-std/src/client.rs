//! The client: [`ferry_engine::client::Session`]'s steps on async-std.
//!
//! The session decides every step of the conversation and what each result
//! means; `Session::run_async` (called from `runtime.rs`) asks for the steps
//! and hands back the results. This file only does the steps: write, read
//! with a deadline on each wait, open and commit files.
//! Files are written through `async_std::fs::File`, one blocking-pool trip
//! per write, hence the `BufWriter` of [`SPOOL_BUFFER`], the size tokio's
//! and smol's clients hand to their pools (`ferry_app::spool`, whose
//! `Spool` measured slower here: README, "Measurements behind design
//! choices"); opening and committing go to `task::spawn_blocking` whole.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use async_std::fs::File;
use async_std::io::{BufWriter, WriteExt};
use async_std::task::spawn_blocking;
use ferry_app::Item;
use ferry_app::Tally;
use ferry_app::spool::SPOOL_BUFFER;
use ferry_engine::body::BodyError;
use ferry_engine::client::{AsyncSteps, NotReceived, Received, SaveError};
use ferry_engine::frame::{LineError, ParseLine};

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
    type Item = Item;
    type File = BufWriter<File>;

    async fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.connection.read_line(Instant::now() + self.timeout, parse).await
    }

    async fn send(&mut self, requests: &[u8]) -> io::Result<()> {
        self.connection.write_all(requests, self.timeout).await
    }

    async fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<BufWriter<File>>, NotReceived> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let opened = spawn_blocking(move || dest.open(offset, len)).await;
        let mut sink = BufWriter::with_capacity(SPOOL_BUFFER, File::from(opened.map_err(NotReceived::Unopened)?));
        let mut tally = Tally::new(item, len, hash);
        let read = self.connection.read_body(len, &mut sink, |chunk| tally.chunk(chunk), self.timeout).await;
        // Waits for writes still in flight on the blocking pool, even when
        // the body was cut short: every byte that arrived belongs in the
        // .part, which `--continue` resumes from its length.
        let flushed = sink.flush().await;
        tally.finish(read, flushed, sink)
    }

    async fn small(&mut self, len: usize) -> Result<Vec<u8>, BodyError> {
        self.connection.read_small(len, self.timeout).await
    }

    async fn discard(&mut self, len: u64, each: &mut dyn FnMut(&[u8])) -> Result<(), BodyError> {
        self.connection.read_body(len, &mut async_std::io::sink(), each, self.timeout).await
    }

    async fn commit(&mut self, item: &Item, file: BufWriter<File>, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let dest = &item.dest;
        // Back to a std `File`. (async-std's flushes in its `Drop`, with
        // `block_on`; it was flushed when the body ended.)
        // (Its error type keeps the cause private: say what failed.)
        let unflushed = |_| SaveError::io(dest.name(), io::Error::other("the last writes could not be flushed"));
        let file = file.into_inner().await.map_err(unflushed)?;
        let (committing, file) = (dest.clone(), std::fs::File::from(OwnedFd::from(file)));
        spawn_blocking(move || committing.commit(file, digest.as_ref())).await
    }
}
