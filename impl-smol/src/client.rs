//! The client's saving, the smol way ([`AsyncSave`]): what a received
//! body is written to.
//!
//! The session decides every step of the conversation and what each result
//! means; `ferry_app::link::Client` does its steps on a [`Connection`]. What
//! is smol's own is saving: files are written by smol's blocking pool,
//! 512 KiB at a time (1 MiB to stdout or a device:
//! `ferry_app::spool::spool_buffer`) ([`Sink`]); opening and committing go
//! to `smol::unblock` whole.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_app::Item;
use ferry_app::futures::FuturesSave;
use ferry_app::spool::{Spool, Written, write_out};
use ferry_engine::client::SaveError;
use smol::{Task, unblock};

use crate::connection::Connection;

impl FuturesSave for Connection {
    type File = Sink;

    async fn open(&mut self, item: &Item, len: u64) -> Result<Sink, SaveError> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        unblock(move || dest.open(offset, len)).await.map(|file| Sink(Spool::new(file, &item.dest)))
    }

    async fn commit(&mut self, item: &Item, mut file: Sink, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let file = file.0.take_file(&item.dest)?;
        let dest = item.dest.clone();
        unblock(move || dest.commit(file, digest.as_ref())).await
    }

    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        Ok(unblock(work).await)
    }
}

/// Where a body's bytes go: a [`Spool`] whose writes run under `unblock`,
/// a buffer at a time, each handed over owned. (`Unblock<File>`, smol's
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
