//! The client: [`ferry_cli::Session`]'s steps on smol.
//!
//! The session decides every step of the conversation and what each result
//! means; `Session::run_async` (called from `runtime.rs`) asks for the steps
//! and hands back the results. This file only does the steps: write, read
//! with a deadline on each wait, open and commit files.
//! Files are written by smol's blocking pool, 1 MiB at a time ([`Spool`]);
//! opening and committing go to `smol::unblock` whole.

use std::fs::File;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use ferry_cli::Tally;
use ferry_cli::conn::{BodyError, LineError, ParseLine};
use ferry_cli::{AsyncSteps, Dest, Item, NotReceived, Received, SaveError};
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
    type File = Spool;

    async fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.connection.read_line(Instant::now() + self.timeout, parse).await
    }

    async fn send(&mut self, requests: &[u8]) -> io::Result<()> {
        self.connection.write_all(requests, self.timeout).await
    }

    async fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<Spool>, NotReceived> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let opened = unblock(move || dest.open(offset)).await;
        let mut sink = Spool::new(opened.map_err(NotReceived::Unopened)?);
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

    async fn discard(&mut self, len: u64) -> Result<(), BodyError> {
        self.connection.read_body(len, &mut smol::io::sink(), |_| {}, self.timeout).await
    }

    async fn commit(&mut self, dest: &Dest, file: Spool, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let committing = dest.clone();
        let file = file.into_file().ok_or_else(|| SaveError::io(dest.name(), io::Error::other("a write was lost")))?;
        unblock(move || committing.commit(file, digest.as_ref())).await
    }
}

/// How many received bytes are gathered before they go to stdout, a device
/// or the `.part`: each write is a trip to the blocking pool.
const SINK_BUFFER: usize = 1024 * 1024;

/// Where a body's bytes go on their way to a file: gathered into a 1 MiB
/// buffer, which is handed, owned, to `unblock` to write while the next one
/// fills, as ferry-tokio's `Spool` does. `Unblock<File>`, smol's adapter
/// for streaming to a blocking file, copies every byte into a pipe and out
/// of it on its thread; with a `BufWriter` in front that made three copies
/// (README, "Measurements behind design choices").
#[derive(Debug)]
pub struct Spool {
    /// The file, here while no write is in flight.
    file: Option<File>,
    /// The bytes gathered for the next write.
    filling: Vec<u8>,
    /// The write in flight.
    writing: Option<Task<Written>>,
}

/// What a write on the pool gives back: the file, its buffer to fill again,
/// and how the write went.
type Written = (File, Vec<u8>, io::Result<()>);

impl Spool {
    fn new(file: File) -> Spool {
        Spool { file: Some(file), filling: Vec::with_capacity(SINK_BUFFER), writing: None }
    }

    /// The file, once flushed: `None` if a write was lost (its task
    /// panicked), and the file with it.
    fn into_file(mut self) -> Option<File> {
        self.file.take()
    }

    /// Waits for the write in flight, then hands the gathered bytes, if
    /// any, to the pool.
    fn poll_hand_over(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut spare = Vec::new();
        if let Some(writing) = &mut self.writing {
            let (file, written, result) = ready!(Pin::new(writing).poll(cx));
            self.writing = None;
            self.file = Some(file);
            result?;
            spare = written;
        }
        if !self.filling.is_empty() {
            spare.clear();
            let bytes = std::mem::replace(&mut self.filling, spare);
            let mut file = self.file.take().expect("no write in flight");
            self.writing = Some(unblock(move || {
                let result = file.write_all(&bytes);
                (file, bytes, result)
            }));
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Dropping a smol `Task` cancels it: a write in flight is let
        // finish instead, so no byte that arrived is lost.
        if let Some(writing) = self.writing.take() {
            writing.detach();
        }
    }
}

impl smol::io::AsyncWrite for Spool {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.filling.len() >= SINK_BUFFER {
            ready!(self.poll_hand_over(cx))?;
        }
        let n = buf.len().min(SINK_BUFFER - self.filling.len());
        self.filling.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The gathered bytes go out, then that write is waited for.
        while !self.filling.is_empty() || self.writing.is_some() {
            ready!(self.poll_hand_over(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
