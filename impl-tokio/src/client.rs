//! What a client does that a server never does, the tokio way
//! ([`AsyncSave`]): receive bodies, and save them.
//!
//! The session decides every step of the conversation and what each result
//! means; `ferry_app::link::Client` does its steps on a [`Connection`]. What
//! is tokio's own is here: a body's reads under `timeout_at`, and files
//! written by the blocking pool, 512 KiB at a time (1 MiB to stdout or a
//! device: `ferry_app::spool::spool_buffer`) ([`Sink`]); opening and
//! committing go to `spawn_blocking` whole.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_app::link::AsyncSave;
use ferry_app::spool::{Spool, Written, write_out};
use ferry_app::{Dest, Item};
use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming};
use ferry_engine::client::SaveError;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::{JoinHandle, spawn_blocking};
use tokio::time::{Instant, timeout_at};

use crate::connection::Connection;

impl AsyncSave for Connection {
    type File = Sink;

    async fn open(&mut self, item: &Item, len: u64) -> Result<Sink, SaveError> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let opened = spawn_blocking(move || dest.open(offset, len)).await;
        Ok(Sink(Spool::new(opened.unwrap_or_else(|e| Err(lost(&item.dest, e)))?, &item.dest)))
    }

    /// Reads race `timeout_at` with the end of each pace window.
    async fn receive_into(
        &mut self,
        len: u64,
        file: Option<&mut Sink>,
        mut each: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let mut nowhere = tokio::io::sink();
        let sink: &mut (dyn AsyncWrite + Unpin + Send) = match file {
            Some(file) => file,
            None => &mut nowhere,
        };
        let (mut body, first) = Incoming::start(len, timeout, &mut self.buffer, std::time::Instant::now());
        sink.write_all(&first).await.map_err(|e| body.sink_failed(first.len(), e))?;
        each(&first);
        let mut chunk = vec![0; BODY_BUFFER];
        while let Some(want) = body.want(chunk.len()) {
            let read = timeout_at(Instant::from_std(body.deadline()), self.stream.read(&mut chunk[..want])).await;
            let n = body.on_read(read.ok(), std::time::Instant::now())?;
            sink.write_all(&chunk[..n]).await.map_err(|e| body.sink_failed(n, e))?;
            each(&chunk[..n]);
        }
        Ok(())
    }

    /// A `Sink` hands each buffer to the pool: the last may still be there.
    async fn flush(file: &mut Sink) -> io::Result<()> {
        file.flush().await
    }

    async fn commit(&mut self, item: &Item, mut file: Sink, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let (file, dest) = (file.0.take_file(&item.dest)?, item.dest.clone());
        let committed = spawn_blocking(move || dest.commit(file, digest.as_ref())).await;
        committed.unwrap_or_else(|e| Err(lost(&item.dest, e)))
    }

    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        spawn_blocking(work).await.map_err(io::Error::other)
    }
}

/// A blocking-pool task that panicked or was cancelled.
fn lost(dest: &Dest, error: tokio::task::JoinError) -> SaveError {
    SaveError::io(dest.name(), io::Error::other(error))
}

/// Where a body's bytes go: a [`Spool`] whose writes run under
/// `spawn_blocking`, a buffer at a time, each handed over owned.
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
