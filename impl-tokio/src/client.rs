//! The client: [`ferry_engine::client::Session`]'s steps on tokio.
//!
//! The session decides every step of the conversation and what each result
//! means; `Session::run_async` (called from `runtime.rs`) asks for the steps
//! and hands back the results. This file only does the steps: write, read
//! with a deadline on each wait, open and commit files.
//! Files are written by the blocking pool, 1 MiB at a time ([`Sink`]);
//! opening and committing go to `spawn_blocking` whole.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_app::Tally;
use ferry_app::spool::{Spool, Written, write_out};
use ferry_app::{Dest, Item};
use ferry_engine::body::BodyError;
use ferry_engine::client::{AsyncSteps, NotReceived, Received, SaveError};
use ferry_engine::frame::{LineError, ParseLine};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::{JoinHandle, spawn_blocking};
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
    type Item = Item;
    type File = Sink;

    async fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.connection.read_line(Instant::now() + self.timeout, parse).await
    }

    async fn send(&mut self, requests: &[u8]) -> io::Result<()> {
        self.connection.write_all(requests, self.timeout).await
    }

    async fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<Sink>, NotReceived> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let opened = spawn_blocking(move || dest.open(offset, len)).await.unwrap_or_else(|e| Err(lost(&item.dest, e)));
        let mut sink = Sink(Spool::new(opened.map_err(NotReceived::Unopened)?));
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
        self.connection.read_body(len, &mut tokio::io::sink(), each, self.timeout).await
    }

    async fn commit(&mut self, item: &Item, mut file: Sink, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let dest = &item.dest;
        let committing = dest.clone();
        let file =
            file.0.take_file().ok_or_else(|| SaveError::io(dest.name(), io::Error::other("a write was lost")))?;
        let committed = spawn_blocking(move || committing.commit(file, digest.as_ref())).await;
        committed.unwrap_or_else(|e| Err(lost(dest, e)))
    }
}

/// A blocking-pool task that panicked or was cancelled.
fn lost(dest: &Dest, error: tokio::task::JoinError) -> SaveError {
    SaveError::io(dest.name(), io::Error::other(error))
}

/// Where a body's bytes go: a [`Spool`] whose writes run under
/// `spawn_blocking`, 1 MiB at a time, each buffer handed over owned.
/// (`tokio::fs::File` would copy each write once more into a buffer of its
/// own.)
#[derive(Debug)]
pub struct Sink(Spool<JoinHandle<Written>>);

/// Runs one of a [`Sink`]'s writes on the blocking pool.
fn write_on_pool(file: File, bytes: Vec<u8>) -> JoinHandle<Written> {
    spawn_blocking(move || write_out(file, bytes))
}

impl AsyncWrite for Sink {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf, write_on_pool)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx, write_on_pool)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx, write_on_pool)
    }
}
