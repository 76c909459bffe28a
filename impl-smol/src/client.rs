//! The client: [`ferry_engine::client::Session`]'s steps on smol.
//!
//! The session decides every step of the conversation and what each result
//! means; `Session::run_async` (called from `runtime.rs`) asks for the steps
//! and hands back the results. This file only does the steps: write, read
//! with a deadline on each wait, open and commit files.
//! Files are written by smol's blocking pool, 1 MiB at a time ([`Sink`]);
//! opening and committing go to `smol::unblock` whole.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferry_app::Item;
use ferry_app::Tally;
use ferry_app::spool::{Spool, Written, write_out};
use ferry_engine::body::BodyError;
use ferry_engine::client::{AsyncSteps, NotReceived, Received, SaveError};
use ferry_engine::frame::{LineError, ParseLine};
use smol::io::AsyncWriteExt;
use smol::{Task, unblock};

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
        let opened = unblock(move || dest.open(offset, len)).await;
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
        self.connection.read_body(len, &mut smol::io::sink(), each, self.timeout).await
    }

    async fn commit(&mut self, item: &Item, mut file: Sink, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let dest = &item.dest;
        let committing = dest.clone();
        let file =
            file.0.take_file().ok_or_else(|| SaveError::io(dest.name(), io::Error::other("a write was lost")))?;
        unblock(move || committing.commit(file, digest.as_ref())).await
    }
}

/// Where a body's bytes go: a [`Spool`] whose writes run under `unblock`,
/// 1 MiB at a time, each buffer handed over owned. (`Unblock<File>`, smol's
/// adapter for a blocking file, would copy each byte into a pipe and out
/// of it again on its thread.)
#[derive(Debug)]
pub struct Sink(Spool<Task<Written>>);

/// Runs one of a [`Sink`]'s writes on the blocking pool.
fn write_on_pool(file: File, bytes: Vec<u8>) -> Task<Written> {
    unblock(move || write_out(file, bytes))
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Dropping a smol `Task` cancels it: a write in flight is let
        // finish instead, so no byte that arrived is lost.
        if let Some(writing) = self.0.take_writing() {
            writing.detach();
        }
    }
}

impl smol::io::AsyncWrite for Sink {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf, write_on_pool)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx, write_on_pool)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx, write_on_pool)
    }
}
